package deploytest

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/unit"
)

const systemdDir = "deploy/systemd"

// units describes what each unit must be: the controller confined as far
// as systemd goes, the agent as root for the reasons its comments give.
var units = []struct {
	file   string
	binary string
	// want are directives the unit must set to exactly these values (a
	// repeated directive passes when one of its lines has the value).
	want map[string]string
	// forbid are settings the unit must not have, each with the reason.
	forbid map[string]string
	// maxExposure bounds `systemd-analyze security`'s overall exposure
	// score (0 = fully confined, 10 = not at all).
	maxExposure float64
}{
	{
		file:   "opsconductor.service",
		binary: "opsconductor",
		want: map[string]string{
			"User":                    "opsconductor",
			"Group":                   "opsconductor",
			"StateDirectory":          "opsconductor",
			"StateDirectoryMode":      "0700",
			"EnvironmentFile":         "-/etc/opsconductor/opsconductor.env",
			"NoNewPrivileges":         "yes",
			"ProtectSystem":           "strict",
			"ProtectHome":             "yes",
			"PrivateTmp":              "yes",
			"PrivateDevices":          "yes",
			"CapabilityBoundingSet":   "",
			"AmbientCapabilities":     "",
			"SystemCallFilter":        "@system-service",
			"SystemCallArchitectures": "native",
			"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
			"MemoryDenyWriteExecute":  "yes",
			"LockPersonality":         "yes",
			"RestrictNamespaces":      "yes",
			"RestrictSUIDSGID":        "yes",
			"ProtectKernelModules":    "yes",
			"ProtectKernelTunables":   "yes",
			"ProtectControlGroups":    "yes",
		},
		forbid: map[string]string{
			"ProcSubset=pid": "it hides /proc/stat, and with it process_start_time_seconds, which the restart alert watches",
		},
		maxExposure: 2.0,
	},
	{
		file:   "opsconductor-agent.service",
		binary: "opsconductor-agent",
		want: map[string]string{
			"User":               "root",
			"StateDirectory":     "opsconductor-agent",
			"StateDirectoryMode": "0700",
			"EnvironmentFile":    "-/etc/opsconductor/opsconductor-agent.env",
			"ProtectSystem":      "full",
			"NoNewPrivileges":    "no",
			"KillMode":           "mixed",
		},
		// Root and able to change the system on purpose: systemd rates
		// that as exposed, and the unit's comments say why it must be.
		maxExposure: 10,
	},
}

func TestSystemdUnitsDeclareTheirHardening(t *testing.T) {
	for _, u := range units {
		t.Run(u.file, func(t *testing.T) {
			data := readRepoFile(t, filepath.Join(systemdDir, u.file))
			opts, err := unit.DeserializeOptions(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s: %v", u.file, err)
			}
			got := map[string][]string{}
			for _, o := range opts {
				got[o.Name] = append(got[o.Name], o.Value)
			}
			for name, want := range u.want {
				if !slices.Contains(got[name], want) {
					t.Errorf("%s: %s=%q, want %s=%q", u.file, name, got[name], name, want)
				}
			}
			for setting, why := range u.forbid {
				name, value, _ := strings.Cut(setting, "=")
				if slices.Contains(got[name], value) {
					t.Errorf("%s: %s: %s", u.file, setting, why)
				}
			}
			if u.want["User"] == "root" && !bytes.Contains(data, []byte("Why root")) {
				t.Errorf("%s runs as root without a comment saying why", u.file)
			}
		})
	}
}

// TestSystemdUnitsVerify runs systemd's own checker on each unit, in a
// scratch root holding the unit, the built binary at its ExecStart path
// and the system's units (for the targets it names). Any message fails:
// systemd-analyze exits 0 on unknown directives and bad values, which it
// only reports.
func TestSystemdUnitsVerify(t *testing.T) {
	analyze := lookTool(t, "systemd-analyze", "systemd")
	root := systemdRoot(t)
	for _, u := range units {
		t.Run(u.file, func(t *testing.T) {
			out, err := runTool(t, analyze, "verify", "--root="+root, u.file)
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Fatalf("systemd-analyze verify %s: %v\n%s", u.file, err, out)
			}
			out, err = runTool(t, analyze, "security", "--offline=yes", "--root="+root, u.file)
			if err != nil {
				t.Fatalf("systemd-analyze security %s: %v\n%s", u.file, err, out)
			}
			m := regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d+)`).FindSubmatch(out)
			if m == nil {
				t.Fatalf("systemd-analyze security %s printed no exposure level:\n%s", u.file, out)
			}
			score, _ := strconv.ParseFloat(string(m[1]), 64)
			t.Logf("systemd-analyze security: %s exposure %.1f (at most %.1f)", u.file, score, u.maxExposure)
			if score > u.maxExposure {
				t.Errorf("%s: exposure %.1f, want at most %.1f:\n%s", u.file, score, u.maxExposure, out)
			}
		})
	}
}

// systemdRoot builds the scratch root systemd-analyze --root reads.
func systemdRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, dir := range []string{"etc/systemd/system", "usr/local/bin", "usr/lib/systemd"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The targets and services the units order themselves against.
	for _, sys := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(sys); err == nil {
			if out, err := exec.Command("cp", "-r", sys, filepath.Join(root, "usr/lib/systemd/system")).CombinedOutput(); err != nil {
				t.Fatalf("copy %s: %v\n%s", sys, err, out)
			}
			break
		}
	}
	for _, u := range units {
		copyFile(t, filepath.Join(repoRoot(t), systemdDir, u.file), filepath.Join(root, "etc/systemd/system", u.file), 0o644)
		copyFile(t, binaryByName(t, u.binary).path, filepath.Join(root, "usr/local/bin", u.binary), 0o755)
	}
	return root
}

// TestSystemdExecStart checks each unit's command line against the binary.
func TestSystemdExecStart(t *testing.T) {
	for _, u := range units {
		t.Run(u.file, func(t *testing.T) {
			opts, err := unit.DeserializeOptions(bytes.NewReader(readRepoFile(t, filepath.Join(systemdDir, u.file))))
			if err != nil {
				t.Fatal(err)
			}
			var starts []string
			for _, o := range opts {
				if o.Section == "Service" && o.Name == "ExecStart" {
					starts = append(starts, o.Value)
				}
			}
			if len(starts) != 1 {
				t.Fatalf("%s: %d ExecStart lines, want 1", u.file, len(starts))
			}
			invs, err := scriptInvocations(t, u.file+" ExecStart", starts[0])
			if err != nil {
				t.Fatal(err)
			}
			if len(invs) != 1 || invs[0].bin.name != u.binary || !strings.HasPrefix(starts[0], "/usr/local/bin/") {
				t.Fatalf("%s: ExecStart=%s does not run /usr/local/bin/%s", u.file, starts[0], u.binary)
			}
			checkInvocations(t, invs)
		})
	}
}

// TestSysusersCreatesTheControllerUser runs systemd-sysusers on the file
// into a scratch root and checks the account the controller unit runs as.
func TestSysusersCreatesTheControllerUser(t *testing.T) {
	sysusers := lookTool(t, "systemd-sysusers", "systemd")
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(repoRoot(t), systemdDir, "opsconductor.sysusers")
	if out, err := runTool(t, sysusers, "--root="+root, conf); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	var entry []string
	for _, line := range strings.Split(string(passwd), "\n") {
		if f := strings.Split(line, ":"); len(f) == 7 && f[0] == "opsconductor" {
			entry = f
		}
	}
	if entry == nil {
		t.Fatalf("no opsconductor user in %s:\n%s", conf, passwd)
	}
	if uid, _ := strconv.Atoi(entry[2]); uid == 0 || uid >= 1000 {
		t.Errorf("uid %s: want a system uid (1-999)", entry[2])
	}
	if entry[5] != "/var/lib/opsconductor" || !strings.HasSuffix(entry[6], "nologin") {
		t.Errorf("home %s, shell %s: want /var/lib/opsconductor and nologin", entry[5], entry[6])
	}
	group, err := os.ReadFile(filepath.Join(root, "etc/group"))
	if err != nil || !strings.Contains(string(group), "opsconductor:x:"+entry[3]+":") {
		t.Errorf("no opsconductor group with gid %s: %v\n%s", entry[3], err, group)
	}
}

// envExamples checks an environment-file example against the command the
// unit runs: every variable it names (commented out or not) is one the
// command reads, and every setting of the command has a variable there.
var envExamples = []struct {
	file, binary string
	command      []string
	prefix       string
	// notInFile are flags the example leaves out on purpose.
	notInFile []string
	// extra are variables read outside the flag scheme.
	extra []string
}{
	{
		file: "opsconductor.env", binary: "opsconductor", command: []string{"server"}, prefix: "OPSCONDUCTOR_",
		notInFile: []string{"help", "h", "config", "data-dir"}, // data-dir: on ExecStart
		extra:     []string{"OPSCONDUCTOR_HISTORY_DSN", "OPSCONDUCTOR_KEYRING_KEY", "OPSCONDUCTOR_BOOTSTRAP_ADMIN_PASSWORD"},
	},
	{
		file: "opsconductor-agent.env", binary: "opsconductor-agent", command: []string{"run"}, prefix: "OPSCONDUCTOR_AGENT_",
		notInFile: []string{"help", "h", "data-dir"},
		extra:     []string{"OPSCONDUCTOR_AGENT_CONFIG"},
	},
}

func TestEnvironmentFileExamples(t *testing.T) {
	envLine := regexp.MustCompile(`^#?([A-Z][A-Z0-9_]*)=(.*)$`)
	for _, ex := range envExamples {
		t.Run(ex.file, func(t *testing.T) {
			h, err := binaryByName(t, ex.binary).help(ex.command)
			if err != nil {
				t.Fatal(err)
			}
			known := map[string]string{} // variable → flag
			for flag := range h.flags {
				if len(flag) > 1 && !slices.Contains(ex.notInFile, flag) {
					known[ex.prefix+strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))] = flag
				}
			}
			named := map[string]bool{}
			sc := bufio.NewScanner(bytes.NewReader(readRepoFile(t, filepath.Join(systemdDir, ex.file))))
			for n := 1; sc.Scan(); n++ {
				m := envLine.FindStringSubmatch(sc.Text())
				if m == nil {
					continue
				}
				name, value := m[1], m[2]
				named[name] = true
				if _, ok := known[name]; !ok && !slices.Contains(ex.extra, name) {
					t.Errorf("%s:%d: %s is not read by `%s %s`", ex.file, n, name, ex.binary, strings.Join(ex.command, " "))
				}
				if strings.ContainsAny(value, `"'$`) {
					t.Errorf("%s:%d: %s: systemd reads environment files without a shell; drop quotes and $", ex.file, n, name)
				}
			}
			for name, flag := range known {
				if !named[name] && !(flag == "history" && named["OPSCONDUCTOR_HISTORY_DSN"]) {
					t.Errorf("%s: no line for --%s (%s)", ex.file, flag, name)
				}
			}
		})
	}
}

// lookTool finds a program the test needs from the system, or skips.
func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (Debian package %s): skipping", name, pkg)
	}
	return path
}

func runTool(t *testing.T, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, mode); err != nil {
		t.Fatal(err)
	}
}
