package server

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/controller/communication/audit"
	"github.com/opsconductor/opsconductor/controller/history/embedded"
)

// TestMutatingRequestsAndLoginsAreAudited: logins (good and bad), a
// user created, a job saved, a run started and a refused request each
// leave an entry in the controller's hash chain, which verifies whole.
func TestMutatingRequestsAndLoginsAreAudited(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Dev = true
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitLocalAgent(ctx, t, r)
	anon, err := apiclient.New(r.ready.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anon.Login(ctx, apiclient.LoginRequest{Username: "admin", Password: "not-the-password-at-all"}); err == nil {
		t.Fatal("a wrong password logged in")
	}
	if _, err := r.client.CreateUser(ctx, apiclient.CreateUserRequest{Username: "carol", Roles: []apiclient.RoleBinding{{Role: "viewer"}},
		Password: "Sapphire-kettle-drum-81"}); err != nil {
		t.Fatal(err)
	}
	putJob(ctx, t, r.client, "audited", "name: audited\ntargets: {names: [local]}\nsteps:\n  - {id: a, uses: noop}\n")
	waitRun(ctx, t, r.client, startRun(ctx, t, r.client, "audited", nil).ID)
	carolTok, err := anon.Login(ctx, apiclient.LoginRequest{Username: "carol", Password: "Sapphire-kettle-drum-81"})
	if err != nil {
		t.Fatal(err)
	}
	carol, err := apiclient.New(r.ready.HTTPAddr, apiclient.WithToken(carolTok.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.StartRun(ctx, "audited", apiclient.RunRequest{}); httpStatus(err) != 403 {
		t.Fatalf("a viewer started a run: %v", err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	store, err := embedded.Open(filepath.Join(dir, "history", "history.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reports, err := audit.VerifyAll(ctx, store)
	if err != nil || len(reports) != 1 || reports[0].FirstBroken != nil || reports[0].Entries == 0 {
		t.Fatalf("verify: %+v, %v", reports, err)
	}
	page, err := audit.Query(ctx, store, audit.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	type seen struct{ action, actor, outcome string }
	var got []seen
	for _, e := range page.Entries {
		got = append(got, seen{e.Action, e.Actor, e.Outcome})
		if e.Action != "auth.login" && e.RequestID == "" {
			t.Errorf("entry %d (%s) has no request ID", e.Seq, e.Action)
		}
	}
	for _, want := range []seen{
		{"auth.login", "admin", "failure"},
		{"auth.login", "admin", "success"},
		{"users.post", "admin", "success"},
		{"jobs.put", "admin", "success"},
		{"jobs.runs.post", "admin", "success"},
		{"auth.login", "carol", "success"},
		{"jobs.runs.post", "carol", "denied"},
	} {
		if !slices.Contains(got, want) {
			t.Errorf("no entry %+v in %+v", want, got)
		}
	}
}
