package gateway

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"

	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// maxImportBytes bounds an import body: 200,000 rows of about 300 bytes.
const maxImportBytes = 64 << 20

// assetRoutes lists the inventory's routes: targets (with import and
// export) and groups.
func (s *Server) assetRoutes() []route {
	r := func(method, path string, class RouteClass, access Access, h handlerFunc) route {
		return s.newRoute(method, path, class, access, s.needAssets(h))
	}
	read, write := perm(identity.PermAssetsRead), perm(identity.PermAssetsWrite)
	imp := r(http.MethodPost, "/api/v1/targets/import", ClassWrite, write, s.importTargets)
	imp.MaxBodyBytes = maxImportBytes
	return []route{
		consistent(r(http.MethodGet, "/api/v1/targets", ClassRead, read, s.listTargets)),
		r(http.MethodPost, "/api/v1/targets", ClassWrite, write, s.createTarget),
		imp,
		consistent(r(http.MethodGet, "/api/v1/targets/export", ClassRead, read, s.exportTargets)),
		consistent(r(http.MethodGet, "/api/v1/targets/{target}", ClassRead, read, s.getTarget)),
		r(http.MethodPatch, "/api/v1/targets/{target}", ClassWrite, write, s.patchTarget),
		r(http.MethodDelete, "/api/v1/targets/{target}", ClassWrite, write, s.deleteTarget),

		consistent(r(http.MethodGet, "/api/v1/groups", ClassRead, read, s.listGroups)),
		r(http.MethodPost, "/api/v1/groups", ClassWrite, write, s.createGroup),
		consistent(r(http.MethodGet, "/api/v1/groups/{name}", ClassRead, read, s.getGroup)),
		r(http.MethodPut, "/api/v1/groups/{name}", ClassWrite, write, s.putGroup),
		r(http.MethodDelete, "/api/v1/groups/{name}", ClassWrite, write, s.deleteGroup),
		consistent(r(http.MethodGet, "/api/v1/groups/{name}/members", ClassRead, read, s.groupMembers)),
	}
}

// needAssets answers 503 while no inventory is wired.
func (s *Server) needAssets(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.assets == nil {
			return problem.Unavailable("assets_unavailable", "this controller does not serve the inventory: it is not wired")
		}
		return h(w, r)
	}
}

// targetQuery reads the list filters: tag=k=v (repeatable), group, q,
// selector, connection, sort, limit, cursor.
func targetQuery(r *http.Request, paged bool) (assets.Query, error) {
	v := r.URL.Query()
	q := assets.Query{Group: v.Get("group"), Q: v.Get("q"), Selector: v.Get("selector"), Connection: v.Get("connection"),
		Sort: v.Get("sort"), Cursor: v.Get("cursor")}
	var errs problem.List
	for i, tag := range v["tag"] {
		k, val, ok := strings.Cut(tag, "=")
		if !ok || k == "" {
			errs.Add("tag", "tag[%d] must be key=value, got %q", i, tag)
			continue
		}
		if q.Tags == nil {
			q.Tags = map[string]string{}
		}
		if prev, dup := q.Tags[k]; dup && prev != val {
			errs.Add("tag", "tag %q is asked for with two values", k)
		}
		q.Tags[k] = val
	}
	if paged && v.Get("limit") != "" {
		n, err := strconv.Atoi(v.Get("limit"))
		if err != nil || n < 1 || n > assets.MaxLimit {
			errs.Add("limit", "must be an integer from 1 to %d, got %q", assets.MaxLimit, v.Get("limit"))
		}
		q.Limit = n
	}
	return q, errs.Err()
}

func (s *Server) listTargets(w http.ResponseWriter, r *http.Request) error {
	q, err := targetQuery(r, true)
	if err != nil {
		return err
	}
	page, err := s.assets.List(r.Context(), principal(r), q)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, page)
	return nil
}

func (s *Server) createTarget(w http.ResponseWriter, r *http.Request) error {
	var in assets.TargetInput
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	t, err := s.assets.Create(r.Context(), principal(r), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/targets/"+t.ID)
	writeJSON(w, r, http.StatusCreated, t)
	return nil
}

func (s *Server) getTarget(w http.ResponseWriter, r *http.Request) error {
	t, err := s.assets.GetFor(r.Context(), principal(r), r.PathValue("target"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, t)
	return nil
}

func (s *Server) patchTarget(w http.ResponseWriter, r *http.Request) error {
	var patch assets.TargetPatch
	if err := decodeJSON(r, &patch); err != nil {
		return err
	}
	t, err := s.assets.Update(r.Context(), principal(r), r.PathValue("target"), patch)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, t)
	return nil
}

func (s *Server) deleteTarget(w http.ResponseWriter, r *http.Request) error {
	t, err := s.assets.Delete(r.Context(), principal(r), r.PathValue("target"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, t)
	return nil
}

// importTargets is POST /api/v1/targets/import: a CSV file or a JSON
// array. ?dry_run=true checks every row and writes nothing; by default
// nothing is written unless every row is valid (400 naming rows[N].field
// for each problem); ?partial=true writes the valid rows and reports the
// rest; ?mode=create|upsert.
func (s *Server) importTargets(w http.ResponseWriter, r *http.Request) error {
	var (
		opts assets.ImportOptions
		err  error
	)
	opts.Mode = r.URL.Query().Get("mode")
	if opts.DryRun, err = boolParam(r, "dry_run"); err != nil {
		return err
	}
	if opts.Partial, err = boolParam(r, "partial"); err != nil {
		return err
	}
	var (
		rows []assets.ImportRow
		csv  bool
	)
	switch {
	case requireMediaType(r, "text/csv") == nil:
		csv = true
		rows, err = assets.DecodeCSV(r.Body)
	case requireMediaType(r, "application/json") == nil:
		rows, err = assets.DecodeJSON(r.Body)
	default:
		ct := r.Header.Get("Content-Type")
		if ct == "" {
			ct = "none"
		}
		return unsupported("Content-Type must be text/csv or application/json, got %s", ct)
	}
	if err != nil {
		return err
	}
	rep, err := s.assets.ImportRows(r.Context(), principal(r), rows, opts, csv)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if rep.Written {
		status = http.StatusCreated
	}
	writeJSON(w, r, status, rep)
	return nil
}

// exportTargets is GET /api/v1/targets/export?format=csv|json with the
// list's filters: every matching target the caller may read, streamed in
// a form import reads back.
func (s *Server) exportTargets(w http.ResponseWriter, r *http.Request) error {
	q, err := targetQuery(r, false)
	if err != nil {
		return err
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = assets.FormatJSON
	}
	ctype := map[string]string{assets.FormatCSV: "text/csv; charset=utf-8", assets.FormatJSON: "application/json"}[format]
	if ctype == "" {
		return problem.Invalid("format", "must be csv or json, got %q", format)
	}
	// Check the query (a bad cursor, an unknown group) before the first
	// byte goes out, while an error can still be a status.
	probe := q
	probe.Limit = 1
	if _, err := s.assets.List(r.Context(), principal(r), probe); err != nil {
		return err
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="targets.`+format+`"`)
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	ex, err := assets.NewExporter(bw, format)
	if err == nil {
		err = s.assets.Each(r.Context(), principal(r), q, ex.Write)
	}
	if err == nil {
		err = ex.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		// The status is sent; all that is left is to stop and say why.
		loggerFrom(r.Context()).Warn("export stopped", "error", err)
	}
	return nil
}

// groupList is GET /api/v1/groups.
type groupList struct {
	Items []assets.Group `json:"items"`
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) error {
	gs, err := s.assets.ListGroups(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, groupList{Items: gs})
	return nil
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) error {
	var in assets.GroupInput
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	g, err := s.assets.CreateGroup(r.Context(), principal(r), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/groups/"+g.Name)
	writeJSON(w, r, http.StatusCreated, g)
	return nil
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) error {
	g, err := s.assets.GetGroup(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, g)
	return nil
}

func (s *Server) putGroup(w http.ResponseWriter, r *http.Request) error {
	var in assets.GroupInput
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	g, err := s.assets.UpdateGroup(r.Context(), principal(r), r.PathValue("name"), in)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, g)
	return nil
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	g, err := s.assets.DeleteGroup(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, g)
	return nil
}

func (s *Server) groupMembers(w http.ResponseWriter, r *http.Request) error {
	q, err := targetQuery(r, true)
	if err != nil {
		return err
	}
	page, err := s.assets.Members(r.Context(), principal(r), r.PathValue("name"), q)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, page)
	return nil
}
