package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/opsconductor/opsconductor/agent/pluginhost"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// TestAsARealPlugin builds the plugin, installs it in an agent plugin host
// as if fetched from the controller, and runs it as a go-plugin process.
func TestAsARealPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and execs the plugin binary")
	}
	defer goleak.VerifyNone(t)
	bin := filepath.Join(t.TempDir(), "diskusage")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	h, err := pluginhost.New(pluginhost.Config{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.Install("disk-usage", version, hex.EncodeToString(sum[:]), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var stdout, stderr strings.Builder
	res, err := h.Run(context.Background(), "disk-usage@1", sdk.Request{AttemptID: "e2e",
		Params: []byte(`{"path":` + strconvQuote(dir) + `,"warn_percent":0}`)}, output{&stdout, &stderr})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != sdk.StatusSucceeded || res.Outputs["total_bytes"] == "" || res.Outputs["total_bytes"] == "0" {
		t.Errorf("result = %+v", res)
	}
	if !strings.HasPrefix(stdout.String(), dir+": ") || !strings.HasPrefix(stderr.String(), "warning: ") {
		t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	if _, err := h.Run(context.Background(), "disk-usage@1", sdk.Request{Params: []byte(`{"fail_percent":"high"}`)}, output{io.Discard, io.Discard}); err == nil || !strings.Contains(err.Error(), "params.fail_percent") {
		t.Errorf("invalid params: error %v", err)
	}
}

type output struct{ stdout, stderr io.Writer }

func (o output) Stdout() io.Writer { return o.stdout }
func (o output) Stderr() io.Writer { return o.stderr }

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
