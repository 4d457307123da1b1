package gateway

import (
	"fmt"
	"mime"
	"net/http"
	"time"

	"github.com/opsconductor/opsconductor/controller/cluster"
	"github.com/opsconductor/opsconductor/controller/problem"
)

type peerList struct {
	Peers    []cluster.PeerProgress `json:"peers"`
	LeaderID string                 `json:"leader_id"`
}

func (s *Server) listPeers(w http.ResponseWriter, r *http.Request) error {
	st := s.cluster.Status()
	peers := s.cluster.PeerProgress(r.Context())
	if peers == nil {
		peers = []cluster.PeerProgress{}
	}
	writeJSON(w, r, http.StatusOK, peerList{Peers: peers, LeaderID: st.LeaderID})
	return nil
}

func (s *Server) removePeer(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.cluster.RemovePeer(r.Context(), id); err != nil {
		return fmt.Errorf("remove peer %q: %w", id, err)
	}
	loggerFrom(r.Context()).Info("raft peer removed", "peer_id", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// leadershipTransfer reports the leader before and, as far as this node has
// seen yet, after the transfer.
type leadershipTransfer struct {
	PreviousLeaderID string `json:"previous_leader_id"`
	LeaderID         string `json:"leader_id"`
	LeaderAddr       string `json:"leader_addr"`
	Term             uint64 `json:"term"`
}

// transferLeadership answers 200 when this node has already seen the new
// leader, else 202: the transfer happened but the new leader's first
// heartbeat has not reached us, and waiting for it here would mean polling.
func (s *Server) transferLeadership(w http.ResponseWriter, r *http.Request) error {
	before := s.cluster.Status()
	if err := s.cluster.TransferLeadership(r.Context()); err != nil {
		return fmt.Errorf("transfer leadership: %w", err)
	}
	after := s.cluster.Status()
	status := http.StatusAccepted
	if after.LeaderID != "" && after.LeaderID != before.LeaderID {
		status = http.StatusOK
	}
	loggerFrom(r.Context()).Info("raft leadership transferred", "previous_leader_id", before.LeaderID, "leader_id", after.LeaderID)
	writeJSON(w, r, status, leadershipTransfer{
		PreviousLeaderID: before.LeaderID, LeaderID: after.LeaderID, LeaderAddr: after.LeaderAddr, Term: after.Term,
	})
	return nil
}

// saveSnapshot streams the snapshot as it is produced. Headers wait for the
// first byte so that a snapshot that fails at once still gets an error
// envelope; one that fails midway aborts the connection, because a 200 with
// a truncated body would look like a complete backup.
func (s *Server) saveSnapshot(w http.ResponseWriter, r *http.Request) error {
	name := fmt.Sprintf("opsconductor-%s-%s.snap", s.nodeID, time.Now().UTC().Format("20060102T150405Z"))
	sw := &firstWrite{w: w, start: func(h http.Header) {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
		h.Set("Cache-Control", "no-store")
	}}
	stale, err := boolParam(r, "stale")
	if err != nil {
		return err
	}
	if stale {
		err = s.cluster.SnapshotSaveLocal(sw)
	} else {
		err = s.cluster.SnapshotSave(r.Context(), sw)
	}
	if err == nil && !sw.started {
		sw.begin() // an empty snapshot is still a 200
	}
	switch {
	case err == nil:
		loggerFrom(r.Context()).Info("snapshot saved", "bytes", sw.n)
		return nil
	case !sw.started:
		return fmt.Errorf("save snapshot: %w", err)
	}
	loggerFrom(r.Context()).Error("snapshot save failed after streaming began; aborting response", "bytes", sw.n, "error", err)
	panic(http.ErrAbortHandler)
}

// firstWrite sends the success headers on the first write.
type firstWrite struct {
	w       http.ResponseWriter
	start   func(http.Header)
	started bool
	n       int64
}

func (f *firstWrite) begin() {
	f.started = true
	f.start(f.w.Header())
	f.w.WriteHeader(http.StatusOK)
}

func (f *firstWrite) Write(p []byte) (int, error) {
	if !f.started {
		f.begin()
	}
	n, err := f.w.Write(p)
	f.n += int64(n)
	return n, err
}

// restoreSnapshot streams the body into the cluster; it is never buffered,
// which is why this route alone may be as large as MaxSnapshotBytes.
func (s *Server) restoreSnapshot(w http.ResponseWriter, r *http.Request) error {
	if err := requireMediaType(r, "application/octet-stream"); err != nil {
		return err
	}
	if r.ContentLength == 0 {
		return problem.Invalid("body", "must not be empty: send the snapshot file")
	}
	body := &readErrs{r: r.Body}
	if err := s.cluster.SnapshotRestore(r.Context(), body); err != nil {
		// The limit is enforced by our reader; report it even if the
		// cluster flattened the error it got from us.
		if tooLarge, ok := asMaxBytes(body.err); ok {
			return tooLargeProblem(tooLarge.Limit)
		}
		return fmt.Errorf("restore snapshot: %w", err)
	}
	loggerFrom(r.Context()).Warn("snapshot restored: the whole state store was replaced")
	w.WriteHeader(http.StatusNoContent)
	return nil
}
