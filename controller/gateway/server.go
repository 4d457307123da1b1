package gateway

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/assets/credentials"
	"github.com/opsconductor/opsconductor/controller/assets/discovery"
	"github.com/opsconductor/opsconductor/controller/assets/graph"
	"github.com/opsconductor/opsconductor/controller/automation"
	"github.com/opsconductor/opsconductor/controller/automation/schedule"
	"github.com/opsconductor/opsconductor/controller/communication/audit"
	"github.com/opsconductor/opsconductor/controller/communication/notify"
	"github.com/opsconductor/opsconductor/controller/communication/trigger"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/install"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/plugins"
)

// Timeouts for the listener. There is no whole-request read or write
// timeout: snapshot save and restore stream for as long as they need, and
// rate limits plus body limits bound what one client can hold.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
)

// HealthSection contributes one named section to GET /health. It must be
// cheap and must not block on the network: liveness probes call it often.
type HealthSection func(ctx context.Context) any

// Deps are the collaborators New needs.
type Deps struct {
	Logger  *slog.Logger
	Cluster Cluster
	Probes  Probes
	// Identity authenticates every request and serves the auth, user,
	// role, session and token routes.
	Identity *identity.Service
	// Agents serves the join-token and agent routes.
	Agents *agentrpc.Service
	// Plugins serves the plugin registry and, with Agents, the step
	// catalog.
	Plugins *plugins.Service
	// Assets serves the inventory: targets, groups, import and export.
	// Until a controller wires it, those routes answer 503
	// assets_unavailable.
	Assets *assets.Service
	// Relationships serves the edges between targets and the graph
	// queries. It needs the inventory; until a controller wires it, the
	// routes answer 503 relationships_unavailable.
	Relationships *graph.Service
	// Credentials serves /api/v1/credentials; Keyring the operator's
	// keyring routes (list, rotate, remove). Until a controller wires
	// them, those routes answer 503.
	Credentials *credentials.Service
	Keyring     *keyring.Service
	// Discovery serves /api/v1/discovery; until a controller wires it,
	// those routes answer 503 discovery_unavailable.
	Discovery *discovery.Service
	// Notify serves /api/v1/notifications; nil answers 503.
	Notify *notify.Service
	// Triggers serves /api/v1/triggers and the hooks; nil answers 503.
	Triggers *trigger.Service
	// Schedules serves /api/v1/schedules; until a controller wires it,
	// those routes answer 503 schedules_unavailable.
	Schedules *schedule.Service
	// Audit records every mutating request (communication/audit); nil
	// records none.
	Audit *audit.Log
	// AuditStore is the history store the audit chains live in, which
	// the audit read routes query; until a controller wires it, they
	// answer 503 audit_unavailable.
	AuditStore history.Store
	// Automation serves jobs and runs; until a controller wires it, those
	// routes answer 503 automation_unavailable.
	Automation *automation.Service
	// RunStream serves the live run output websocket; until a controller
	// wires it, the route answers 503 runs_unavailable.
	RunStream *RunStream
	// Registry receives the Go runtime and process collectors and the HTTP
	// metrics, and is what /metrics serves; the caller registers its own
	// (Raft, dispatch …) collectors into it.
	Registry *prometheus.Registry
	Version  string
	NodeID   string
	// HealthSections adds sections to GET /health by name (for example
	// "agents", "history"); "raft" is built in.
	HealthSections map[string]HealthSection
	// ReadyChecks must all pass (nil) for /health/ready to answer 200, in
	// addition to the cluster's own readiness; the map key names the
	// failing dependency in the 503 ("history: connection refused").
	ReadyChecks map[string]func(ctx context.Context) error
	// Events serves the live-update websocket GET /api/v1/events; nil
	// answers 503.
	Events *Events
	// Install serves the agent install script and the release's agent
	// binaries under /install; nil answers 503.
	Install *install.Service
	// UI is the built web console (package web), served at "/" for every
	// GET that is not an API, health or metrics path. A UI without
	// index.html answers a page saying how to build it; nil serves no UI
	// (unknown paths are JSON 404s).
	UI fs.FS
	// ClientName names the client of a request for rate limiting, "" when
	// anonymous. Rate limits apply per client as well as per address. Nil
	// means the authenticated principal's name.
	ClientName func(*http.Request) string
}

// Server is the controller's HTTP server.
type Server struct {
	cfg      Config
	log      *slog.Logger
	cluster  Cluster
	probes   Probes
	identity *identity.Service
	agents   *agentrpc.Service
	plugins  *plugins.Service
	registry *prometheus.Registry
	version  string
	nodeID   string
	sections []namedSection
	checks   map[string]func(ctx context.Context) error

	assets        *assets.Service
	relationships *graph.Service
	credentials   *credentials.Service
	keyring       *keyring.Service
	discovery     *discovery.Service
	schedules     *schedule.Service
	notify        *notify.Service
	triggers      *trigger.Service
	runStream     *RunStream
	automation    *automation.Service
	audit         *audit.Log
	auditStore    history.Store
	install       *install.Service

	metrics     *httpMetrics
	promHandler http.Handler
	limits      *rateLimiter
	gzip        *gzipper
	cors        *cors      // nil when CORS is off
	ui          *uiHandler // nil without Deps.UI
	events      *Events    // nil when not wired

	routes  []route
	mux     *http.ServeMux
	handler http.Handler
}

type namedSection struct {
	name string
	fn   HealthSection
}

// New checks cfg and deps and builds the server with its routes.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := errors.Join(cfg.validate(), deps.validate()); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		log:      deps.Logger,
		cluster:  deps.Cluster,
		probes:   deps.Probes,
		identity: deps.Identity,
		agents:   deps.Agents,
		plugins:  deps.Plugins,
		registry: deps.Registry,
		version:  deps.Version,
		nodeID:   deps.NodeID,
		limits:   newRateLimiter(cfg.RateLimits, clientName(deps.ClientName)),
		gzip:     newGzipper(),
	}
	if s.version == "" {
		s.version = "unknown"
	}
	if len(cfg.CORSAllowedOrigins) > 0 {
		s.cors = newCORS(cfg.CORSAllowedOrigins)
	}
	s.checks = deps.ReadyChecks
	s.assets = deps.Assets
	s.relationships = deps.Relationships
	s.credentials, s.keyring = deps.Credentials, deps.Keyring
	s.discovery = deps.Discovery
	s.schedules = deps.Schedules
	s.notify = deps.Notify
	s.triggers = deps.Triggers
	s.runStream = deps.RunStream
	s.automation = deps.Automation
	s.audit, s.auditStore = deps.Audit, deps.AuditStore
	s.events = deps.Events
	s.install = deps.Install
	if deps.UI != nil {
		ui, err := newUIHandler(deps.UI)
		if err != nil {
			return nil, err
		}
		s.ui = ui
	}
	s.sections = append(s.sections, namedSection{name: "raft", fn: s.raftSection})
	for _, name := range sortedKeys(deps.HealthSections) {
		s.sections = append(s.sections, namedSection{name: name, fn: deps.HealthSections[name]})
	}
	m, err := newHTTPMetrics(deps.Registry)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.promHandler = promhttp.HandlerFor(deps.Registry, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(deps.Logger.Handler(), slog.LevelError),
		// The gateway's gzip middleware compresses; two layers would fight.
		DisableCompression: true,
	})
	s.routes = s.routeTable()
	s.mux = http.NewServeMux()
	for _, rt := range s.routes {
		s.mux.Handle(rt.Pattern(), s.auditRoute(rt, s.wrapRoute(rt)))
	}
	s.handler = s.chain()
	return s, nil
}

func (d Deps) validate() error {
	var errs []error
	if d.Logger == nil {
		errs = append(errs, fieldErrorf("Deps.Logger", "required"))
	}
	if d.Cluster == nil {
		errs = append(errs, fieldErrorf("Deps.Cluster", "required"))
	}
	if d.Probes == nil {
		errs = append(errs, fieldErrorf("Deps.Probes", "required"))
	}
	if d.Identity == nil {
		errs = append(errs, fieldErrorf("Deps.Identity", "required"))
	}
	if d.Agents == nil {
		errs = append(errs, fieldErrorf("Deps.Agents", "required"))
	}
	if d.Plugins == nil {
		errs = append(errs, fieldErrorf("Deps.Plugins", "required"))
	}
	if d.Registry == nil {
		errs = append(errs, fieldErrorf("Deps.Registry", "required"))
	}
	if d.NodeID == "" {
		errs = append(errs, fieldErrorf("Deps.NodeID", "required"))
	}
	errs = append(errs, d.RunStream.validate(), d.Events.validate())
	for _, name := range sortedKeys(d.HealthSections) {
		switch {
		case name == "" || reservedHealthKey(name):
			errs = append(errs, fieldErrorf(fmt.Sprintf("Deps.HealthSections[%q]", name), "name is empty or reserved"))
		case d.HealthSections[name] == nil:
			errs = append(errs, fieldErrorf(fmt.Sprintf("Deps.HealthSections[%q]", name), "nil function"))
		}
	}
	return errors.Join(errs...)
}

// clientName defaults the rate limiter's per-client key to the principal.
func clientName(fn func(*http.Request) string) func(*http.Request) string {
	if fn != nil {
		return fn
	}
	return func(r *http.Request) string {
		if p := principal(r); p != nil {
			return p.Name()
		}
		return ""
	}
}

// Handler is the whole middleware chain and router, for tests and for
// embedding under another server.
func (s *Server) Handler() http.Handler { return s.handler }

// chain orders the middleware from the outside in. The request ID comes
// first so every later log line carries it; instrument sits outside CORS
// and gzip so that it counts preflights and the bytes actually sent.
func (s *Server) chain() http.Handler {
	h := http.Handler(http.HandlerFunc(s.dispatch))
	h = s.gzip.wrap(h)
	if s.cors != nil {
		h = s.cors.wrap(h)
	}
	h = s.instrument(h)
	return s.withRequestID(h)
}

// ListenAndServe listens on cfg.Addr and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then stops accepting, lets requests in
// flight finish for up to ShutdownTimeout, and cancels the rest. It returns
// nil after a clean shutdown. Serve closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// Requests get a context that outlives ctx, so that a shutdown drains
	// them instead of cancelling them all at once; it is cancelled when
	// the drain gives up.
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.log.Info("http server shutting down", "addr", ln.Addr().String(), "timeout", s.cfg.ShutdownTimeout)
	drain, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(drain)
	if err != nil {
		cancelBase()
		err = errors.Join(fmt.Errorf("shut down http server: %w", err), srv.Close())
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("serve on %s: %w", ln.Addr(), serr))
	}
	return err
}
