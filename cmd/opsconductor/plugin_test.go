package main

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

// buildStepPlugin builds testdata/stepplugin, a real plugin made with
// plugins/sdk.Serve, for this host.
func buildStepPlugin(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "greet")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/stepplugin")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/stepplugin: %v\n%s", err, b)
	}
	return out
}

// foreignPlatform is an architecture this host is not.
func foreignPlatform() (string, elf.Machine) {
	if runtime.GOARCH == "arm64" {
		return "amd64", elf.EM_X86_64
	}
	return "arm64", elf.EM_AARCH64
}

// foreignBinary writes an ELF file for another architecture. Only its
// header matters (the CLI reads the platform from it and the registry
// stores bytes): cross-compiling the plugin with its gRPC dependencies
// takes minutes on a cold build cache.
func foreignBinary(t *testing.T, machine elf.Machine) string {
	t.Helper()
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(machine), Version: uint32(elf.EV_CURRENT), Ehsize: 64}
	copy(h.Ident[:], []byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, h); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("a build for another architecture")
	path := filepath.Join(t.TempDir(), "greet-foreign")
	if err := os.WriteFile(path, buf.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestPluginPushListShowDeleteAndTheStepCatalog(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" && runtime.GOOS != "freebsd" {
		t.Skipf("the test plugin is started through go-plugin, which these tests drive on Unix only (GOOS=%s)", runtime.GOOS)
	}
	cliEnv(t)
	plugin := buildStepPlugin(t)
	foreignArch, machine := foreignPlatform()
	foreign := foreignBinary(t, machine)
	ctl := startController(t, adminPassword)
	addr := "--address=" + ctl.addr
	must(t, adminPassword+"\n", "login", addr, "--username", "admin", "--password-stdin")
	host := runtime.GOOS + "/" + runtime.GOARCH

	out, errOut, err := runIn(t, "", "plugin", "push", plugin, addr)
	if err != nil {
		t.Fatalf("push: %v\n%s", err, errOut)
	}
	if want := "Pushed greet@1.2.0 for " + host + ", sha256 " + sha256File(t, plugin) + "\n"; out != want {
		t.Fatalf("push printed %q, want %q", out, want)
	}
	if !strings.Contains(errOut, "(100%)") {
		t.Errorf("push of a %s binary reported no progress: %q", "large", errOut)
	}

	descFile := filepath.Join(t.TempDir(), "greet.json")
	if err := os.WriteFile(descFile, []byte(`{"name":"greet","version":"1.3.0","summary":"Prints a greeting, louder.","idempotent":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		name string
		args []string
		want string
	}{
		{"a foreign build without a description source", []string{"plugin", "push", foreign, "--arch", foreignArch}, "--describe-from"},
		{"a build pushed as another architecture than its own", []string{"plugin", "push", plugin, "--arch", foreignArch}, "is built for " + host},
		{"two description sources", []string{"plugin", "push", foreign, "--arch", foreignArch, "--describe-from", plugin, "--description", descFile}, "not both"},
		{"a delete without an exact version", []string{"plugin", "delete", "greet"}, "NAME@VERSION"},
	}
	for _, tc := range refused {
		t.Run("push refuses "+tc.name, func(t *testing.T) {
			_, _, err := runIn(t, "", append(tc.args, addr)...)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error mentioning %q", err, tc.want)
			}
		})
	}

	if out := must(t, "", "plugin", "push", foreign, "--os", "linux", "--arch", foreignArch, "--describe-from", plugin, addr); !strings.Contains(out,
		"Pushed greet@1.2.0 for linux/"+foreignArch+", sha256 "+sha256File(t, foreign)) {
		t.Fatalf("push --describe-from: %s", out)
	}
	if out := must(t, "", "plugin", "push", foreign, "--os", "linux", "--arch", foreignArch, "--description", descFile, addr); !strings.Contains(out,
		"Pushed greet@1.3.0 for linux/"+foreignArch) {
		t.Fatalf("push --description: %s", out)
	}

	var listed []apiclient.Plugin
	if err := json.Unmarshal([]byte(must(t, "", "plugin", "list", addr, "--json")), &listed); err != nil || len(listed) != 2 ||
		listed[0].Ref() != "greet@1.3.0" || listed[1].Ref() != "greet@1.2.0" || len(listed[1].Binaries) != 2 {
		t.Fatalf("plugin list --json: %+v, %v", listed, err)
	}
	list := must(t, "", "plugin", "list", addr)
	for _, want := range []string{"greet@1.2.0  " + host, "greet@1.2.0  linux/" + foreignArch, "greet@1.3.0  linux/" + foreignArch, "admin"} {
		if !strings.Contains(list, want) {
			t.Errorf("plugin list lacks %q:\n%s", want, list)
		}
	}

	show := must(t, "", "plugin", "show", "greet@1.2", addr)
	for _, want := range []string{"greet@1.2.0", "Prints a greeting.", "who", "string", "Whom to greet.", "times", "integer", "≥ 1; ≤ 10",
		"greeting", "The last line printed.", host, sha256File(t, plugin)} {
		if !strings.Contains(show, want) {
			t.Errorf("plugin show lacks %q:\n%s", want, show)
		}
	}
	if out := must(t, "", "plugin", "show", "greet", addr); !strings.Contains(out, "greet@1.3.0") || !strings.Contains(out, "PARAMETERS: none") {
		t.Errorf("plugin show without a version shows:\n%s", out)
	}

	steps := must(t, "", "steps", addr)
	for _, want := range []string{"shell", "builtin", "all (0)", "greet", "1.3.0", "plugin", "Prints a greeting, louder."} {
		if !strings.Contains(steps, want) {
			t.Errorf("steps lacks %q:\n%s", want, steps)
		}
	}

	if out := must(t, "", "plugin", "delete", "greet@1.2.0", addr); out != "Deleted greet@1.2.0 (2 build(s))\n" {
		t.Fatalf("plugin delete: %q", out)
	}
	_, _, err = runIn(t, "", "plugin", "show", "greet@1.2.0", addr)
	var apiErr *apiclient.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("show after delete: %v, want a 404", err)
	}
}
