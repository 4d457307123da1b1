package gateway

import (
	"context"
	"net/http"

	"github.com/opsconductor/opsconductor/controller/cluster"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// reservedHealthKey reports whether name is a top-level /health field that
// a section may not replace.
func reservedHealthKey(name string) bool {
	switch name {
	case "status", "node_id", "version", "raft":
		return true
	}
	return false
}

// health is liveness: it answers 200 whenever the process can serve HTTP,
// and reports what each section sees. It must not wait on the network.
func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	doc := map[string]any{"status": "ok", "node_id": s.nodeID, "version": s.version}
	for _, sec := range s.sections {
		doc[sec.name] = sec.fn(r.Context())
	}
	writeJSON(w, r, http.StatusOK, doc)
	return nil
}

// raftSection is the "raft" section of /health: the node's own view,
// which never waits on the network.
func (s *Server) raftSection(context.Context) any {
	st := s.cluster.Status()
	st.Peers = peersOrEmpty(st.Peers)
	return st
}

// peersOrEmpty keeps "peers" an array in JSON even before the node knows its
// configuration, so clients need no null check.
func peersOrEmpty(p []cluster.Peer) []cluster.Peer {
	if p == nil {
		return []cluster.Peer{}
	}
	return p
}

type readyBody struct {
	Status  string `json:"status"`
	NodeID  string `json:"node_id"`
	Version string `json:"version"`
}

// ready is readiness: 503 with the cluster's reason until this node knows a
// leader and has caught up, so load balancers route around it meanwhile.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) error {
	if err := s.cluster.Ready(); err != nil {
		reason := err.Error()
		code := "not_ready"
		if p, ok := problem.As(err); ok {
			reason = p.Message
			if p.Code != "" {
				code = p.Code
			}
		}
		return problem.Unavailable(code, "%s", reason)
	}
	for _, name := range sortedKeys(s.checks) {
		if err := s.checks[name](r.Context()); err != nil {
			return problem.Unavailable(name+"_unavailable", "%s: %v", name, err)
		}
	}
	writeJSON(w, r, http.StatusOK, readyBody{Status: "ready", NodeID: s.nodeID, Version: s.version})
	return nil
}

// serveMetrics serves the registry in the Prometheus exposition formats.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	s.promHandler.ServeHTTP(w, r)
	return nil
}
