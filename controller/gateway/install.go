package gateway

import (
	"io"
	"net/http"
	"strconv"

	"github.com/opsconductor/opsconductor/controller/install"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// installRoutes serve a new host what `curl … | sh` needs. They are
// public: the script, the binaries and their sums are not secret (the join
// token passed to the script is), and a host has no credential yet.
func (s *Server) installRoutes() []route {
	r := func(path string, h handlerFunc) route {
		return s.newRoute(http.MethodGet, path, ClassRead, AccessPublic, s.needInstall(h))
	}
	return []route{
		r("/install/agent.sh", s.installScript),
		r("/install/agent/{os}/{arch}", s.agentBinary),
		r("/install/agent/{os}/{arch}/sha256", s.agentChecksum),
	}
}

// needInstall answers 503 while no install service is wired.
func (s *Server) needInstall(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.install == nil {
			return problem.Unavailable("install_unavailable", "this controller does not serve the agent install script: it is not wired")
		}
		return h(w, r)
	}
}

func (s *Server) installScript(w http.ResponseWriter, r *http.Request) error {
	script, err := s.install.Script(install.Origin{Host: r.Host, TLS: r.TLS != nil})
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/x-shellscript; charset=utf-8")
	// Rendered per request (it may name the request's Host): a shared
	// cache must not hand one client's script to another.
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(script)))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(script); err != nil {
		loggerFrom(r.Context()).Debug("write install script", "error", err)
	}
	return nil
}

// agentBinary streams the binary whole. Ranges are not offered: the script
// downloads in one go, and a 416 would not be the JSON error envelope.
func (s *Server) agentBinary(w http.ResponseWriter, r *http.Request) error {
	b, err := s.install.Agent(r.PathValue("os"), r.PathValue("arch"))
	if err != nil {
		return err
	}
	defer b.File.Close()
	h := w.Header()
	// The release's checksum names the content exactly.
	etag := `"` + b.SHA256 + `"`
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="opsconductor-agent"`)
	h.Set("Content-Length", strconv.FormatInt(b.Size, 10))
	h.Set("Last-Modified", b.ModTime.UTC().Format(http.TimeFormat))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := io.CopyN(w, b.File, b.Size); err != nil {
		// The header is out: the client sees a short body against its
		// Content-Length, and the script's checksum catches it anyway.
		loggerFrom(r.Context()).Debug("send agent binary", "file", b.Name, "error", err)
	}
	return nil
}

func (s *Server) agentChecksum(w http.ResponseWriter, r *http.Request) error {
	line, err := s.install.Checksum(r.PathValue("os"), r.PathValue("arch"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, line); err != nil {
		loggerFrom(r.Context()).Debug("write agent checksum", "error", err)
	}
	return nil
}
