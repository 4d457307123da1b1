package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// Actor types.
const (
	ActorUser   = "user"
	ActorToken  = "token"
	ActorAgent  = "agent"
	ActorSystem = "system"
)

// Outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// Kind is the history kind of every audit entry.
const Kind = "communication.audit"

// streamPrefix heads every chain's stream; the node id follows.
const streamPrefix = "communication/audit/"

// Stream is the history stream of node's chain.
func Stream(node string) string { return streamPrefix + node }

// ZeroHash is the prev_hash of a chain's first entry.
var ZeroHash = strings.Repeat("0", 64)

// Limits. Every string of an entry is cut to MaxFieldLen bytes, the
// history store's limit on an indexed field, so that the indexed value is
// the entry's own and a query by it matches exactly. A diff whose encoding
// exceeds MaxDiffLen is replaced by a note of its size: an audit entry
// records that something changed, not a copy of the object.
const (
	MaxFieldLen = history.MaxFieldValLen
	MaxDiffLen  = 64 << 10
	MaxNodeLen  = 128
)

// Entry is one audit record.
type Entry struct {
	// Seq is the entry's position in its node's chain, from 1.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Node is the controller whose chain holds the entry.
	Node string `json:"node"`
	// Actor is the user name, token id or agent id; "" for system.
	Actor     string `json:"actor,omitempty"`
	ActorType string `json:"actor_type"` // user | token | agent | system
	SourceIP  string `json:"source_ip,omitempty"`
	// Action is "<noun>.<verb>": "user.create", "auth.login" …
	Action    string `json:"action"`
	Resource  string `json:"resource,omitempty"`
	Outcome   string `json:"outcome"` // success | failure | denied
	RequestID string `json:"request_id,omitempty"`
	// Diff summarises the change, secrets redacted.
	Diff     map[string]any `json:"diff,omitempty"`
	PrevHash string         `json:"prev_hash"`
	// Hash must stay the last field: the stored form is the canonical
	// encoding (Hash empty, so omitted) with hash appended.
	Hash string `json:"hash,omitempty"`
}

// clean makes s storable as a history field: valid UTF-8 without NUL, at
// most n bytes, cut on a rune boundary.
func clean(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// prepare checks what the caller must get right and normalises the rest:
// strings cleaned, time in UTC to the microsecond (the stores' precision),
// diff normalised and redacted. Problems are the caller's bugs, reported
// all at once with their field names.
func prepare(e Entry, now time.Time) (Entry, error) {
	var l problem.List
	switch e.ActorType {
	case ActorUser, ActorToken, ActorAgent, ActorSystem:
	default:
		l.Add("actor_type", "%q must be one of user, token, agent, system", e.ActorType)
	}
	switch e.Outcome {
	case OutcomeSuccess, OutcomeFailure, OutcomeDenied:
	default:
		l.Add("outcome", "%q must be one of success, failure, denied", e.Outcome)
	}
	if e.Action == "" {
		l.Add("action", "must be set")
	}
	if e.Time.IsZero() {
		e.Time = now
	} else if y := e.Time.UTC().Year(); y < 1 || y > 9999 {
		l.Add("time", "year %d is outside 1-9999", y)
	}
	diff, err := normaliseDiff(e.Diff)
	if err != nil {
		l.Add("diff", "%v", err)
	}
	if err := l.Err(); err != nil {
		return Entry{}, err
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	e.Actor = clean(e.Actor, MaxFieldLen)
	e.SourceIP = clean(e.SourceIP, MaxFieldLen)
	e.Action = clean(e.Action, MaxFieldLen)
	e.Resource = clean(e.Resource, MaxFieldLen)
	e.RequestID = clean(e.RequestID, MaxFieldLen)
	e.Diff = diff
	e.Seq, e.Node, e.PrevHash, e.Hash = 0, "", "", ""
	return e, nil
}

// normaliseDiff turns d into what decoding its JSON gives (so the entry
// Append returns equals the one a reader decodes, and structs the caller
// passed are redacted by their JSON keys), then redacts it and bounds it.
func normaliseDiff(d map[string]any) (map[string]any, error) {
	if len(d) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("not encodable as JSON: %w", err)
	}
	var out map[string]any
	if err := decodeJSON(b, &out); err != nil {
		return nil, fmt.Errorf("does not decode: %w", err)
	}
	out = Redact(out)
	// Redaction only shrinks a diff, so measuring the original is enough
	// to decide, and the note keeps the entry useful.
	if len(b) > MaxDiffLen {
		return map[string]any{"truncated": true, "bytes": json.Number(fmt.Sprint(len(b)))}, nil
	}
	return out, nil
}

func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// hashSuffix is what encode puts in place of the canonical encoding's
// closing brace: `,"hash":"` 64 hex digits `"}`.
const (
	hashKey       = `,"hash":"`
	hashSuffixLen = len(hashKey) + 64 + 2
)

// encode returns the stored form of e (whose Seq, Node and PrevHash are
// set, Hash empty) and its hash.
func encode(e Entry) ([]byte, string, error) {
	e.Hash = ""
	body, err := json.Marshal(e)
	if err != nil {
		return nil, "", fmt.Errorf("encode audit entry %d: %w", e.Seq, err)
	}
	sum := sha256.Sum256(body)
	h := hex.EncodeToString(sum[:])
	out := make([]byte, 0, len(body)-1+hashSuffixLen)
	out = append(out, body[:len(body)-1]...)
	out = append(out, hashKey...)
	out = append(out, h...)
	out = append(out, '"', '}')
	return out, h, nil
}

// decode parses a stored entry and returns it with the hash its bytes
// actually have (which differs from e.Hash when the entry was changed).
// Stored bytes are outside input (a file or a database row anyone with
// access may edit), so it must never panic, whatever the bytes.
func decode(data []byte) (e Entry, computed string, err error) {
	n := len(data)
	if n < hashSuffixLen+2 || data[0] != '{' || string(data[n-hashSuffixLen:n-hashSuffixLen+len(hashKey)]) != hashKey ||
		data[n-2] != '"' || data[n-1] != '}' {
		return Entry{}, "", errors.New("not an audit entry: no trailing hash")
	}
	stored := string(data[n-2-64 : n-2])
	if !isHex(stored) {
		return Entry{}, "", errors.New("not an audit entry: hash is not 64 lowercase hex digits")
	}
	if err := decodeJSON(data, &e); err != nil {
		return Entry{}, "", fmt.Errorf("not an audit entry: %w", err)
	}
	if e.Hash != stored {
		return Entry{}, "", errors.New("not an audit entry: more than one hash")
	}
	if len(e.Diff) == 0 {
		e.Diff = nil // as prepare leaves it, so that equal entries compare equal
	}
	h := sha256.New()
	h.Write(data[:n-hashSuffixLen])
	h.Write([]byte{'}'})
	return e, hex.EncodeToString(h.Sum(nil)), nil
}

func isHex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// rawHash names an entry that does not decode, so that the chain can still
// continue after it (Verify reports it; Open must not refuse to start).
func rawHash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// checkNode validates a node id: it becomes part of a stream name.
func checkNode(node string) error {
	if node == "" || len(node) > MaxNodeLen || !utf8.ValidString(node) || strings.ContainsAny(node, "\x00/") {
		return problem.Invalid("node", "%q must be 1-%d bytes of UTF-8 without NUL or '/'", node, MaxNodeLen)
	}
	return nil
}

// record is the history record that stores e.
func record(e Entry, data []byte) history.Record {
	f := map[string]string{"node": e.Node, "action": e.Action, "outcome": e.Outcome, "actor_type": e.ActorType}
	if e.Actor != "" {
		f["actor"] = e.Actor
	}
	if e.Resource != "" {
		f["resource"] = e.Resource
	}
	return history.Record{Stream: Stream(e.Node), Seq: e.Seq, Time: e.Time, Kind: Kind, Fields: f, Data: data}
}
