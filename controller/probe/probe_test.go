package probe

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// localApplier applies straight to a store, as a single-node leader would,
// so the domain is tested without Raft.
type localApplier struct {
	store *state.Store
	index uint64
}

func (a *localApplier) Apply(_ context.Context, cmds ...state.Command) ([]state.Result, error) {
	a.index++
	res, err := a.store.Apply(a.index, state.Entry{Time: time.Unix(int64(a.index), 0).UTC(), Commands: cmds})
	return state.EncodeResults(res), err
}

func newService(t *testing.T) (*Service, *localApplier) {
	t.Helper()
	reg := state.NewRegistry()
	reg.MustRegister(Domain())
	store, err := state.NewStore(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a := &localApplier{store: store}
	return NewService("n1", a, store), a
}

func TestWriteNumbersRecordsInCommitOrder(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		rec, err := s.Write(ctx, fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		if rec.Seq != uint64(i) || rec.ID != fmt.Sprint(i) || rec.Node != "n1" || rec.Index != uint64(i) {
			t.Fatalf("write %d: %+v", i, rec)
		}
		if got, err := s.Get(ctx, rec.ID); err != nil || got != rec {
			t.Fatalf("get %s: %+v %v", rec.ID, got, err)
		}
	}
}

func TestBadRequestsNameTheField(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		kind problem.Kind
		want string
	}{
		{"an oversized payload", func() error { _, err := s.Write(ctx, strings.Repeat("x", MaxPayload+1)); return err }, problem.KindInvalid, "payload"},
		{"an unknown ID", func() error { _, err := s.Get(ctx, "42"); return err }, problem.KindNotFound, `"42"`},
		{"a malformed ID", func() error { _, err := s.Get(ctx, "abc"); return err }, problem.KindNotFound, `"abc"`},
		{"a malformed cursor", func() error { _, err := s.List(ctx, "abc", 10); return err }, problem.KindInvalid, "after"},
	}
	for _, tt := range tests {
		t.Run("it rejects "+tt.name, func(t *testing.T) {
			err := tt.call()
			p, ok := problem.As(err)
			if !ok || p.Kind != tt.kind || !strings.Contains(p.Error(), tt.want) {
				t.Fatalf("got %v, want a %s problem mentioning %s", err, tt.kind, tt.want)
			}
		})
	}
}

func TestListPagesAndTrimsTheOldest(t *testing.T) {
	s, a := newService(t)
	ctx := context.Background()
	// One entry carrying many writes, as the leader's batcher makes them.
	var cmds []state.Command
	for i := range MaxRecords + 25 {
		c, err := state.NewCommand(CmdWrite, 1, writePayload{Node: "n1", Payload: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
		if len(cmds) == state.MaxCommandsPerEntry {
			if _, err := a.Apply(ctx, cmds...); err != nil {
				t.Fatal(err)
			}
			cmds = nil
		}
	}
	if _, err := a.Apply(ctx, cmds...); err != nil {
		t.Fatal(err)
	}
	var all []Record
	after := ""
	for {
		page, err := s.List(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].ID
	}
	if len(all) != MaxRecords {
		t.Fatalf("kept %d records, want %d", len(all), MaxRecords)
	}
	if all[0].Seq != 26 || all[len(all)-1].Seq != MaxRecords+25 {
		t.Fatalf("kept %d..%d, want 26..%d", all[0].Seq, all[len(all)-1].Seq, MaxRecords+25)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq != all[i-1].Seq+1 {
			t.Fatalf("gap between %d and %d", all[i-1].Seq, all[i].Seq)
		}
	}
}
