package trigger

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/identity/identitytest"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

// jobs is the runner of these tests: it knows one job and counts runs.
type jobs struct {
	mu   sync.Mutex
	runs []map[string]any
}

func (j *jobs) StartTriggered(_ context.Context, owner, triggerID, deliveryID, job string, params map[string]any) (string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.runs = append(j.runs, params)
	return "run_" + deliveryID, nil
}

func (j *jobs) CheckJob(_ context.Context, job string, _ map[string]any) error {
	if job != "deploy" {
		return problem.NotFound("job", job)
	}
	return nil
}

// newServices returns two services over one state, as two controllers of
// one cluster see it, and principals that may and may not own triggers.
func newServices(t *testing.T) (*Service, *Service, *jobs) {
	t.Helper()
	key, _ := keyring.NewKey()
	ring, err := keyring.Parse([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	store := statetest.NewStore(t, Domain(), identity.Domain())
	ap := &statetest.Applier{Store: store}
	ids := identitytest.New(t, store, ap, ring)
	writer = ids.User(t, "alice", identity.PermJobsWrite, identity.PermJobsRun)
	viewer = ids.User(t, "vic", identity.PermJobsRead)
	j := &jobs{}
	mk := func() *Service {
		s, err := New(Deps{Applier: ap, Store: store, Sealer: ring, Runner: j})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return mk(), mk(), j
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// writer may own triggers, viewer may not; newServices sets them.
var writer, viewer *identity.Principal

func TestAReplayIsRefusedByEveryController(t *testing.T) {
	a, b, j := newServices(t)
	ctx := context.Background()
	v, err := a.Create(ctx, writer, Request{Name: "push", Job: "deploy", Auth: "hmac-github", ParamMap: map[string]string{"ref": "payload.ref"}})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"ref":"v1.2"}`)
	tests := []struct {
		name string
		via  *Service
		id   string
		sig  string
		kind problem.Kind
	}{
		{"first delivery on controller a", a, "d1", sign(v.Secret, body), ""},
		{"the same delivery on controller b", b, "d1", sign(v.Secret, body), problem.KindConflict},
		{"a forged one", b, "d2", sign("wrong", body), problem.KindUnauthenticated},
		{"an unknown hook", a, "d3", sign(v.Secret, body), problem.KindNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := v.ID
			if tt.kind == problem.KindNotFound {
				id = "trg_nope"
			}
			req := httptest.NewRequest("POST", HookPath(id), bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Hub-Signature-256", tt.sig)
			req.Header.Set("X-GitHub-Delivery", tt.id)
			_, err := tt.via.Handle(ctx, id, req, "127.0.0.1")
			if tt.kind == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !problem.Is(err, tt.kind) {
				t.Fatalf("err = %v, want %s", err, tt.kind)
			}
		})
	}
	if len(j.runs) != 1 || j.runs[0]["ref"] != "v1.2" {
		t.Fatalf("runs = %v, want one with ref v1.2", j.runs)
	}
}

func TestTriggerValidationNamesFields(t *testing.T) {
	a, _, _ := newServices(t)
	ctx := context.Background()
	tests := []struct {
		name  string
		p     *identity.Principal
		req   Request
		field string
		kind  problem.Kind
	}{
		{"an unknown job", writer, Request{Name: "x", Job: "nope", Auth: "bearer"}, "job", problem.KindInvalid},
		{"an unknown auth", writer, Request{Name: "x", Job: "deploy", Auth: "magic"}, "auth", problem.KindInvalid},
		{"a bad expression", writer, Request{Name: "x", Job: "deploy", Auth: "bearer", ParamMap: map[string]string{"ref": "payload.("}}, "param_map", problem.KindInvalid},
		{"a viewer may not own runs", viewer, Request{Name: "x", Job: "deploy", Auth: "bearer"}, "", problem.KindForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.Create(ctx, tt.p, tt.req)
			p, ok := problem.As(err)
			if !ok || p.Kind != tt.kind {
				t.Fatalf("err = %v, want %s", err, tt.kind)
			}
			fields := p.Field
			for _, d := range p.Details {
				fields += " " + d.Field
			}
			if !strings.Contains(fields, tt.field) {
				t.Fatalf("fields %q do not name %s: %v", fields, tt.field, err)
			}
		})
	}
	if vs, _ := a.List(); len(vs) != 0 {
		t.Fatalf("a refused trigger was stored: %+v", vs)
	}
}
