package gateway

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/opsconductor/opsconductor/controller/communication/audit"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// auditRoutes lists the audit log's read routes: query, verify, export.
// They only read, so none of them is itself audited; export streams, which
// a mutating (held) route could not.
func (s *Server) auditRoutes() []route {
	r := func(method, path string, h handlerFunc) route {
		return s.newRoute(method, path, ClassRead, perm(identity.PermAuditRead), s.needAudit(h))
	}
	return []route{
		r(http.MethodGet, "/api/v1/audit", s.listAudit),
		r(http.MethodGet, "/api/v1/audit/verify", s.verifyAudit),
		r(http.MethodGet, "/api/v1/audit/export", s.exportAudit),
	}
}

// needAudit answers 503 while no audit store is wired.
func (s *Server) needAudit(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.auditStore == nil {
			return problem.Unavailable("audit_unavailable", "this controller does not serve the audit log: it is not wired")
		}
		return h(w, r)
	}
}

// auditList is GET /api/v1/audit: one page, newest first.
type auditList struct {
	Items []audit.Entry `json:"items"`
	// Next continues the query (?cursor=); empty on the last page.
	Next string `json:"next"`
	// Undecodable counts stored records of the page that are not audit
	// entries; verify names them.
	Undecodable int `json:"undecodable,omitempty"`
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	f, err := audit.ParseFilter(r.URL.Query())
	if err != nil {
		return err
	}
	p, err := audit.Query(r.Context(), s.auditStore, f)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, auditList{Items: p.Entries, Next: p.Next, Undecodable: p.Undecodable})
	return nil
}

// auditVerification is GET /api/v1/audit/verify.
type auditVerification struct {
	// OK is true when every chain is intact.
	OK bool `json:"ok"`
	// FirstBroken is the first broken link of the first broken chain.
	FirstBroken *auditBrokenLink `json:"first_broken,omitempty"`
	Chains      []audit.Report   `json:"chains"`
}

type auditBrokenLink struct {
	Node string `json:"node"`
	audit.Broken
}

// verifyAudit walks every registered chain and those of the cluster's
// members: a chain whose registration was deleted from storage is still
// walked as long as its node is a member. A broken chain is a finding,
// not a failed request, so it is answered 200 with ok false.
func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) error {
	var members []string
	for _, p := range s.cluster.Status().Peers {
		members = append(members, p.ID)
	}
	if s.nodeID != "" {
		members = append(members, s.nodeID)
	}
	reps, err := audit.VerifyAll(r.Context(), s.auditStore, members...)
	if err != nil {
		return err
	}
	out := auditVerification{OK: true, Chains: reps}
	if out.Chains == nil {
		out.Chains = []audit.Report{}
	}
	for _, rep := range reps {
		if !rep.OK() {
			out.OK = false
			out.FirstBroken = &auditBrokenLink{Node: rep.Node, Broken: *rep.FirstBroken}
			break
		}
	}
	writeJSON(w, r, http.StatusOK, out)
	return nil
}

// exportAudit streams every entry matching the filter, newest first:
// JSON Lines as stored (each line checkable against its hash) or CSV.
func (s *Server) exportAudit(w http.ResponseWriter, r *http.Request) error {
	q := url.Values{}
	for k, v := range r.URL.Query() {
		if k != "format" {
			q[k] = v
		}
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "jsonl"
	}
	var ctype string
	switch format {
	case "jsonl":
		ctype = "application/jsonl"
	case "csv":
		ctype = "text/csv; charset=utf-8"
	default:
		// Report format with the filter's problems, all at once.
		l := problem.List{}
		l.Add("format", "must be jsonl or csv, got %q", format)
		if _, err := audit.ParseFilter(q); err != nil {
			if p, ok := problem.As(err); ok {
				l = appendProblems(l, p)
			}
		}
		return l.Err()
	}
	f, err := audit.ParseFilter(q)
	if err != nil {
		return err
	}
	// Check the query (a bad cursor, a store that is down) before the
	// first byte goes out, while an error can still be a status.
	probe := f
	probe.Limit = 1
	if _, err := audit.Query(r.Context(), s.auditStore, probe); err != nil {
		return err
	}
	name := fmt.Sprintf("audit-%s.%s", time.Now().UTC().Format("20060102T150405Z"), format)
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	var ew audit.EntryWriter = audit.NewJSONLWriter(bw)
	if format == "csv" {
		ew = audit.NewCSVWriter(bw)
	}
	n, err := audit.Export(r.Context(), s.auditStore, f, ew)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		// The status is sent: aborting the connection is the only way
		// left to tell the client that the export is incomplete, rather
		// than let a short file pass for the whole log.
		loggerFrom(r.Context()).Warn("audit export failed after streaming began; aborting response", "entries", n, "error", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// appendProblems adds p's details (or p itself) to l.
func appendProblems(l problem.List, p *problem.Error) problem.List {
	if len(p.Details) == 0 {
		return append(l, p)
	}
	for i := range p.Details {
		l = append(l, &p.Details[i])
	}
	return l
}
