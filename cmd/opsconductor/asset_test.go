package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// enrolRelay enrols an agent named relay-1 through a join token, so that
// SSH targets have an agent to be reached through.
func enrolRelay(t *testing.T, addr string) {
	t.Helper()
	var line string
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, errOut, err := runIn(t, "", "agent", "join-token", "create", addr)
		if err == nil {
			line = strings.TrimSpace(out)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("join-token create: %v\n%s", err, errOut)
		}
		time.Sleep(100 * time.Millisecond) // the leader makes the agent CA just after it starts leading
	}
	controller, token, pin := joinFlags(t, line)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pinnedDial(t, controller, pin, nil).Enroll(ctx, &agentv1.EnrollRequest{Token: token, CsrDer: csr, Name: "relay-1",
		Facts: &agentv1.Facts{Hostname: "relay-1.example.com", Os: "linux"}}); err != nil {
		t.Fatalf("enroll: %v", err)
	}
}

func TestAssetCommands(t *testing.T) {
	cliEnv(t)
	ctl := startController(t, adminPassword)
	addr := "--address=" + ctl.addr
	must(t, adminPassword+"\n", "login", addr, "--username", "admin", "--password-stdin")
	enrolRelay(t, addr)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "name,address,via,tags,groups\nweb-1,10.0.0.1,relay-1,env=prod;role=web,web\ndb-1,10.0.0.2,relay-1,env=staging;role=db,\n"
	bad := write("bad.csv", good+"oops,not a host!,ghost,,\n")

	t.Run("a dry run prints each bad row and column and writes nothing", func(t *testing.T) {
		out, _, err := runIn(t, "", "asset", "import", bad, "--dry-run", addr)
		var ec exitCodeError
		if !errors.As(err, &ec) || ec.code != 1 {
			t.Fatalf("exit %v, want 1", err)
		}
		for _, want := range []string{"row 3, addresses:", "row 3, via:", "Dry run: would import 2 of 3 rows"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if list := must(t, "", "asset", "list", "--connection", "ssh", addr); strings.Contains(list, "web-1") {
			t.Fatalf("a dry run wrote:\n%s", list)
		}
	})
	t.Run("an import with a bad row is refused whole, naming the row", func(t *testing.T) {
		_, _, err := runIn(t, "", "asset", "import", bad, addr)
		if err == nil || !strings.Contains(err.Error(), "rows[3].addresses") || !strings.Contains(err.Error(), "rows[3].via") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("an import from stdin writes every row", func(t *testing.T) {
		out := must(t, good, "asset", "import", "-", "--format", "csv", addr)
		if !strings.Contains(out, "Imported 2 of 2 rows (2 created, 0 updated)") {
			t.Fatalf("import: %s", out)
		}
	})
	t.Run("list filters by tag and shows agents' targets", func(t *testing.T) {
		out := must(t, "", "asset", "list", "--tag", "env=prod", addr)
		if !strings.Contains(out, "web-1") || strings.Contains(out, "db-1") {
			t.Fatalf("list --tag env=prod:\n%s", out)
		}
		var page apiclient.TargetPage
		if err := json.Unmarshal([]byte(must(t, "", "asset", "list", "--connection", "agent", "--json", addr)), &page); err != nil ||
			len(page.Items) != 1 || page.Items[0].Name != "relay-1" || page.Items[0].Facts["os"] != "linux" {
			t.Fatalf("agents' targets: %+v, %v", page, err)
		}
	})
	t.Run("create, update, show and delete a target", func(t *testing.T) {
		must(t, "", "asset", "create", "cache-1", "--host", "10.0.0.9", "--via", "relay-1", "--tag", "env=prod", "--username", "ops", addr)
		must(t, "", "asset", "update", "cache-1", "--tag", "env=staging", "--tag", "role=cache", "--owner", "team-a", "--port", "2222", addr)
		var got apiclient.Target
		if err := json.Unmarshal([]byte(must(t, "", "asset", "show", "cache-1", "--json", addr)), &got); err != nil {
			t.Fatal(err)
		}
		if got.Tags["env"] != "staging" || got.Tags["role"] != "cache" || got.Owner != "team-a" || got.Connection.Port != 2222 ||
			got.Connection.Username != "ops" {
			t.Fatalf("after update: %+v", got)
		}
		if out := must(t, "", "asset", "show", "cache-1", addr); !strings.Contains(out, "ssh via relay-1 as ops port 2222") {
			t.Fatalf("show:\n%s", out)
		}
		if out := must(t, "", "asset", "delete", "cache-1", addr); !strings.Contains(out, "Deleted target cache-1") {
			t.Fatalf("delete: %s", out)
		}
	})
	t.Run("a dynamic group's members follow tag changes", func(t *testing.T) {
		must(t, "", "asset", "group", "create", "prod", "--selector", "env=prod", addr)
		if out := must(t, "", "asset", "group", "members", "prod", addr); !strings.Contains(out, "web-1") || strings.Contains(out, "db-1") {
			t.Fatalf("members:\n%s", out)
		}
		must(t, "", "asset", "update", "db-1", "--tag", "env=prod", addr)
		if out := must(t, "", "asset", "group", "members", "prod", addr); !strings.Contains(out, "db-1") {
			t.Fatalf("members after retagging db-1:\n%s", out)
		}
		if out := must(t, "", "asset", "group", "list", addr); !strings.Contains(out, "prod") || !strings.Contains(out, "web") {
			t.Fatalf("group list:\n%s", out)
		}
	})
	t.Run("an export imports back", func(t *testing.T) {
		file := filepath.Join(dir, "export.csv")
		must(t, "", "asset", "export", "--format", "csv", "-f", file, addr)
		out := must(t, "", "asset", "import", file, "--mode", "upsert", "--dry-run", addr)
		if !strings.Contains(out, "would import 2 of 2 rows") {
			t.Fatalf("re-import: %s", out)
		}
	})
}
