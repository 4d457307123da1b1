package audit

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/opsconductor/opsconductor/controller/history"
)

// Broken names the first entry at which a chain stops being intact.
type Broken struct {
	Seq uint64 `json:"seq"`
	// Reason is one of "hash mismatch", "prev_hash does not match entry
	// N", "gap after N", "first entry's prev_hash is not zero",
	// "undecodable: …", "seq N in the entry does not match its position",
	// "node … in the entry does not match the chain", or (from Log.Verify)
	// "entries after N are missing: the writer stored up to M".
	Reason string `json:"reason"`
}

// Report is the outcome of walking one chain.
type Report struct {
	Node string `json:"node"`
	// Entries is how many entries the walk read.
	Entries int64 `json:"entries"`
	// FirstSeq and FirstTime are the oldest entry's; LastSeq and LastHash
	// the newest's (zero for an empty chain).
	FirstSeq  uint64    `json:"first_seq"`
	FirstTime time.Time `json:"first_time,omitzero"`
	LastSeq   uint64    `json:"last_seq"`
	LastHash  string    `json:"last_hash,omitempty"`
	// Truncated is set when the oldest entry is not seq 1: retention
	// removed the chain's head. Compare FirstTime with the retention
	// configured: entries removed from the head are otherwise invisible.
	Truncated bool `json:"truncated"`
	// FirstBroken is nil when the chain is intact.
	FirstBroken *Broken `json:"first_broken,omitempty"`
	// Problems counts every broken link, the first included.
	Problems int64 `json:"problems"`
}

// OK reports whether the chain is intact.
func (r Report) OK() bool { return r.FirstBroken == nil }

// chainReader is what Verify needs of a store.
type chainReader interface {
	Read(ctx context.Context, stream string, from, to uint64, limit int) ([]history.Record, error)
}

// Verify walks node's chain in s and reports the first broken link. An
// error means the walk could not finish (the store failed), not that the
// chain is broken.
func Verify(ctx context.Context, s chainReader, node string) (Report, error) {
	if err := checkNode(node); err != nil {
		return Report{}, err
	}
	w := walker{rep: Report{Node: node}}
	stream := Stream(node)
	from := uint64(0)
	for {
		recs, err := s.Read(ctx, stream, from, history.MaxSeq, history.MaxPage)
		if err != nil {
			return Report{}, fmt.Errorf("verify audit chain %s from %d: %w", node, from, err)
		}
		for _, r := range recs {
			w.check(r)
		}
		if len(recs) < history.MaxPage {
			return w.rep, nil
		}
		from = recs[len(recs)-1].Seq + 1
	}
}

// VerifyAll verifies every registered chain, in registry order, then the
// chains of the nodes in also that the registry does not list (pass the
// cluster's members: a registration deleted from storage would otherwise
// hide a whole chain).
func VerifyAll(ctx context.Context, s history.Store, also ...string) ([]Report, error) {
	nodes, err := Nodes(ctx, s)
	if err != nil {
		return nil, err
	}
	for _, n := range also {
		if !slices.Contains(nodes, n) {
			nodes = append(nodes, n)
		}
	}
	reps := make([]Report, 0, len(nodes))
	for _, n := range nodes {
		rep, err := Verify(ctx, s, n)
		if err != nil {
			return nil, err
		}
		reps = append(reps, rep)
	}
	return reps, nil
}

// Verify walks this Log's chain and also checks that none of the entries
// it knows it stored has disappeared from the end, which the chain alone
// cannot show.
func (l *Log) Verify(ctx context.Context) (Report, error) {
	return l.verifyWith(ctx, l.store)
}

func (l *Log) verifyWith(ctx context.Context, s chainReader) (Report, error) {
	head, _ := l.Head()
	rep, err := Verify(ctx, s, l.node)
	if err != nil {
		return rep, err
	}
	if rep.LastSeq < head {
		rep.broken(rep.LastSeq+1, fmt.Sprintf("entries after %d are missing: the writer stored up to %d", rep.LastSeq, head))
	}
	return rep, nil
}

type walker struct {
	rep      Report
	prevHash string
}

func (r *Report) broken(seq uint64, reason string) {
	r.Problems++
	if r.FirstBroken == nil {
		r.FirstBroken = &Broken{Seq: seq, Reason: reason}
	}
}

// check takes the next stored record of the chain. An entry is checked
// against itself first (the most precise reason), then against the one
// before it.
func (w *walker) check(r history.Record) {
	rep := &w.rep
	first := rep.Entries == 0
	rep.Entries++
	prevSeq := rep.LastSeq
	rep.LastSeq = r.Seq
	if first {
		rep.FirstSeq, rep.FirstTime = r.Seq, r.Time
	}
	e, computed, err := decode(r.Data)
	if err != nil {
		rep.broken(r.Seq, "undecodable: "+err.Error())
		w.prevHash = rawHash(r.Data)
		rep.LastHash = w.prevHash
		return
	}
	switch {
	case computed != e.Hash:
		rep.broken(r.Seq, "hash mismatch")
	case e.Seq != r.Seq:
		rep.broken(r.Seq, fmt.Sprintf("seq %d in the entry does not match its position", e.Seq))
	case e.Node != rep.Node:
		rep.broken(r.Seq, fmt.Sprintf("node %q in the entry does not match the chain", e.Node))
	case first && r.Seq <= 1:
		if e.PrevHash != ZeroHash {
			rep.broken(r.Seq, "first entry's prev_hash is not zero")
		}
	case first:
		rep.Truncated = true
	case r.Seq != prevSeq+1:
		rep.broken(r.Seq, fmt.Sprintf("gap after %d", prevSeq))
	case e.PrevHash != w.prevHash:
		rep.broken(r.Seq, fmt.Sprintf("prev_hash does not match entry %d", prevSeq))
	}
	// The next entry is compared with what this one claims, so one
	// changed entry is reported once, not again at its successor.
	w.prevHash = e.Hash
	rep.LastHash = e.Hash
}
