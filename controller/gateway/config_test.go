package gateway

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opsconductor/opsconductor/controller/plugins"
)

func TestNewValidates(t *testing.T) {
	valid := func() Deps {
		d := Deps{
			Logger:   slog.New(slog.DiscardHandler),
			Cluster:  newFakeCluster(),
			Probes:   &fakeProbes{},
			Identity: sharedIdentity(t).svc,
			Agents:   sharedAgents(t).svc,
			Plugins:  newTestPlugins(t),
			Registry: prometheus.NewRegistry(),
			NodeID:   "n1",
		}
		d.Relationships = newTestRelationships(t)
		return d
	}
	tests := []struct {
		name    string
		cfg     Config
		deps    func(*Deps)
		wantErr []string // substrings; nil means New succeeds
	}{
		{name: "the zero config takes defaults"},
		{name: "a bad address names Addr", cfg: Config{Addr: "localhost"}, wantErr: []string{"Addr:"}},
		{name: "a port out of range names Addr", cfg: Config{Addr: ":70000"}, wantErr: []string{"Addr: port"}},
		{name: "a negative body limit names MaxBodyBytes", cfg: Config{MaxBodyBytes: -1}, wantErr: []string{"MaxBodyBytes:"}},
		{name: "a negative snapshot limit names MaxSnapshotBytes", cfg: Config{MaxSnapshotBytes: -1}, wantErr: []string{"MaxSnapshotBytes:"}},
		{name: "a negative shutdown timeout names ShutdownTimeout", cfg: Config{ShutdownTimeout: -1}, wantErr: []string{"ShutdownTimeout:"}},
		{name: "an unknown class names the class", cfg: Config{RateLimits: map[RouteClass]Limit{"admin": {RPS: 1, Burst: 1}}},
			wantErr: []string{`RateLimits["admin"]: unknown route class`}},
		{name: "health cannot be limited", cfg: Config{RateLimits: map[RouteClass]Limit{ClassHealth: {RPS: 1, Burst: 1}}},
			wantErr: []string{`RateLimits["health"]`}},
		{name: "a zero rate names RPS", cfg: Config{RateLimits: map[RouteClass]Limit{ClassRead: {Burst: 1}}},
			wantErr: []string{`RateLimits["read"].RPS`}},
		{name: "a NaN rate names RPS", cfg: Config{RateLimits: map[RouteClass]Limit{ClassRead: {RPS: math.NaN(), Burst: 1}}},
			wantErr: []string{`RateLimits["read"].RPS`}},
		{name: "a zero burst names Burst", cfg: Config{RateLimits: map[RouteClass]Limit{ClassWrite: {RPS: 1}}},
			wantErr: []string{`RateLimits["write"].Burst`}},
		{name: "an infinite rate is unlimited", cfg: Config{RateLimits: map[RouteClass]Limit{ClassWrite: {RPS: math.Inf(1)}}}},
		{name: "an origin with a path names its index",
			cfg:     Config{CORSAllowedOrigins: []string{"https://ok.example", "https://ops.example/ui"}},
			wantErr: []string{"CORSAllowedOrigins[1]"}},
		{name: "an origin without a scheme is refused", cfg: Config{CORSAllowedOrigins: []string{"ops.example"}},
			wantErr: []string{"CORSAllowedOrigins[0]"}},
		{name: "every problem is reported at once", cfg: Config{MaxBodyBytes: -1, ShutdownTimeout: -1},
			deps: func(d *Deps) { d.Logger, d.NodeID = nil, "" }, wantErr: []string{"MaxBodyBytes", "ShutdownTimeout", "Deps.Logger", "Deps.NodeID"}},
		{name: "a missing cluster names Deps.Cluster", deps: func(d *Deps) { d.Cluster = nil }, wantErr: []string{"Deps.Cluster: required"}},
		{name: "missing probes name Deps.Probes", deps: func(d *Deps) { d.Probes = nil }, wantErr: []string{"Deps.Probes: required"}},
		{name: "a missing registry names Deps.Registry", deps: func(d *Deps) { d.Registry = nil }, wantErr: []string{"Deps.Registry: required"}},
		{name: "a missing identity names Deps.Identity", deps: func(d *Deps) { d.Identity = nil }, wantErr: []string{"Deps.Identity: required"}},
		{name: "a missing plugin registry names Deps.Plugins", deps: func(d *Deps) { d.Plugins = nil }, wantErr: []string{"Deps.Plugins: required"}},
		{name: "a health section may not replace raft",
			deps: func(d *Deps) {
				d.HealthSections = map[string]HealthSection{"raft": func(context.Context) any { return nil }}
			},
			wantErr: []string{`Deps.HealthSections["raft"]`}},
		{name: "a nil health section is refused",
			deps:    func(d *Deps) { d.HealthSections = map[string]HealthSection{"agents": nil} },
			wantErr: []string{`Deps.HealthSections["agents"]: nil function`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deps := valid()
			if tt.deps != nil {
				tt.deps(&deps)
			}
			_, err := New(tt.cfg, deps)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestNewAppliesDefaults(t *testing.T) {
	f := newFixture(t, Config{RateLimits: map[RouteClass]Limit{ClassRead: {RPS: 1, Burst: 1}}})
	cfg := f.srv.cfg
	checks := []struct {
		name      string
		got, want any
	}{
		{"the address is port 3000", cfg.Addr, DefaultAddr},
		{"bodies are limited to 1 MiB", cfg.MaxBodyBytes, int64(1 << 20)},
		{"snapshots are limited to 1 GiB", cfg.MaxSnapshotBytes, int64(1 << 30)},
		{"shutdown waits 10s", cfg.ShutdownTimeout, DefaultShutdownTimeout},
		{"a configured class keeps its limit", cfg.RateLimits[ClassRead], Limit{RPS: 1, Burst: 1}},
		{"an unconfigured class gets its default", cfg.RateLimits[ClassWrite], DefaultRateLimits()[ClassWrite]},
		{"CORS is off", len(cfg.CORSAllowedOrigins), 0},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
	t.Run("only snapshot restores, plugin uploads and target imports take more than MaxBodyBytes", func(t *testing.T) {
		for _, rt := range f.srv.Routes() {
			want := cfg.MaxBodyBytes
			switch rt.Pattern() {
			case "PUT /api/v1/operator/snapshot":
				want = cfg.MaxSnapshotBytes
			case "POST /api/v1/plugins":
				want = plugins.MaxBinary + pluginFormOverhead
			case "POST /api/v1/targets/import":
				want = maxImportBytes
			}
			if rt.MaxBodyBytes != want {
				t.Errorf("%s: MaxBodyBytes = %d, want %d", rt.Pattern(), rt.MaxBodyBytes, want)
			}
		}
	})
}

func TestNewToleratesRuntimeCollectorsAlreadyRegistered(t *testing.T) {
	f := newFixture(t, Config{})
	deps := Deps{Logger: slog.New(slog.DiscardHandler), Cluster: f.cluster, Probes: f.probes, Identity: f.ident.svc, Agents: sharedAgents(t).svc,
		Plugins: newTestPlugins(t), Registry: prometheus.NewRegistry(), NodeID: "n1"}
	deps.Relationships = newTestRelationships(t)
	if _, err := New(Config{}, deps); err != nil {
		t.Fatalf("first New: %v", err)
	}
	t.Run("a second server on the same registry is refused", func(t *testing.T) {
		_, err := New(Config{}, deps)
		if err == nil || !strings.Contains(err.Error(), "register http metrics") {
			t.Fatalf("err = %v, want a registration error", err)
		}
	})
}
