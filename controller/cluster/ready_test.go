package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// TestRestartedNodeIsNotReadyUntilItReplaysItsLog restarts a follower cut
// off from its peers: its store holds none of the entries in its own log
// (they are applied only once a leader confirms the commit index), so it
// must say it is catching up, not serve reads (or reject credentials)
// from that empty store. Healed, it catches up and is ready.
func TestRestartedNodeIsNotReadyUntilItReplaysItsLog(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(nil)
	writeProbes(t, leader, 20)
	c.ensureSame()
	var f *testNode
	for _, n := range c.nodes {
		if n != leader {
			f = n
			break
		}
	}
	id, dir, bind := f.NodeID(), f.dir, f.RaftAddr()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	faults := NewFaults()
	for _, n := range c.others(f) {
		faults.Block(n.NodeID())
	}
	restarted := newTestNode(t, c.ca, id, dir, bind, func(cfg *Config) { cfg.Faults = faults })
	for i, n := range c.nodes {
		if n == f {
			c.nodes[i] = restarted
		}
	}
	err := restarted.Ready()
	var pe *problem.Error
	if !errors.As(err, &pe) || pe.Code != "catching_up" {
		t.Fatalf("Ready() of a restarted node that has applied %d of its %d logged entries = %v; want catching_up",
			restarted.raft.AppliedIndex(), restarted.startLastIndex, err)
	}
	faults.Heal()
	waitFor(t, 10*time.Second, "the restarted node to be ready", func() (bool, string) {
		err := restarted.Ready()
		return err == nil, fmt.Sprint(err)
	})
	c.ensureSame()
}
