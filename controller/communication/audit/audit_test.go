package audit

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/embedded"
	"github.com/opsconductor/opsconductor/controller/problem"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openLog(t *testing.T, s history.Store, node string) *Log {
	t.Helper()
	l, err := Open(context.Background(), Config{Store: s, Node: node})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func closeLog(t *testing.T, l *Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func userEntry(i int) Entry {
	return Entry{Actor: fmt.Sprintf("user%d", i%7), ActorType: ActorUser, SourceIP: "192.0.2.10", Action: "user.update",
		Resource: fmt.Sprintf("user/u%04d", i), Outcome: OutcomeSuccess, RequestID: fmt.Sprintf("req-%d", i),
		Diff: map[string]any{"email": fmt.Sprintf("u%d@example.com", i), "password": "hunter2"}}
}

// appendConcurrently appends n entries from workers goroutines and returns
// them by seq.
func appendConcurrently(t *testing.T, l *Log, n, workers int) map[uint64]Entry {
	t.Helper()
	var mu sync.Mutex
	got := map[uint64]Entry{}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				e, err := l.Append(context.Background(), userEntry(i))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				got[e.Seq] = e
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return got
}

func mustVerify(t *testing.T, s history.Store, node string) Report {
	t.Helper()
	rep, err := Verify(context.Background(), s, node)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestChainOnEachBackend is the audit test on both stores: 1,000
// concurrent appends verify intact, a restart continues the chain, an
// entry changed in storage is named, and a deletion leaves a named gap.
func TestChainOnEachBackend(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			st := b.setup(t)
			s := st.open(t)
			const node = "ctl-1"
			l := openLog(t, s, node)

			got := appendConcurrently(t, l, 1000, 20)
			if len(got) != 1000 {
				t.Fatalf("%d distinct seqs, want 1000", len(got))
			}
			for seq := uint64(1); seq <= 1000; seq++ {
				e, ok := got[seq]
				if !ok {
					t.Fatalf("seq %d missing", seq)
				}
				if seq > 1 && e.PrevHash != got[seq-1].Hash {
					t.Fatalf("entry %d does not link to %d", seq, seq-1)
				}
				if e.Diff["password"] != Redacted {
					t.Fatalf("entry %d keeps its password: %v", seq, e.Diff)
				}
			}
			if got[1].PrevHash != ZeroHash {
				t.Fatalf("first prev_hash %q", got[1].PrevHash)
			}
			rep, err := l.Verify(ctx)
			if err != nil || !rep.OK() || rep.Entries != 1000 || rep.FirstSeq != 1 || rep.LastSeq != 1000 || rep.Truncated ||
				rep.LastHash != got[1000].Hash {
				t.Fatalf("verify after 1000 appends: %+v, %v", rep, err)
			}
			reps, err := VerifyAll(ctx, s)
			if err != nil || len(reps) != 1 || reps[0].Node != node || !reps[0].OK() {
				t.Fatalf("VerifyAll: %+v, %v", reps, err)
			}
			reps, err = VerifyAll(ctx, s, node, "ctl-2")
			if err != nil || len(reps) != 2 || reps[1].Node != "ctl-2" || reps[1].Entries != 0 || !reps[1].OK() {
				t.Fatalf("VerifyAll with a member that never wrote: %+v, %v", reps, err)
			}

			t.Run("a restart continues the chain", func(t *testing.T) {
				closeLog(t, l)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = st.open(t)
				l = openLog(t, s, node)
				if seq, h := l.Head(); seq != 1000 || h != got[1000].Hash {
					t.Fatalf("head after restart %d %s, want 1000 %s", seq, h, got[1000].Hash)
				}
				e, err := l.Append(ctx, userEntry(1000))
				if err != nil || e.Seq != 1001 || e.PrevHash != got[1000].Hash {
					t.Fatalf("first append after restart: %+v, %v", e, err)
				}
				if rep := mustVerify(t, s, node); !rep.OK() || rep.LastSeq != 1001 {
					t.Fatalf("verify after restart: %+v", rep)
				}
				closeLog(t, l)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			})

			t.Run("an entry changed in storage is named", func(t *testing.T) {
				st.change(t, node, 700, flipOutcome(t, 700))
				s = st.open(t)
				defer s.Close()
				rep := mustVerify(t, s, node)
				if rep.FirstBroken == nil || *rep.FirstBroken != (Broken{Seq: 700, Reason: "hash mismatch"}) || rep.Problems != 1 {
					t.Fatalf("after changing entry 700: %+v %+v", rep, rep.FirstBroken)
				}
				if rep.Entries != 1001 {
					t.Fatalf("walked %d entries, want 1001", rep.Entries)
				}
			})

			t.Run("a deleted entry leaves a named gap", func(t *testing.T) {
				first := st.dropChunk(t, node, 300)
				if first < 2 {
					t.Fatalf("the chunk of 300 starts at %d; the test needs one after the chain's head", first)
				}
				s = st.open(t)
				defer s.Close()
				rep := mustVerify(t, s, node)
				want := fmt.Sprintf("gap after %d", first-1)
				if rep.FirstBroken == nil || rep.FirstBroken.Reason != want || rep.Problems != 2 {
					t.Fatalf("after deleting the chunk from %d: %+v %+v, want %q", first, rep, rep.FirstBroken, want)
				}
			})
		})
	}
}

// TestQueryAndExportOnEachBackend filters by every field, pages with the
// cursor and exports what it finds.
func TestQueryAndExportOnEachBackend(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s := b.setup(t).open(t)
			defer s.Close()
			base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
			logs := []*Log{openLog(t, s, "a"), openLog(t, s, "b")}
			var all []Entry
			for i := range 12 {
				e := Entry{Time: base.Add(time.Duration(i) * time.Minute), Actor: []string{"alice", "bob", "carol"}[i%3],
					ActorType: ActorUser, Action: []string{"user.create", "auth.login"}[i%2], Resource: fmt.Sprintf("user/%d", i%4),
					Outcome: []string{OutcomeSuccess, OutcomeFailure, OutcomeDenied}[i%3]}
				got, err := logs[i%2].Append(ctx, e)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, got)
			}
			for _, l := range logs {
				closeLog(t, l)
			}
			newestFirst := func(keep func(Entry) bool) []Entry {
				var out []Entry
				for i := len(all) - 1; i >= 0; i-- {
					if keep(all[i]) {
						out = append(out, all[i])
					}
				}
				return out
			}
			tests := []struct {
				name   string
				filter Filter
				keep   func(Entry) bool
			}{
				{"no filter returns every node's entries", Filter{}, func(Entry) bool { return true }},
				{"by actor", Filter{Actor: "bob"}, func(e Entry) bool { return e.Actor == "bob" }},
				{"by action", Filter{Action: "auth.login"}, func(e Entry) bool { return e.Action == "auth.login" }},
				{"by resource", Filter{Resource: "user/2"}, func(e Entry) bool { return e.Resource == "user/2" }},
				{"by outcome and node", Filter{Outcome: OutcomeDenied, Node: "b"}, func(e Entry) bool { return e.Outcome == OutcomeDenied && e.Node == "b" }},
				{"by time", Filter{Since: base.Add(3 * time.Minute), Until: base.Add(7 * time.Minute)}, func(e Entry) bool {
					return !e.Time.Before(base.Add(3*time.Minute)) && e.Time.Before(base.Add(7*time.Minute))
				}},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					want := newestFirst(tc.keep)
					f := tc.filter
					f.Limit = 2
					var got []Entry
					for pages := 0; ; pages++ {
						if pages > 20 {
							t.Fatal("the cursor does not end")
						}
						p, err := Query(ctx, s, f)
						if err != nil {
							t.Fatal(err)
						}
						got = append(got, p.Entries...)
						if p.Next == "" {
							break
						}
						f.Cursor = p.Next
					}
					if !equalEntries(got, want) {
						t.Fatalf("got %v\nwant %v", seqs(got), seqs(want))
					}
				})
			}

			t.Run("JSON Lines export is exactly what is stored", func(t *testing.T) {
				var buf bytes.Buffer
				n, err := Export(ctx, s, Filter{}, NewJSONLWriter(&buf))
				if err != nil || n != 12 {
					t.Fatalf("export: %d, %v", n, err)
				}
				lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
				for i, line := range lines {
					e, computed, err := decode([]byte(line))
					if err != nil || computed != e.Hash {
						t.Fatalf("line %d does not check against its hash: %v", i+1, err)
					}
					stored, err := s.Read(ctx, Stream(e.Node), e.Seq, e.Seq, 1)
					if err != nil || len(stored) != 1 || string(stored[0].Data) != line {
						t.Fatalf("line %d differs from the stored entry: %v", i+1, err)
					}
				}
			})
			t.Run("CSV export has a header and a row per entry", func(t *testing.T) {
				var buf bytes.Buffer
				n, err := Export(ctx, s, Filter{Actor: "alice"}, NewCSVWriter(&buf))
				if err != nil || n != 4 {
					t.Fatalf("export: %d, %v", n, err)
				}
				rows, err := csv.NewReader(&buf).ReadAll()
				if err != nil {
					t.Fatal(err)
				}
				if len(rows) != 5 || !slices.Equal(rows[0], CSVHeader) || rows[1][3] != "alice" {
					t.Fatalf("rows %q", rows)
				}
			})
		})
	}
}

func seqs(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = fmt.Sprintf("%s/%d", e.Node, e.Seq)
	}
	return out
}

func equalEntries(a, b []Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Node != b[i].Node || a[i].Seq != b[i].Seq || a[i].Hash != b[i].Hash {
			return false
		}
	}
	return true
}

func newEmbedded(t *testing.T) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "history.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// chainOf builds n intact entries of node, then lets edit change them
// before they are stored as records; edit returns the records to store.
func chainOf(t *testing.T, node string, n int) []Entry {
	t.Helper()
	es := make([]Entry, n)
	prev := ZeroHash
	for i := range es {
		e, err := prepare(userEntry(i), time.Date(2026, 11, 1, 0, 0, i, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		e.Seq, e.Node, e.PrevHash = uint64(i+1), node, prev
		_, h, err := encode(e)
		if err != nil {
			t.Fatal(err)
		}
		e.Hash, prev = h, h
		es[i] = e
	}
	return es
}

func recordsOf(t *testing.T, es []Entry) []history.Record {
	t.Helper()
	recs := make([]history.Record, len(es))
	for i, e := range es {
		data, h, err := encode(e)
		if err != nil {
			t.Fatal(err)
		}
		if h != e.Hash {
			// A changed entry keeps its old hash, as a forger who did not
			// recompute it would leave it.
			data = append(data[:len(data)-hashSuffixLen+len(hashKey)], e.Hash+`"}`...)
		}
		recs[i] = record(e, data)
	}
	return recs
}

// TestVerifyNamesTheFirstBrokenLink covers every reason Verify gives, on
// chains written into a store directly.
func TestVerifyNamesTheFirstBrokenLink(t *testing.T) {
	const node = "n1"
	rehash := func(e *Entry) {
		_, h, _ := encode(*e)
		e.Hash = h
	}
	tests := []struct {
		name          string
		edit          func(es []Entry) []history.Record
		wantBroken    *Broken
		wantTruncated bool
	}{
		{"an intact chain is ok", nil, nil, false},
		{"a changed entry is a hash mismatch", func(es []Entry) []history.Record {
			es[4].Outcome = OutcomeFailure
			return recordsOf(t, es)
		}, &Broken{5, "hash mismatch"}, false},
		{"a changed entry with its hash recomputed breaks the next link", func(es []Entry) []history.Record {
			es[4].Actor = "mallory"
			rehash(&es[4])
			return recordsOf(t, es)
		}, &Broken{6, "prev_hash does not match entry 5"}, false},
		{"a removed entry is a gap", func(es []Entry) []history.Record {
			return recordsOf(t, slices.Delete(es, 6, 7))
		}, &Broken{8, "gap after 6"}, false},
		{"a first entry must start from zero", func(es []Entry) []history.Record {
			es[0].PrevHash = strings.Repeat("1", 64)
			rehash(&es[0])
			return recordsOf(t, es[:1])
		}, &Broken{1, "first entry's prev_hash is not zero"}, false},
		{"a chain whose head retention removed is truncated, not broken", func(es []Entry) []history.Record {
			return recordsOf(t, es[3:])
		}, nil, true},
		{"an entry moved to another seq is named", func(es []Entry) []history.Record {
			recs := recordsOf(t, es)
			recs[2].Data = recs[3].Data
			return recs
		}, &Broken{3, "seq 4 in the entry does not match its position"}, false},
		{"an entry copied from another node is named", func(es []Entry) []history.Record {
			es[1].Node = "n2"
			rehash(&es[1])
			recs := recordsOf(t, es)
			recs[1].Stream = Stream(node)
			return recs
		}, &Broken{2, `node "n2" in the entry does not match the chain`}, false},
		{"bytes that are not an entry are named", func(es []Entry) []history.Record {
			recs := recordsOf(t, es)
			recs[7].Data = []byte(`{"seq":8}`)
			return recs
		}, &Broken{8, "undecodable: not an audit entry: no trailing hash"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newEmbedded(t)
			es := chainOf(t, node, 10)
			recs := recordsOf(t, es)
			if tc.edit != nil {
				recs = tc.edit(es)
			}
			if err := s.Append(context.Background(), recs); err != nil {
				t.Fatal(err)
			}
			rep := mustVerify(t, s, node)
			if (rep.FirstBroken == nil) != (tc.wantBroken == nil) || (tc.wantBroken != nil && *rep.FirstBroken != *tc.wantBroken) {
				t.Fatalf("first broken %+v, want %+v", rep.FirstBroken, tc.wantBroken)
			}
			if rep.Truncated != tc.wantTruncated {
				t.Fatalf("truncated %v, want %v", rep.Truncated, tc.wantTruncated)
			}
		})
	}
}

// hidingStore hides a chain's entries above a seq, as a deletion of the
// newest entries would.
type hidingStore struct {
	history.Store
	above uint64
}

func (h hidingStore) Read(ctx context.Context, stream string, from, to uint64, limit int) ([]history.Record, error) {
	if stream != registryStream {
		to = min(to, h.above)
	}
	if from > to {
		return nil, nil
	}
	return h.Store.Read(ctx, stream, from, to, limit)
}

func TestLogVerifyNotices(t *testing.T) {
	t.Run("entries missing from the end are named by the writer", func(t *testing.T) {
		s := newEmbedded(t)
		l := openLog(t, s, "n1")
		defer closeLog(t, l)
		for i := range 5 {
			if _, err := l.Append(context.Background(), userEntry(i)); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := l.verifyWith(context.Background(), hidingStore{s, 3})
		if err != nil || rep.FirstBroken == nil || *rep.FirstBroken != (Broken{4, "entries after 3 are missing: the writer stored up to 5"}) {
			t.Fatalf("%+v %+v %v", rep, rep.FirstBroken, err)
		}
	})
}

func TestAppendRefusesABadEntryNamingEveryField(t *testing.T) {
	s := newEmbedded(t)
	l := openLog(t, s, "n1")
	defer closeLog(t, l)
	_, err := l.Append(context.Background(), Entry{ActorType: "robot", Outcome: "maybe", Diff: map[string]any{"f": func() {}}})
	p, ok := problem.As(err)
	if !ok || p.Kind != problem.KindInvalid {
		t.Fatalf("error %v is not a problem", err)
	}
	var fields []string
	for _, d := range p.Details {
		fields = append(fields, d.Field)
	}
	slices.Sort(fields)
	if want := []string{"action", "actor_type", "diff", "outcome"}; !slices.Equal(fields, want) {
		t.Errorf("problems name %q, want %q", fields, want)
	}
	if seq, _ := l.Head(); seq != 0 {
		t.Fatalf("a refused entry took seq %d", seq)
	}
}

func TestAppendCleansWhatItStores(t *testing.T) {
	s := newEmbedded(t)
	l := openLog(t, s, "n1")
	defer closeLog(t, l)
	long := strings.Repeat("é", 300) // 600 bytes
	e, err := l.Append(context.Background(), Entry{Actor: long, ActorType: ActorUser, Action: "auth.login", Outcome: OutcomeFailure,
		SourceIP: "10.0.0.1\x00", Diff: map[string]any{"big": strings.Repeat("x", MaxDiffLen)},
		Time: time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.FixedZone("x", 3600))})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Actor) > MaxFieldLen || !strings.HasPrefix(long, e.Actor) || len(e.Actor)%2 != 0 {
		t.Fatalf("actor cut badly: %d bytes", len(e.Actor))
	}
	if e.SourceIP != "10.0.0.1\uFFFD" {
		t.Fatalf("source ip %q", e.SourceIP)
	}
	if e.Diff["truncated"] != true {
		t.Fatalf("a huge diff was kept: %d keys", len(e.Diff))
	}
	if want := time.Date(2026, 1, 2, 2, 4, 5, 678901000, time.UTC); !e.Time.Equal(want) || e.Time.Location() != time.UTC {
		t.Fatalf("time %v, want %v", e.Time, want)
	}
	p, err := Query(context.Background(), s, Filter{Actor: e.Actor})
	if err != nil || len(p.Entries) != 1 || p.Entries[0].Hash != e.Hash {
		t.Fatalf("query by the cut actor: %+v %v", p, err)
	}
}

func TestSecretsNeverReachTheStore(t *testing.T) {
	s := newEmbedded(t)
	l := openLog(t, s, "n1")
	type creds struct {
		Username   string `json:"username"`
		Password   string `json:"password"`
		PrivateKey string `json:"private_key"`
	}
	_, err := l.Append(context.Background(), Entry{ActorType: ActorUser, Action: "credential.create", Outcome: OutcomeSuccess,
		Diff: map[string]any{"after": creds{"root", "s3cr3t-pw", "-----BEGIN OPENSSH PRIVATE KEY-----abc"},
			"note": "-----BEGIN RSA PRIVATE KEY-----xyz", "list": []any{map[string]any{"api_token": "tok-123"}}}})
	if err != nil {
		t.Fatal(err)
	}
	closeLog(t, l)
	var buf bytes.Buffer
	if _, err := history.Export(context.Background(), s, &buf, nil); err != nil {
		t.Fatal(err)
	}
	// Data is base64 in the export; decode the records to look.
	err = history.DecodeJSONL(&buf, func(r history.Record) error {
		for _, secret := range []string{"s3cr3t-pw", "PRIVATE KEY", "tok-123"} {
			if bytes.Contains(r.Data, []byte(secret)) {
				return fmt.Errorf("%s/%d holds %q: %s", r.Stream, r.Seq, secret, r.Data)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// failingStore fails appends while fail is set, after storing the batch
// when stored is set too (an ambiguous failure: the commit happened, the
// answer was lost).
type failingStore struct {
	history.Store
	mu           sync.Mutex
	fail, stored bool
}

var errInjected = errors.New("injected store failure")

func (f *failingStore) Append(ctx context.Context, recs []history.Record) error {
	f.mu.Lock()
	fail, stored := f.fail, f.stored
	f.mu.Unlock()
	if fail && stored {
		if err := f.Store.Append(ctx, recs); err != nil {
			return err
		}
	}
	if fail {
		return errInjected
	}
	return f.Store.Append(ctx, recs)
}

func (f *failingStore) set(fail, stored bool) {
	f.mu.Lock()
	f.fail, f.stored = fail, stored
	f.mu.Unlock()
}

func TestAFailedWriteFailsTheAppendAndTheChainStaysWhole(t *testing.T) {
	for _, stored := range []bool{false, true} {
		name := "when nothing was stored"
		if stored {
			name = "when the batch was stored but the answer lost"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			fs := &failingStore{Store: newEmbedded(t)}
			l := openLog(t, fs, "n1")
			defer closeLog(t, l)
			if _, err := l.Append(ctx, userEntry(0)); err != nil {
				t.Fatal(err)
			}
			fs.set(true, stored)
			if n := appendErrors(t, l); n != 0 {
				t.Fatalf("append errors before the failure = %v", n)
			}
			if _, err := l.Append(ctx, userEntry(1)); !errors.Is(err, errInjected) {
				t.Fatalf("append during a failure: %v", err)
			}
			fs.set(false, false)
			e, err := l.Append(ctx, userEntry(2))
			if err != nil {
				t.Fatal(err)
			}
			if n := appendErrors(t, l); n != 1 {
				t.Fatalf("append errors after one failed entry = %v, want 1", n)
			}
			if want := map[bool]uint64{false: 2, true: 3}[stored]; e.Seq != want {
				t.Fatalf("seq after the failure %d, want %d", e.Seq, want)
			}
			if rep := mustVerify(t, fs.Store, "n1"); !rep.OK() || rep.LastSeq != e.Seq {
				t.Fatalf("%+v %+v", rep, rep.FirstBroken)
			}
		})
	}
}

// appendErrors scrapes opsconductor_audit_append_errors_total from l.
func appendErrors(t *testing.T, l *Log) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(l.Metrics())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == "opsconductor_audit_append_errors_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("opsconductor_audit_append_errors_total not collected")
	return 0
}

func TestASecondWriterOnTheSameChainIsRefused(t *testing.T) {
	ctx := context.Background()
	s := newEmbedded(t)
	a, b := openLog(t, s, "n1"), openLog(t, s, "n1")
	defer closeLog(t, a)
	defer closeLog(t, b)
	if _, err := a.Append(ctx, userEntry(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(ctx, userEntry(1)); err == nil || !strings.Contains(err.Error(), "another controller") {
		t.Fatalf("the second writer's append: %v", err)
	}
	if rep := mustVerify(t, s, "n1"); !rep.OK() || rep.Entries != 1 {
		t.Fatalf("%+v", rep)
	}
}

func TestCloseStoresWhatIsPendingAndRefusesMore(t *testing.T) {
	ctx := context.Background()
	s := newEmbedded(t)
	l := openLog(t, s, "n1")
	results := make(chan error, 50)
	for i := range 50 {
		go func() {
			_, err := l.Append(ctx, userEntry(i))
			results <- err
		}()
	}
	stored := 0
	for range 50 {
		err := <-results
		switch {
		case err == nil:
			stored++
		case errors.Is(err, ErrClosed):
		default:
			t.Fatal(err)
		}
		if stored == 10 {
			// Close while the rest are in flight or not yet queued.
			go func() { _ = l.Close(ctx) }()
		}
	}
	closeLog(t, l)
	if _, err := l.Append(ctx, userEntry(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	rep := mustVerify(t, s, "n1")
	if !rep.OK() || rep.Entries != int64(stored) {
		t.Fatalf("%d appends succeeded, chain %+v", stored, rep)
	}
}

func TestOpenRefusesABadNode(t *testing.T) {
	s := newEmbedded(t)
	for _, node := range []string{"", "a/b", "a\x00", strings.Repeat("n", MaxNodeLen+1)} {
		if _, err := Open(context.Background(), Config{Store: s, Node: node}); !problem.Is(err, problem.KindInvalid) {
			t.Errorf("node %q: %v", node, err)
		}
	}
}

// TestLogsNeverHoldTheEntry checks what the Log writes to its logger when
// a write fails: the count and the store's error, never an entry's diff.
func TestLogsNeverHoldTheEntry(t *testing.T) {
	var buf syncBuffer
	fs := &failingStore{Store: newEmbedded(t)}
	l, err := Open(context.Background(), Config{Store: fs, Node: "n1", Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	fs.set(true, false)
	e := userEntry(0)
	e.Diff = map[string]any{"note": "s3cr3t-note", "password": "hunter2"}
	if _, err := l.Append(context.Background(), e); err == nil {
		t.Fatal("append succeeded against a failing store")
	}
	closeLog(t, l)
	out := buf.String()
	if !strings.Contains(out, "audit entries not recorded") {
		t.Fatalf("the failure was not logged: %s", out)
	}
	for _, s := range []string{"s3cr3t-note", "hunter2", "user/u0000"} {
		if strings.Contains(out, s) {
			t.Fatalf("the log holds %q: %s", s, out)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
