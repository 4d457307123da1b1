package gateway

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/plugins"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/plugins/builtin"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// Limits on the small parts of a plugin upload. The binary is bounded by
// plugins.MaxBinary; these keep a client from making the gateway hold a
// large "description" in memory.
const (
	maxPluginDescription = 256 << 10
	maxPluginPlatform    = 64
	// pluginFormOverhead is what the route allows beyond the binary: the
	// small parts and the multipart framing.
	pluginFormOverhead = 1 << 20
)

// pushPlugin is POST /api/v1/plugins. The body is multipart/form-data read
// as a stream: os, arch and description first, then the binary, which goes
// straight from the connection into the registry's file (never into
// memory). A binary part before the others is refused, since the registry
// must know what it stores before it stores it.
func (s *Server) pushPlugin(w http.ResponseWriter, r *http.Request) error {
	if err := requireMediaType(r, "multipart/form-data"); err != nil {
		return err
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return problem.Invalid("body", "is not multipart/form-data: %v", err)
	}
	var (
		push plugins.Push
		seen = map[string]bool{}
	)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return multipartProblem(err)
		}
		name := part.FormName()
		if seen[name] {
			return problem.Invalid(name, "is given twice")
		}
		seen[name] = true
		switch name {
		case "os", "arch":
			v, err := readPart(part, name, maxPluginPlatform)
			if err != nil {
				return err
			}
			if name == "os" {
				push.OS = v
			} else {
				push.Arch = v
			}
		case "description":
			raw, err := readPart(part, name, maxPluginDescription)
			if err != nil {
				return err
			}
			if err := decodeStrict(strings.NewReader(raw), &push.Description); err != nil {
				// "body" here is the part, not the request.
				if p, ok := problem.As(err); ok && p.Field == "body" {
					moved := *p
					moved.Field = "description"
					return &moved
				}
				return underDescription(err)
			}
		case "binary":
			for _, f := range []string{"os", "arch", "description"} {
				if !seen[f] {
					return problem.Invalid(f, "is required, and must come before the binary part")
				}
			}
			p, err := s.plugins.Push(r.Context(), principal(r).Name(), push, &lastPart{part: part, mr: mr})
			if err != nil {
				return underDescription(err)
			}
			writeJSON(w, r, http.StatusCreated, p)
			return nil
		default:
			return problem.Invalid(name, "unknown part (want os, arch, description and binary)")
		}
	}
	for _, f := range []string{"os", "arch", "description", "binary"} {
		if !seen[f] {
			return problem.Invalid(f, "is required")
		}
	}
	return nil // unreachable: binary returns above
}

// readPart reads a small text part whole, refusing one over limit bytes.
func readPart(part *multipart.Part, name string, limit int64) (string, error) {
	b, err := io.ReadAll(io.LimitReader(part, limit+1))
	if err != nil {
		return "", multipartProblem(err)
	}
	if int64(len(b)) > limit {
		return "", problem.Invalid(name, "is longer than %d bytes", limit)
	}
	return string(b), nil
}

// multipartProblem blames the body for a malformed or cut-short upload,
// keeping a body-size overrun for classify to answer with 413.
func multipartProblem(err error) error {
	if _, ok := asMaxBytes(err); ok {
		return err
	}
	return problem.Invalid("body", "malformed multipart upload: %v", err)
}

// lastPart reads the binary part and, at its end, checks that nothing
// follows it: a stray part after the binary fails the read, so the
// registry stores nothing rather than registering a push whose request
// was malformed.
type lastPart struct {
	part *multipart.Part
	mr   *multipart.Reader
}

func (l *lastPart) Read(p []byte) (int, error) {
	n, err := l.part.Read(p)
	if !errors.Is(err, io.EOF) {
		if err != nil {
			err = multipartProblem(err)
		}
		return n, err
	}
	next, nerr := l.mr.NextPart()
	switch {
	case errors.Is(nerr, io.EOF):
		return n, io.EOF
	case nerr != nil:
		return n, multipartProblem(nerr)
	}
	return n, problem.Invalid(next.FormName(), "no part may follow binary")
}

// underDescription moves the registry's validation problems about the
// plugin's own fields ("name", "params" …) under "description.", where
// the client sent them; os, arch, binary and body stay as they are.
func underDescription(err error) error {
	p, ok := problem.As(err)
	if !ok || p.Kind != problem.KindInvalid {
		return err
	}
	moved := *p
	moved.Field = descriptionField(p.Field)
	moved.Details = make([]problem.Error, len(p.Details))
	for i, d := range p.Details {
		d.Field = descriptionField(d.Field)
		moved.Details[i] = d
	}
	return &moved
}

func descriptionField(f string) string {
	switch f {
	case "", "os", "arch", "binary", "body", "description":
		return f
	}
	if strings.HasPrefix(f, "description.") {
		return f
	}
	return "description." + f
}

// pluginList is GET /api/v1/plugins.
type pluginList struct {
	Items []plugins.Plugin `json:"items"`
}

func (s *Server) listPlugins(w http.ResponseWriter, r *http.Request) error {
	all, err := s.plugins.List(r.Context())
	if err != nil {
		return err
	}
	all = newestFirst(all)
	for i := range all {
		// The list says what exists; one plugin's schema is for GET
		// …/{name}/{version}, so that the list stays small.
		all[i].Params = nil
	}
	writeJSON(w, r, http.StatusOK, pluginList{Items: all})
	return nil
}

// newestFirst keeps List's order by name but puts each name's newest
// version first, as people and the UI want to read it. List sorts
// versions oldest first, so reversing each name's run is enough.
func newestFirst(all []plugins.Plugin) []plugins.Plugin {
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && all[j].Name == all[i].Name {
			j++
		}
		slices.Reverse(all[i:j])
		i = j
	}
	return all
}

// pluginVersionLatest asks GET …/{name}/{version} for the newest release.
const pluginVersionLatest = "latest"

func (s *Server) getPlugin(w http.ResponseWriter, r *http.Request) error {
	want := r.PathValue("version")
	if want == pluginVersionLatest {
		want = ""
	}
	p, err := s.plugins.Resolve(r.Context(), r.PathValue("name"), want)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, p)
	return nil
}

func (s *Server) deletePlugin(w http.ResponseWriter, r *http.Request) error {
	p, err := s.plugins.Delete(r.Context(), r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, p)
	return nil
}

// --- the step catalog --------------------------------------------------------

// Step kinds in the catalog.
const (
	stepBuiltin = "builtin"
	stepPlugin  = "plugin"
)

// maxCatalogAgents bounds the agents listed per plugin version; the count
// is always whole.
const maxCatalogAgents = 100

// stepCatalog is GET /api/v1/steps.
type stepCatalog struct {
	Items []catalogStep `json:"items"`
}

// catalogStep is one step a job can use: a built-in, or one registered
// plugin version.
type catalogStep struct {
	Kind string `json:"kind"`
	sdk.Description
	// Platforms are a plugin's builds ("linux/amd64").
	Platforms []string `json:"platforms,omitempty"`
	// CreatedAt and CreatedBy say when and by whom a plugin version was
	// first pushed.
	CreatedAt *time.Time    `json:"created_at,omitempty"`
	CreatedBy string        `json:"created_by,omitempty"`
	Agents    catalogAgents `json:"agents"`
}

// catalogAgents says which agents have a step. Built-ins are on every
// agent (All), so they are counted, not listed. Plugin versions list the
// agents that reported them, only to callers who may read agents.
type catalogAgents struct {
	All   bool         `json:"all"`
	Count int          `json:"count"`
	Items []catalogRef `json:"items,omitempty"`
}

type catalogRef struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

func (s *Server) stepCatalog(w http.ResponseWriter, r *http.Request) error {
	registered, err := s.plugins.List(r.Context())
	if err != nil {
		return err
	}
	agents, err := s.liveAgents(r)
	if err != nil {
		return err
	}
	out := stepCatalog{Items: []catalogStep{}}
	for _, d := range builtin.Catalog() {
		out.Items = append(out.Items, catalogStep{Kind: stepBuiltin, Description: d,
			Agents: catalogAgents{All: true, Count: len(agents)}})
	}
	showAgents := principal(r).Can(identity.PermAgentsRead)
	for _, p := range newestFirst(registered) {
		st := catalogStep{Kind: stepPlugin, Description: p.Description, CreatedAt: &p.CreatedAt, CreatedBy: p.CreatedBy}
		sums := map[string]bool{}
		for _, b := range p.Binaries {
			st.Platforms = append(st.Platforms, b.OS+"/"+b.Arch)
			sums[b.SHA256] = true
		}
		for _, a := range agents {
			if !hasPlugin(a, p, sums) {
				continue
			}
			st.Agents.Count++
			if showAgents && len(st.Agents.Items) < maxCatalogAgents {
				st.Agents.Items = append(st.Agents.Items, catalogRef{ID: a.ID, Name: a.Name, Status: a.Status})
			}
		}
		out.Items = append(out.Items, st)
	}
	writeJSON(w, r, http.StatusOK, out)
	return nil
}

// hasPlugin reports whether the agent's hello named this plugin version,
// by version or, when it gave none, by the checksum of one of its builds.
func hasPlugin(a agentrpc.Agent, p plugins.Plugin, sums map[string]bool) bool {
	for _, have := range a.Plugins {
		if have.Name != p.Name {
			continue
		}
		if have.Version == p.Version || (have.Version == "" && sums[have.SHA256]) {
			return true
		}
	}
	return false
}

// liveAgents is every agent not revoked, a page at a time.
func (s *Server) liveAgents(r *http.Request) ([]agentrpc.Agent, error) {
	var out []agentrpc.Agent
	after := ""
	for {
		page, err := s.agents.ListAgents(r.Context(), after, 1000)
		if err != nil {
			return nil, fmt.Errorf("list agents for the step catalog: %w", err)
		}
		for _, a := range page.Items {
			if !a.Revoked {
				out = append(out, a)
			}
		}
		if page.Next == "" {
			return out, nil
		}
		after = page.Next
	}
}
