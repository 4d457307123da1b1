package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// Apply commits commands through Raft and returns one result per command.
// On a follower the commands are forwarded to the leader, which answers with
// its FSM's results. While there is no leader the call waits up to
// ApplyHold, then fails with an unavailable problem.
//
// Apply returns only once this node's own store has applied the entry, so
// a caller reads its own writes from the node it wrote through: a session
// created by a login on a follower is there when the client's next
// request, carrying the new token, arrives at that follower.
func (n *Node) Apply(ctx context.Context, cmds ...state.Command) ([]state.Result, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	if len(cmds) > state.MaxCommandsPerEntry {
		return nil, problem.Invalid("commands", "%d commands in one write, at most %d", len(cmds), state.MaxCommandsPerEntry)
	}
	start := time.Now()
	var results []state.Result
	err := n.onLeader(ctx, "apply", cmds, &results, func(ctx context.Context) error {
		var err error
		results, err = n.applyLocal(ctx, cmds)
		return err
	})
	n.metrics.observeApply(time.Since(start), err)
	if err != nil {
		return nil, err
	}
	if len(results) != len(cmds) {
		return nil, fmt.Errorf("apply: %d results for %d commands", len(results), len(cmds))
	}
	// The write is committed whatever happens next, so a caller that gives
	// up while waiting still gets its results rather than an error that
	// would invite a retry.
	_ = n.store.WaitForIndex(ctx, results[0].Index)
	return results, nil
}

// onLeader runs local on the leader, or forwards method to the leader. It
// retries while the request provably never reached a leader (no leader yet,
// the peer was not the leader, the connection failed before sending) and
// gives up after ApplyHold.
func (n *Node) onLeader(ctx context.Context, method string, in, out any, local func(context.Context) error) error {
	hold := time.NewTimer(n.cfg.ApplyHold)
	defer hold.Stop()
	backoff := 10 * time.Millisecond
	for {
		changed := n.leaderWait()
		var err error
		if n.raft.State() == raft.Leader {
			err = local(ctx)
			if err == nil || !retryable(err) {
				return err
			}
		} else if addr, id := n.raft.LeaderWithID(); addr != "" {
			n.metrics.forwarded.Inc()
			err = n.rpc.call(ctx, string(addr), method, in, out)
			if errors.Is(err, errRPCNoAnswer) && ctx.Err() == nil {
				n.log.Warn("leader did not answer a forwarded request", "method", method, "leader_id", string(id), "error", err)
				return problem.Unavailable("leader_unreachable", "the leader (%s) stopped answering before the %s completed; it may or may not have been applied: check before retrying", id, method)
			}
			if err == nil || !retryable(err) {
				return err
			}
		}
		if err != nil {
			n.log.Debug("leader not reachable; retrying", "method", method, "error", err)
		}
		// Wake on a leadership change at once; otherwise back off, since
		// a known but unreachable leader produces no new observation.
		wait := time.NewTimer(backoff)
		select {
		case <-changed:
		case <-wait.C:
			backoff = min(backoff*2, 200*time.Millisecond)
		case <-hold.C:
			wait.Stop()
			return errNoLeader(n.cfg.ApplyHold)
		case <-ctx.Done():
			wait.Stop()
			return fmt.Errorf("%s: waiting for leader: %w", method, ctx.Err())
		}
		wait.Stop()
	}
}

// retryable reports whether err proves the request was not acted on.
func retryable(err error) bool {
	if errors.Is(err, errRPCUnsent) || errors.Is(err, raft.ErrNotLeader) {
		return true
	}
	p, ok := problem.As(err)
	return ok && p.Code == "not_leader"
}

// applyLocal commits on this node, which must be the leader.
func (n *Node) applyLocal(ctx context.Context, cmds []state.Command) ([]state.Result, error) {
	if n.raft.State() != raft.Leader {
		return nil, raft.ErrNotLeader
	}
	if n.cfg.Batching {
		return n.batcher.submit(ctx, cmds)
	}
	data, err := state.EncodeEntry(state.Entry{Time: time.Now().UTC(), Commands: cmds})
	if err != nil {
		return nil, err
	}
	fut := n.raft.Apply(data, n.cfg.ApplyTimeout)
	if err := fut.Error(); err != nil {
		return nil, applyError(err)
	}
	return futureResults(fut)
}

func futureResults(fut raft.ApplyFuture) ([]state.Result, error) {
	results, ok := fut.Response().([]state.Result)
	if !ok {
		return nil, fmt.Errorf("apply index %d: unexpected FSM response %T", fut.Index(), fut.Response())
	}
	return state.EncodeResults(results), nil
}

// applyError turns Raft's errors into what a caller can act on. Losing
// leadership after the entry was handed to Raft means the outcome is
// unknown: the entry may still commit under the next leader.
func applyError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return err // never enqueued; onLeader retries
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrAbortedByRestore):
		return problem.Unavailable("leadership_lost", "leadership was lost before the write committed; it may or may not have been applied: check before retrying")
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return problem.Unavailable("leadership_transfer", "leadership is being transferred; retry shortly")
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return &problem.Error{Kind: problem.KindTimeout, Code: "apply_timeout", Message: "the write was not accepted by Raft in time; the cluster is overloaded"}
	case errors.Is(err, raft.ErrRaftShutdown):
		return problem.Unavailable("shutting_down", "this server is shutting down")
	}
	return fmt.Errorf("raft apply: %w", err)
}

// batcher coalesces concurrent writes on the leader into one log entry: one
// fsync, one replication round and one FSM transaction carry many commands.
// It is group commit: at most maxInflight entries are in Raft at once, and
// writes that arrive meanwhile wait to form the next entry. Under low load a
// slot is always free, so a lone write goes out at once.
type batcher struct {
	n      *Node
	reqCh  chan *batchReq
	slots  chan struct{}
	doneCh chan *pendingBatch
	stopCh chan struct{}
	// finished is closed once run has answered every request it took.
	finished chan struct{}
	once     sync.Once
}

type batchReq struct {
	cmds []state.Command
	resp chan batchResp
}

type batchResp struct {
	results []state.Result
	err     error
}

type pendingBatch struct {
	fut  raft.ApplyFuture
	reqs []*batchReq
}

// maxInflight is how many coalesced entries may be in Raft at once. One is
// best on the hardware measured (make bench): a commit round is two fsyncs
// in sequence (leader, then a follower), and letting more entries in only
// splits the same writes into smaller batches that queue behind each other
// in Raft, raising p99 by 5–10 ms at equal throughput.
const maxInflight = 1

func newBatcher(n *Node) *batcher {
	return &batcher{n: n, reqCh: make(chan *batchReq, 1024), slots: make(chan struct{}, maxInflight), doneCh: make(chan *pendingBatch, 64), stopCh: make(chan struct{}), finished: make(chan struct{})}
}

func (b *batcher) submit(ctx context.Context, cmds []state.Command) ([]state.Result, error) {
	req := &batchReq{cmds: cmds, resp: make(chan batchResp, 1)}
	select {
	case b.reqCh <- req:
	case <-b.stopCh:
		return nil, applyError(raft.ErrRaftShutdown)
	case <-ctx.Done():
		return nil, raft.ErrNotLeader // never enqueued
	}
	// Once enqueued, wait for the outcome even if ctx ends: the caller must
	// not be told "failed" for a write that then commits.
	select {
	case r := <-req.resp:
		return r.results, r.err
	case <-b.finished:
		select {
		case r := <-req.resp:
			return r.results, r.err
		default:
			return nil, applyError(raft.ErrRaftShutdown)
		}
	}
}

func (b *batcher) stop() { b.once.Do(func() { close(b.stopCh) }) }

// run forms batches; complete waits for them in order, so batches pipeline.
func (b *batcher) run() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.complete()
	}()
	defer func() {
		close(b.doneCh)
		wg.Wait()
		close(b.finished)
	}()
	for {
		var first *batchReq
		select {
		case first = <-b.reqCh:
		case <-b.stopCh:
			b.failQueued()
			return
		}
		select {
		case b.slots <- struct{}{}:
		case <-b.stopCh:
			first.resp <- batchResp{err: applyError(raft.ErrRaftShutdown)}
			b.failQueued()
			return
		}
		reqs, cmds := []*batchReq{first}, append([]state.Command{}, first.cmds...)
	fill:
		for len(cmds) < b.n.cfg.MaxBatch {
			select {
			case r := <-b.reqCh:
				if len(cmds)+len(r.cmds) > state.MaxCommandsPerEntry {
					// Too big to join this batch: it leads the next, which
					// needs its own slot.
					b.dispatch(reqs, cmds)
					reqs, cmds = nil, nil
					b.slots <- struct{}{}
				}
				reqs, cmds = append(reqs, r), append(cmds, r.cmds...)
			default:
				break fill
			}
		}
		b.dispatch(reqs, cmds)
	}
}

func (b *batcher) dispatch(reqs []*batchReq, cmds []state.Command) {
	data, err := state.EncodeEntry(state.Entry{Time: time.Now().UTC(), Commands: cmds})
	if err != nil {
		for _, r := range reqs {
			r.resp <- batchResp{err: err}
		}
		<-b.slots
		return
	}
	b.n.metrics.batchSize.Observe(float64(len(cmds)))
	b.doneCh <- &pendingBatch{fut: b.n.raft.Apply(data, b.n.cfg.ApplyTimeout), reqs: reqs}
}

func (b *batcher) complete() {
	for pb := range b.doneCh {
		err := pb.fut.Error()
		<-b.slots
		var results []state.Result
		if err == nil {
			results, err = futureResults(pb.fut)
		} else {
			err = applyError(err)
		}
		off := 0
		for _, r := range pb.reqs {
			if err != nil {
				r.resp <- batchResp{err: err}
				continue
			}
			r.resp <- batchResp{results: results[off : off+len(r.cmds)]}
			off += len(r.cmds)
		}
	}
}

func (b *batcher) failQueued() {
	for {
		select {
		case r := <-b.reqCh:
			r.resp <- batchResp{err: applyError(raft.ErrRaftShutdown)}
		default:
			return
		}
	}
}
