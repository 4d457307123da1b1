package automation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/automation/jobspec"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// fakeInventory holds targets by name and records CheckHostKey calls,
// applying them as assets' FSM does.
type fakeInventory struct {
	mu      sync.Mutex
	targets map[string]assets.Target
	checked []string // targetID + " " + key
}

func (f *fakeInventory) Resolve(context.Context, *identity.Principal, identity.Permission, assets.ResolveSpec) ([]assets.Target, error) {
	return nil, nil
}

func (f *fakeInventory) Get(_ context.Context, name string) (assets.Target, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.targets[name]
	if !ok {
		return assets.Target{}, problem.NotFound("target", name)
	}
	return t, nil
}

func (f *fakeInventory) Allowed(*identity.Principal, identity.Permission, assets.Target) bool {
	return true
}

func (f *fakeInventory) CheckHostKey(_ context.Context, id, key string) (assets.Target, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checked = append(f.checked, id+" "+key)
	for n, t := range f.targets {
		if t.ID == id {
			t.Connection.HostKey = key
			f.targets[n] = t
			return t, nil
		}
	}
	return assets.Target{}, problem.NotFound("target", id)
}

// fakeCredentials maps target/role to a credential name.
type fakeCredentials map[string]string

func (f fakeCredentials) DefaultFor(_ context.Context, t assets.Target, role string) (string, error) {
	if n, ok := f[t.Name+"/"+role]; ok {
		return n, nil
	}
	return "", problem.NotFound("default credential", t.Name+"/"+role)
}

const testHostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"

func sshTarget(name string, c assets.Connection, addrs ...string) assets.Target {
	c.Type, c.Via = assets.ConnSSH, "relay"
	return assets.Target{ID: "id-" + name, Name: name, Addresses: addrs, Connection: c}
}

func relayService(inv *fakeInventory, creds fakeCredentials) *Service {
	return &Service{d: Deps{Inventory: inv, Credentials: creds, Logger: slog.New(slog.DiscardHandler)}}
}

func TestRelayedStepsForSSHTargets(t *testing.T) {
	inv := &fakeInventory{targets: map[string]assets.Target{
		"pinned":    sshTarget("pinned", assets.Connection{Port: 2222, Username: "deploy", HostKey: testHostKey, HostKeyPolicy: assets.HostKeyPinned}, "10.0.0.5", "10.0.0.6"),
		"new":       sshTarget("new", assets.Connection{HostKeyPolicy: assets.HostKeyTOFU}, "10.0.0.7"),
		"grouped":   sshTarget("grouped", assets.Connection{}, "db.internal"),
		"lonely":    sshTarget("lonely", assets.Connection{}, "10.0.0.9"),
		"nowhere":   sshTarget("nowhere", assets.Connection{}),
		"keyless":   sshTarget("keyless", assets.Connection{HostKeyPolicy: assets.HostKeyPinned}, "10.0.0.10"),
		"converted": {ID: "id-converted", Name: "converted", Addresses: []string{"10.0.0.11"}, Connection: assets.Connection{Type: assets.ConnAgent}},
	}}
	creds := fakeCredentials{"pinned/ssh": "deploy-key", "new/ssh": "root-pw", "grouped/default": "dba", "nowhere/ssh": "x", "keyless/ssh": "x"}
	s := relayService(inv, creds)

	tests := []struct {
		name      string
		target    string
		step      jobspec.Step
		with      string
		wantUses  string
		wantWith  string // JSON, compared as values
		wantCreds map[string]string
		wantErr   []string // substrings of the error, each one
	}{
		{name: "a shell command becomes an ssh step pinned to the target's key, port and user",
			target: "pinned", step: jobspec.Step{ID: "restart", Uses: "shell"}, with: `{"command":"systemctl restart nginx"}`,
			wantUses:  "ssh",
			wantWith:  `{"command":"systemctl restart nginx","host":"10.0.0.5","port":2222,"user":"deploy","host_key":"` + testHostKey + `"}`,
			wantCreds: map[string]string{"ssh": "deploy-key"}},
		{name: "a pinned shell version pins the ssh step's, and a tofu target without a key asks the step to learn it",
			target: "new", step: jobspec.Step{ID: "hello", Uses: "shell@1"}, with: `{"command":"echo hi"}`,
			wantUses:  "ssh@1",
			wantWith:  `{"command":"echo hi","host":"10.0.0.7","host_key_policy":"tofu"}`,
			wantCreds: map[string]string{"ssh": "root-pw"}},
		{name: "without a credential in role ssh the default role's is used",
			target: "grouped", step: jobspec.Step{ID: "q", Uses: "shell"}, with: `{"command":"true"}`,
			wantUses:  "ssh",
			wantWith:  `{"command":"true","host":"db.internal","host_key_policy":"tofu"}`,
			wantCreds: map[string]string{"ssh": "dba"}},
		{name: "a target with no credential in either role is refused with how to attach one",
			target: "lonely", step: jobspec.Step{ID: "q", Uses: "shell"}, with: `{"command":"true"}`,
			wantErr: []string{"target lonely has no credential attached in role ssh: opsconductor credential attach NAME targets lonely --role ssh"}},
		{name: "noop runs on the relay unchanged and needs no credential",
			target: "lonely", step: jobspec.Step{ID: "n", Uses: "noop"}, with: `{"lines":2}`,
			wantUses: "", wantWith: `{"lines":2}`},
		{name: "a step kind that needs an agent on the host is refused naming the step",
			target: "pinned", step: jobspec.Step{ID: "restart", Uses: "service@1"}, with: `{"name":"nginx","action":"restart"}`,
			wantErr: []string{`steps["restart"].uses: step restart (uses service@1) cannot run on SSH target pinned: only shell, ssh and noop steps reach a host without an agent`}},
		{name: "shell parameters the remote side cannot honour are all named at once",
			target: "pinned", step: jobspec.Step{ID: "s", Uses: "shell"},
			with:    `{"script":"echo","interpreter":"/bin/bash","env":{"A":"1"},"cwd":"/tmp","user":"www"}`,
			wantErr: []string{`steps["s"].with.script`, `steps["s"].with.interpreter`, `steps["s"].with.env`, `steps["s"].with.cwd`, `steps["s"].with.user`, `steps["s"].with.command: required`}},
		{name: "an ssh step gets the target's values where it gives none and keeps its own",
			target: "pinned", step: jobspec.Step{ID: "x", Uses: "ssh"}, with: `{"command":"uptime","user":"ops","connect_timeout":"5s"}`,
			wantUses:  "",
			wantWith:  `{"command":"uptime","host":"10.0.0.5","port":2222,"user":"ops","host_key":"` + testHostKey + `","connect_timeout":"5s"}`,
			wantCreds: map[string]string{"ssh": "deploy-key"}},
		{name: "an ssh step aimed at another host does not get the target's port or host key",
			target: "pinned", step: jobspec.Step{ID: "x", Uses: "ssh"}, with: `{"command":"uptime","host":"10.9.9.9","host_key":"SHA256:abc"}`,
			wantWith:  `{"command":"uptime","host":"10.9.9.9","host_key":"SHA256:abc","user":"deploy"}`,
			wantCreds: map[string]string{"ssh": "deploy-key"}},
		{name: "an ssh step that names its own credentials logs in with them",
			target: "pinned", step: jobspec.Step{ID: "x", Uses: "ssh", Credentials: []string{"other"}}, with: `{"command":"uptime"}`,
			wantWith: `{"command":"uptime","host":"10.0.0.5","port":2222,"user":"deploy","host_key":"` + testHostKey + `"}`},
		{name: "a target without an address is refused",
			target: "nowhere", step: jobspec.Step{ID: "q", Uses: "shell"}, with: `{"command":"true"}`,
			wantErr: []string{"target nowhere has no address"}},
		{name: "a pinned target without a key is refused",
			target: "keyless", step: jobspec.Step{ID: "q", Uses: "shell"}, with: `{"command":"true"}`,
			wantErr: []string{"target keyless has the pinned host key policy but no host_key"}},
		{name: "a target that is no longer an SSH target is refused",
			target: "converted", step: jobspec.Step{ID: "q", Uses: "shell"}, with: `{"command":"true"}`,
			wantErr: []string{"target converted is no longer reached over SSH"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &RunTarget{Name: tt.target, Connection: connSSH, AgentID: "relay-agent"}
			uses, with, creds, err := s.relayed(context.Background(), rt, &tt.step, json.RawMessage(tt.with))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error; uses %q with %s", uses, with)
				}
				msg := problemText(err)
				for _, w := range tt.wantErr {
					if !strings.Contains(msg, w) {
						t.Errorf("error %q does not say %q", msg, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("relayed: %v", err)
			}
			if uses != tt.wantUses {
				t.Errorf("uses = %q, want %q", uses, tt.wantUses)
			}
			if !sameJSON(t, with, tt.wantWith) {
				t.Errorf("with = %s, want %s", with, tt.wantWith)
			}
			if len(creds) != len(tt.wantCreds) || creds["ssh"] != tt.wantCreds["ssh"] {
				t.Errorf("creds = %v, want %v", creds, tt.wantCreds)
			}
		})
	}
}

// problemText is an error with every detail of a problem list.
func problemText(err error) string {
	p, ok := problem.As(err)
	if !ok {
		return err.Error()
	}
	parts := []string{p.Error()}
	for _, d := range p.Details {
		parts = append(parts, d.Error())
	}
	return strings.Join(parts, "\n")
}

func sameJSON(t *testing.T, got json.RawMessage, want string) bool {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatalf("%s: %v", want, err)
	}
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestLearnHostKeysRecordsAKeyOnceForTOFUTargetsOnly(t *testing.T) {
	learned := mustKeyLine(t, 3)
	other := mustKeyLine(t, 7)
	tofuAt := func(id, target, status, key, params string) *agentrpc.Attempt {
		return &agentrpc.Attempt{ID: id, Kind: "ssh@1", Status: status, Params: json.RawMessage(params),
			Outputs: map[string]string{"host_key": key, "exit_code": "0"}, RunRef: agentrpc.RunRef{Target: target}}
	}
	tests := []struct {
		name   string
		target assets.Target
		att    *agentrpc.Attempt
		want   bool
	}{
		{name: "a succeeded attempt on a tofu target without a key records the key",
			target: sshTarget("web", assets.Connection{HostKeyPolicy: assets.HostKeyTOFU}, "10.0.0.1"),
			att:    tofuAt("a1", "web", agentrpc.AttemptSucceeded, learned, `{"host":"10.0.0.1","host_key_policy":"tofu"}`), want: true},
		{name: "a failed attempt records the key too: the host showed it",
			target: sshTarget("web", assets.Connection{Port: 2222}, "10.0.0.1"),
			att:    tofuAt("a1", "web", agentrpc.AttemptFailed, learned, `{"host":"10.0.0.1","port":2222}`), want: true},
		{name: "a target that has a key keeps it",
			target: sshTarget("web", assets.Connection{HostKey: other}, "10.0.0.1"),
			att:    tofuAt("a1", "web", agentrpc.AttemptSucceeded, learned, `{"host":"10.0.0.1"}`)},
		{name: "a pinned target is never taught a key",
			target: sshTarget("web", assets.Connection{HostKeyPolicy: assets.HostKeyPinned}, "10.0.0.1"),
			att:    tofuAt("a1", "web", agentrpc.AttemptSucceeded, learned, `{"host":"10.0.0.1"}`)},
		{name: "a key learned from another host is not the target's",
			target: sshTarget("web", assets.Connection{}, "10.0.0.1"),
			att:    tofuAt("a1", "web", agentrpc.AttemptSucceeded, learned, `{"host":"10.0.0.99"}`)},
		{name: "a key learned on another port is not the target's",
			target: sshTarget("web", assets.Connection{}, "10.0.0.1"),
			att:    tofuAt("a1", "web", agentrpc.AttemptSucceeded, learned, `{"host":"10.0.0.1","port":2200}`)},
		{name: "a running attempt is not trusted yet",
			target: sshTarget("web", assets.Connection{}, "10.0.0.1"),
			att:    tofuAt("a1", "web", agentrpc.AttemptRunning, learned, `{"host":"10.0.0.1"}`)},
		{name: "a canceled attempt is not trusted",
			target: sshTarget("web", assets.Connection{}, "10.0.0.1"),
			att:    tofuAt("a1", "web", agentrpc.AttemptCanceled, learned, `{"host":"10.0.0.1"}`)},
		{name: "a host_key output from a step other than ssh is ignored",
			target: sshTarget("web", assets.Connection{}, "10.0.0.1"),
			att: &agentrpc.Attempt{ID: "a1", Kind: "shell", Status: agentrpc.AttemptSucceeded, Params: json.RawMessage(`{"host":"10.0.0.1"}`),
				Outputs: map[string]string{"host_key": learned}, RunRef: agentrpc.RunRef{Target: "web"}}},
		{name: "a host_key that is not a public key is ignored",
			target: sshTarget("web", assets.Connection{}, "10.0.0.1"),
			att:    tofuAt("a1", "web", agentrpc.AttemptSucceeded, "ssh-ed25519 not-base64", `{"host":"10.0.0.1"}`)},
		{name: "an agent target is never taught a key",
			target: assets.Target{ID: "id-web", Name: "web", Addresses: []string{"10.0.0.1"}, Connection: assets.Connection{Type: assets.ConnAgent}},
			att:    tofuAt("a1", "web", agentrpc.AttemptSucceeded, learned, `{"host":"10.0.0.1"}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := &fakeInventory{targets: map[string]assets.Target{tt.target.Name: tt.target}}
			s := relayService(inv, nil)
			run := &Run{ID: "r1"}
			// The engine passes over a run many times: the key is
			// written once.
			for range 3 {
				s.learnHostKeys(context.Background(), run, []*agentrpc.Attempt{tt.att})
			}
			var want []string
			if tt.want {
				want = []string{tt.target.ID + " " + learned}
			}
			if strings.Join(inv.checked, "|") != strings.Join(want, "|") {
				t.Errorf("CheckHostKey calls = %q, want %q", inv.checked, want)
			}
		})
	}
}

// mustKeyLine is a deterministic ed25519 public key in authorized_keys
// form.
func mustKeyLine(t *testing.T, seed byte) string {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

// FuzzRelayed feeds rendered parameters of any shape to relayed: it never
// panics, and what it sends is a JSON object that, for a shell step,
// is an ssh step aimed at the target and carries no shell-only field.
func FuzzRelayed(f *testing.F) {
	f.Add("shell", []byte(`{"command":"uptime"}`))
	f.Add("shell@1", []byte(`{"command":"x","env":{"A":"1"},"cwd":"/"}`))
	f.Add("ssh", []byte(`{"command":"x","host":"10.0.0.5","port":"22"}`))
	f.Add("ssh", []byte(`{"command":"x","host":null,"host_key":null}`))
	f.Add("noop", []byte(`[]`))
	f.Add("shell", []byte(`null`))
	f.Add("service@1", []byte(`{}`))
	inv := &fakeInventory{targets: map[string]assets.Target{
		"t": sshTarget("t", assets.Connection{Port: 2200, Username: "u", HostKeyPolicy: assets.HostKeyTOFU}, "10.0.0.5"),
	}}
	s := relayService(inv, fakeCredentials{"t/ssh": "login"})
	f.Fuzz(func(t *testing.T, uses string, with []byte) {
		st := &jobspec.Step{ID: "s", Uses: uses}
		gotUses, out, _, err := s.relayed(context.Background(), &RunTarget{Name: "t", Connection: connSSH}, st, with)
		if err != nil {
			return
		}
		name, _, _ := strings.Cut(uses, "@")
		if name == stepNoop {
			if gotUses != "" || !bytes.Equal(out, with) {
				t.Fatalf("noop changed: %q %s", gotUses, out)
			}
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil || m == nil {
			t.Fatalf("not a JSON object: %s (%v)", out, err)
		}
		if name == stepShell {
			if !strings.HasPrefix(gotUses, stepSSH) || string(m["host"]) != `"10.0.0.5"` {
				t.Fatalf("shell became %q %s", gotUses, out)
			}
			for _, u := range shellUnsupported {
				if _, ok := m[u.field]; ok && u.field != "user" {
					t.Fatalf("%s passed on: %s", u.field, out)
				}
			}
		}
	})
}

// FuzzLearnHostKeys feeds agent-reported outputs and parameters of any
// shape: only a key that parses, reported for the target's own address,
// is ever recorded.
func FuzzLearnHostKeys(f *testing.F) {
	f.Add("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", []byte(`{"host":"10.0.0.5"}`))
	f.Add("ssh-ed25519", []byte(`{"host":"10.0.0.5","port":22}`))
	f.Add("", []byte(`{"host":1}`))
	f.Add("ssh-rsa AAAA\n", []byte(`not json`))
	f.Fuzz(func(t *testing.T, key string, params []byte) {
		inv := &fakeInventory{targets: map[string]assets.Target{"t": sshTarget("t", assets.Connection{}, "10.0.0.5")}}
		s := relayService(inv, nil)
		s.learnHostKeys(context.Background(), &Run{ID: "r"}, []*agentrpc.Attempt{{ID: "a", Kind: "ssh", Status: agentrpc.AttemptSucceeded,
			Params: params, Outputs: map[string]string{"host_key": key}, RunRef: agentrpc.RunRef{Target: "t"}}})
		for _, c := range inv.checked {
			k := strings.TrimPrefix(c, "id-t ")
			if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
				t.Fatalf("recorded a key that does not parse: %q", k)
			}
		}
	})
}
