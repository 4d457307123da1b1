package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// A small test domain: a key/value table with a counter, enough to
// exercise every store mechanism without depending on a real domain.
type kv struct {
	Key   string            `json:"key"`
	Value string            `json:"value"`
	Tags  map[string]string `json:"tags,omitempty"`
	At    time.Time         `json:"at"`
	Index uint64            `json:"index"`
}

type kvPut struct {
	Key   string            `json:"key"`
	Value string            `json:"value"`
	Tags  map[string]string `json:"tags,omitempty"`
}

func kvDomain() Domain {
	return Domain{
		Name: "kv",
		Tables: []Table{{
			Schema: &memdb.TableSchema{Name: "kv", Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			}},
			New: func() any { return &kv{} },
		}},
		Commands: map[string]Handler{
			"kv.put": func(ctx *ApplyContext, _ uint16, raw json.RawMessage) (any, error) {
				var in kvPut
				if err := json.Unmarshal(raw, &in); err != nil {
					return nil, problem.Invalid("payload", "%v", err)
				}
				if in.Key == "" {
					return nil, problem.Invalid("key", "must not be empty")
				}
				row := &kv{Key: in.Key, Value: in.Value, Tags: in.Tags, At: ctx.Time, Index: ctx.Index}
				if err := ctx.Txn.Insert("kv", row); err != nil {
					return nil, err
				}
				if in.Value == "fail-after-write" {
					return nil, problem.Invalid("value", "rejected after writing")
				}
				return row, nil
			},
		},
	}
}

func newTestStore(t testing.TB) *Store {
	t.Helper()
	reg := NewRegistry()
	reg.MustRegister(kvDomain())
	s, err := NewStore(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t testing.TB, key, value string) Command {
	t.Helper()
	c, err := NewCommand("kv.put", 1, kvPut{Key: key, Value: value, Tags: map[string]string{"b": "2", "a": "1", "z": key}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func entryBytes(t testing.TB, i int, cmds ...Command) []byte {
	t.Helper()
	b, err := EncodeEntry(Entry{Time: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC), Commands: cmds})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func snapshotBytes(t testing.TB, s *Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.WriteSnapshot(s.View(), &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSameLogGivesIdenticalSnapshots(t *testing.T) {
	var log [][]byte
	for i := range 200 {
		cmds := []Command{put(t, fmt.Sprintf("key-%03d", i%50), fmt.Sprintf("v%d", i))}
		if i%7 == 0 {
			cmds = append(cmds, put(t, "", "rejected"), put(t, fmt.Sprintf("extra-%d", i), "x"))
		}
		log = append(log, entryBytes(t, i, cmds...))
	}
	a, b := newTestStore(t), newTestStore(t)
	fa, fb := NewFSM(a, slog.New(slog.DiscardHandler)), NewFSM(b, slog.New(slog.DiscardHandler))
	for i, data := range log {
		l := &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: data}
		ra, rb := fa.Apply(l), fb.Apply(l)
		ja, _ := json.Marshal(ra)
		jb, _ := json.Marshal(rb)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("entry %d: results differ:\n%s\n%s", i+1, ja, jb)
		}
	}
	sa, sb := snapshotBytes(t, a), snapshotBytes(t, b)
	if !bytes.Equal(sa, sb) {
		t.Fatalf("snapshots of two FSMs fed the same log differ (%d vs %d bytes)", len(sa), len(sb))
	}
	if !bytes.Contains(sa, []byte(`"key-049"`)) {
		t.Fatal("snapshot lacks the data that was applied")
	}
}

func TestUnknownCommands(t *testing.T) {
	tests := []struct {
		name    string
		cmd     Command
		wantErr bool
	}{
		{"an unknown type marked ignore_unknown is skipped", Command{Type: "future.thing", Version: 1, IgnoreUnknown: true}, false},
		{"an unknown type without the flag stops the node", Command{Type: "future.thing", Version: 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t)
			// The known command in the same entry must not be half-applied
			// when the entry is refused.
			res, err := s.Apply(1, Entry{Commands: []Command{put(t, "k", "v"), tt.cmd}})
			if tt.wantErr {
				if !errors.Is(err, ErrUnknownCommand) {
					t.Fatalf("got %v, want ErrUnknownCommand", err)
				}
				if raw, _ := s.ReadTxn().First("kv", "id", "k"); raw != nil {
					t.Fatal("a refused entry was partly applied")
				}
				if s.LastIndex() != 0 {
					t.Fatal("a refused entry moved the index")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !res[1].Ignored || res[0].Err != nil {
				t.Fatalf("results %+v", res)
			}
		})
	}

	t.Run("the raft FSM stops loudly on an unknown command", func(t *testing.T) {
		f := NewFSM(newTestStore(t), slog.New(slog.DiscardHandler))
		var fatal error
		f.fatal = func(err error) { fatal = err }
		f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: entryBytes(t, 0, Command{Type: "nope", Version: 1})})
		if !errors.Is(fatal, ErrUnknownCommand) || !strings.Contains(fatal.Error(), `"nope"`) {
			t.Fatalf("fatal = %v", fatal)
		}
	})

	t.Run("the default fatal handler panics", func(t *testing.T) {
		f := NewFSM(newTestStore(t), slog.New(slog.DiscardHandler))
		defer func() {
			if recover() == nil {
				t.Fatal("Apply of an unknown command did not panic")
			}
		}()
		f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: entryBytes(t, 0, Command{Type: "nope", Version: 1})})
	})
}

func TestRejectedCommandLeavesNoPartialWrite(t *testing.T) {
	s := newTestStore(t)
	res, err := s.Apply(1, Entry{Commands: []Command{put(t, "a", "fail-after-write"), put(t, "b", "ok")}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err == nil || res[0].Err.Field != "value" {
		t.Fatalf("first command: %+v", res[0])
	}
	if raw, _ := s.ReadTxn().First("kv", "id", "a"); raw != nil {
		t.Fatal("a rejected command's write is visible")
	}
	if raw, _ := s.ReadTxn().First("kv", "id", "b"); raw == nil {
		t.Fatal("the command after a rejected one was not applied")
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	src := newTestStore(t)
	for i := range 30 {
		if _, err := src.Apply(uint64(i+1), Entry{Time: time.Unix(int64(i), 0).UTC(), Commands: []Command{put(t, fmt.Sprint(i), "v")}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.Apply(31, Entry{Commands: []Command{{Type: CmdMetaInit, Version: 1, Payload: json.RawMessage(`{"cluster_id":"c1"}`)}}}); err != nil {
		t.Fatal(err)
	}
	snap := snapshotBytes(t, src)

	dst := newTestStore(t)
	if err := dst.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if got := snapshotBytes(t, dst); !bytes.Equal(got, snap) {
		t.Fatalf("restored store snapshots differently:\n%s\n---\n%s", got, snap)
	}
	if dst.LastIndex() != 31 {
		t.Fatalf("restored index %d, want 31", dst.LastIndex())
	}
	if m, ok := ClusterMeta(dst.ReadTxn()); !ok || m.ClusterID != "c1" {
		t.Fatalf("cluster meta after restore: %+v %v", m, ok)
	}

	bad := []struct {
		name string
		data []byte
	}{
		{"an empty file", nil},
		{"a truncated file", snap[:len(snap)/2]},
		{"a flipped byte", bytes.Replace(snap, []byte(`"v"`), []byte(`"w"`), 1)},
		{"another format", []byte(`{"format":"other","version":1}` + "\n")},
		{"a newer schema", bytes.Replace(snap, []byte(`"schema_version":1`), []byte(`"schema_version":99`), 1)},
		{"data after the trailer", append(append([]byte{}, snap...), "{}\n"...)},
	}
	for _, b := range bad {
		t.Run("restore refuses "+b.name+" and keeps the old state", func(t *testing.T) {
			before := snapshotBytes(t, dst)
			if err := dst.Restore(bytes.NewReader(b.data)); !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("got %v, want ErrBadSnapshot", err)
			}
			if !bytes.Equal(snapshotBytes(t, dst), before) {
				t.Fatal("a refused restore changed the store")
			}
		})
	}
}

func TestRestoreWakesBlockedQueries(t *testing.T) {
	s := newTestStore(t)
	if _, err := s.Apply(1, Entry{Commands: []Command{put(t, "a", "1")}}); err != nil {
		t.Fatal(err)
	}
	other := newTestStore(t)
	if _, err := other.Apply(5, Entry{Commands: []Command{put(t, "b", "2")}}); err != nil {
		t.Fatal(err)
	}
	snap := snapshotBytes(t, other)

	woke := make(chan uint64, 1)
	started := make(chan struct{})
	go func() {
		var once bool
		idx, _ := s.BlockingQuery(context.Background(), 1, func(ws memdb.WatchSet, txn *memdb.Txn) (uint64, error) {
			it, err := txn.Get("kv", "id")
			if err != nil {
				return 0, err
			}
			ws.Add(it.WatchCh())
			if !once {
				once = true
				close(started)
			}
			return s.TableIndex(txn, "kv"), nil
		})
		woke <- idx
	}()
	<-started
	select {
	case idx := <-woke:
		t.Fatalf("query returned at index %d before anything changed", idx)
	default:
	}
	if err := s.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	select {
	case idx := <-woke:
		if idx != 5 {
			t.Fatalf("woken query saw index %d, want 5 from the restored store", idx)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("restore did not wake the blocked query")
	}
}

func TestWaitForIndex(t *testing.T) {
	s := newTestStore(t)
	done := make(chan error, 1)
	go func() { done <- s.WaitForIndex(context.Background(), 3) }()
	for i := uint64(1); i <= 3; i++ {
		if _, err := s.Apply(i, Entry{Commands: []Command{put(t, fmt.Sprint(i), "v")}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.WaitForIndex(ctx, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestDecodeEntryRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty data", nil, "empty"},
		{"an unknown format byte", []byte{9, '{', '}'}, "unknown format"},
		{"malformed JSON", []byte{1, '{'}, "malformed"},
		{"no commands", []byte("\x01{\"time\":\"2026-01-01T00:00:00Z\",\"commands\":[]}"), "no commands"},
		{"a command without a type", []byte("\x01{\"commands\":[{\"version\":1}]}"), "type is empty"},
		{"an unknown field", []byte("\x01{\"commands\":[{\"type\":\"a\"}],\"x\":1}"), "unknown field"},
		{"trailing data", []byte("\x01{\"commands\":[{\"type\":\"a\"}]}{}"), "trailing"},
	}
	for _, tt := range tests {
		t.Run("it rejects "+tt.name, func(t *testing.T) {
			_, err := DecodeEntry(tt.data)
			if !errors.Is(err, ErrMalformedEntry) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want malformed entry mentioning %q", err, tt.want)
			}
		})
	}
}

func FuzzDecodeEntry(f *testing.F) {
	good, _ := EncodeEntry(Entry{Time: time.Unix(0, 0).UTC(), Commands: []Command{{Type: "kv.put", Version: 1, Payload: json.RawMessage(`{"key":"a"}`)}}})
	f.Add(good)
	f.Add([]byte{1})
	f.Add([]byte("\x01{\"commands\":[{\"type\":\"x\",\"ignore_unknown\":true}]}"))
	f.Add([]byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEntry(data)
		if err != nil {
			return
		}
		// Whatever decodes must apply without panicking and re-encode.
		s := newTestStore(t)
		_, _ = s.Apply(1, e)
		if _, err := EncodeEntry(e); err != nil {
			t.Fatalf("decoded entry does not re-encode: %v", err)
		}
	})
}

func FuzzRestoreSnapshot(f *testing.F) {
	src := newTestStore(f)
	_, _ = src.Apply(1, Entry{Commands: []Command{put(f, "a", "1"), put(f, "b", "2")}})
	f.Add(snapshotBytes(f, src))
	f.Add([]byte(`{"format":"opsconductor-state","version":1}` + "\n" + `{"end":true,"sha256":"x"}` + "\n"))
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newTestStore(t)
		if err := s.Restore(bytes.NewReader(data)); err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("restore failed without ErrBadSnapshot: %v", err)
			}
			return
		}
		// A snapshot that restores must snapshot back to a restorable one.
		if err := newTestStore(t).Restore(bytes.NewReader(snapshotBytes(t, s))); err != nil {
			t.Fatalf("re-snapshot does not restore: %v", err)
		}
	})
}
