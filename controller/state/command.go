package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Command is one typed, versioned change to the replicated state. Types are
// namespaced by domain ("probe.write") and, once released, never renamed or
// reused; a changed payload gets a new Version, and the handler keeps
// accepting every version it ever accepted.
type Command struct {
	Type    string `json:"type"`
	Version uint16 `json:"version"`
	// IgnoreUnknown lets a node that does not know Type skip the command
	// instead of stopping. Set it only on commands whose effect an older
	// node may safely miss (a rolling upgrade adds types before using them).
	IgnoreUnknown bool            `json:"ignore_unknown,omitempty"`
	Payload       json.RawMessage `json:"payload,omitempty"`
}

// NewCommand encodes payload as the command's JSON payload.
func NewCommand(typ string, version uint16, payload any) (Command, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return Command{}, fmt.Errorf("encode %s payload: %w", typ, err)
	}
	return Command{Type: typ, Version: version, Payload: raw}, nil
}

// Entry is what one Raft log entry carries: one or more commands and the
// time the leader stamped on them. Apply reads the time from here and never
// from a clock, so every node computes the same state.
type Entry struct {
	Time     time.Time `json:"time"`
	Commands []Command `json:"commands"`
}

// entryFormat is the first byte of every encoded entry. A new encoding gets a
// new byte; decoders keep every old one so old logs stay readable.
const entryFormatJSON byte = 1

// MaxCommandsPerEntry bounds batching so that one entry stays small enough to
// replicate quickly and to decode without surprises.
const MaxCommandsPerEntry = 4096

// ErrMalformedEntry is returned for log data that is not an encoded Entry.
var ErrMalformedEntry = errors.New("malformed log entry")

// EncodeEntry returns the log bytes for e.
func EncodeEntry(e Entry) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(entryFormatJSON)
	if err := json.NewEncoder(&buf).Encode(e); err != nil {
		return nil, fmt.Errorf("encode entry: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeEntry parses log bytes written by EncodeEntry. It reads data from
// the Raft log, which a peer wrote, so it validates rather than trusts.
func DecodeEntry(data []byte) (Entry, error) {
	if len(data) == 0 {
		return Entry{}, fmt.Errorf("%w: empty", ErrMalformedEntry)
	}
	if data[0] != entryFormatJSON {
		return Entry{}, fmt.Errorf("%w: unknown format byte %#x", ErrMalformedEntry, data[0])
	}
	dec := json.NewDecoder(bytes.NewReader(data[1:]))
	dec.DisallowUnknownFields()
	var e Entry
	if err := dec.Decode(&e); err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrMalformedEntry, err)
	}
	if dec.More() {
		return Entry{}, fmt.Errorf("%w: trailing data", ErrMalformedEntry)
	}
	if len(e.Commands) == 0 {
		return Entry{}, fmt.Errorf("%w: no commands", ErrMalformedEntry)
	}
	if len(e.Commands) > MaxCommandsPerEntry {
		return Entry{}, fmt.Errorf("%w: %d commands, at most %d", ErrMalformedEntry, len(e.Commands), MaxCommandsPerEntry)
	}
	for i, c := range e.Commands {
		if c.Type == "" {
			return Entry{}, fmt.Errorf("%w: commands[%d].type is empty", ErrMalformedEntry, i)
		}
	}
	return e, nil
}

// Applier commits commands through Raft (cluster.Node); every domain
// service writes through one.
type Applier interface {
	Apply(ctx context.Context, cmds ...Command) ([]Result, error)
}

// ApplyOne commits one version-1 command of type typ and decodes its
// result into out (nil to discard it), or returns the problem that
// refused it.
func ApplyOne(ctx context.Context, a Applier, typ string, payload, out any) error {
	cmd, err := NewCommand(typ, 1, payload)
	if err != nil {
		return err
	}
	res, err := a.Apply(ctx, cmd)
	if err != nil {
		return fmt.Errorf("%s: %w", typ, err)
	}
	return res[0].Decode(out)
}
