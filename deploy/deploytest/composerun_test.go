package deploytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestComposeBootstrapRuns plays `docker compose up` without Docker: it
// runs the compose file's own commands and scripts as processes on
// 127.0.0.1, in the order depends_on gives, with each named volume a
// directory and each service name:port an address on loopback. The init
// job fills the secrets, three servers bootstrap a cluster with the
// settings the file gives them, the enrol job makes the join token, and
// both agents enrol through the image's entrypoint script and connect, as
// their health checks (the file's own, too) confirm.
//
// It needs root (init chowns the secrets to the controllers' uid), psql
// and the PostgreSQL server of OPSCONDUCTOR_TEST_POSTGRES, and skips
// without them.
func TestComposeBootstrapRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster and two agents: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("the init job chowns the secrets to the controllers' uid, which needs root")
	}
	admin := os.Getenv("OPSCONDUCTOR_TEST_POSTGRES")
	if admin == "" {
		t.Skip("OPSCONDUCTOR_TEST_POSTGRES is not set: no PostgreSQL for the history store")
	}
	psql := lookTool(t, "psql", "postgresql-client")
	services := composeServices(t)
	controllers, agents, _, _ := roles(t, services)
	u := &upRun{t: t, services: services, dir: t.TempDir(), ports: map[string]map[string]string{}}
	u.binDir()
	u.historyDSN = u.createDatabase(psql, admin)

	// Each controller's ports on loopback, from the kernel.
	for _, c := range controllers {
		cfg := serverSettings(t, services[c])
		u.ports[c] = map[string]string{}
		for _, f := range []string{"http-addr", "agent-addr", "raft-addr"} {
			u.ports[c][port(t, one(t, c, cfg, f))] = freePort(t)
		}
	}

	// init, twice: the second run must keep what the first made.
	u.runJob("init")
	secrets := u.volumeDir("secrets")
	first := readAll(t, secrets)
	for _, want := range []string{"tls/cluster-ca.pem", "tls/cluster-ca-key.pem", "keyring.key", "admin-password", "postgres-password"} {
		if first[want] == "" {
			t.Fatalf("init made no %s in the secrets volume (it has %q)", want, slices.Sorted(maps.Keys(first)))
		}
	}
	u.runJob("init")
	if second := readAll(t, secrets); !maps.Equal(first, second) {
		t.Fatalf("a second init changed the secrets volume")
	}

	for _, c := range controllers {
		u.startController(c)
	}
	for _, c := range controllers {
		u.waitHealthy(c, 90*time.Second)
	}
	u.runJob("enrol")
	for _, a := range agents {
		u.startAgent(a)
	}
	for _, a := range agents {
		u.waitHealthy(a, 60*time.Second)
	}

	// The cluster knows both agents by the names the file gives them.
	out := u.cli("agent", "list", "--json")
	for _, a := range agents {
		name := envValue(services[a].svc, "OPSCONDUCTOR_JOIN_NAME")
		if !strings.Contains(out, `"name": "`+name+`"`) {
			t.Errorf("agent list has no %s:\n%s", name, out)
		}
	}

	// A restarted agent runs on its stored identity: the entrypoint must
	// not try to enrol again (the token would be used up).
	u.stop(agents[0])
	u.startAgent(agents[0])
	u.waitHealthy(agents[0], 60*time.Second)
}

// upRun is one playing of the compose file.
type upRun struct {
	t          *testing.T
	services   map[string]composeService
	dir        string
	bin        string
	historyDSN string
	// ports maps a controller's container port to its loopback port.
	ports map[string]map[string]string
	procs map[string]*proc
}

// proc is a started service; done closes when it exits.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// binDir puts the built binaries on a PATH of their own, under the names
// the images give them.
func (u *upRun) binDir() {
	u.bin = filepath.Join(u.dir, "bin")
	if err := os.MkdirAll(u.bin, 0o755); err != nil {
		u.t.Fatal(err)
	}
	for _, b := range []*binary{controllerBinary(u.t), agentBinary(u.t)} {
		if err := os.Symlink(b.path, filepath.Join(u.bin, b.name)); err != nil {
			u.t.Fatal(err)
		}
	}
}

// createDatabase makes a fresh database for this run on the test server,
// dropped at the end, and returns its URL.
func (u *upRun) createDatabase(psql, admin string) string {
	u.t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	db := "oc_compose_" + hex.EncodeToString(b[:])
	if out, err := runTool(u.t, psql, admin, "-v", "ON_ERROR_STOP=1", "-qc", `CREATE DATABASE "`+db+`"`); err != nil {
		u.t.Skipf("cannot create a database on OPSCONDUCTOR_TEST_POSTGRES: %v\n%s", err, out)
	}
	u.t.Cleanup(func() {
		if out, err := runTool(u.t, psql, admin, "-v", "ON_ERROR_STOP=1", "-qc", `DROP DATABASE IF EXISTS "`+db+`" WITH (FORCE)`); err != nil {
			u.t.Logf("drop database %s: %v\n%s", db, err, out)
		}
	})
	pu, err := url.Parse(admin)
	if err != nil {
		u.t.Fatalf("OPSCONDUCTOR_TEST_POSTGRES: %v", err)
	}
	pu.Path = "/" + db
	return pu.String()
}

// volumeDir is the directory standing in for a named volume.
func (u *upRun) volumeDir(name string) string {
	d := filepath.Join(u.dir, "volumes", name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		u.t.Fatal(err)
	}
	return d
}

var serviceAddr = regexp.MustCompile(`\b([a-z][a-z0-9-]*):(\d+)\b`)

// mapValue turns a value as a container sees it into one for this
// machine: paths in the service's volumes into the volumes' directories,
// service:port into 127.0.0.1 and the port standing in for it, and the
// history URL into this run's database.
func (u *upRun) mapValue(s composeService, v string) string {
	if strings.HasPrefix(v, "postgres://") {
		return u.historyDSN
	}
	if strings.HasPrefix(v, "/") {
		if vol, _ := volumeFor(s.svc, v); vol != "" {
			return filepath.Join(u.volumeDir(vol), relIn(s.svc, v))
		}
	}
	return serviceAddr.ReplaceAllStringFunc(v, func(m string) string {
		sm := serviceAddr.FindStringSubmatch(m)
		if p, ok := u.ports[sm[1]][sm[2]]; ok {
			return "127.0.0.1:" + p
		}
		return m
	})
}

// env is the service's environment, mapped, on top of this process's
// PATH (with the binaries first) and nothing else of the caller's.
func (u *upRun) env(s composeService) []string {
	env := []string{"PATH=" + u.bin + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + u.dir}
	for _, k := range sortedNames(s.svc.Environment) {
		if v := s.svc.Environment[k]; v != nil {
			env = append(env, k+"="+u.mapValue(s, *v))
		}
	}
	return env
}

// command is argv as the service would run it, mapped to this machine;
// a program named by one of our binaries' names runs the built binary.
func (u *upRun) command(ctx context.Context, s composeService, argv []string) *exec.Cmd {
	mapped := make([]string, len(argv))
	for i, a := range argv {
		mapped[i] = u.mapValue(s, a)
	}
	if b := binaryByName(u.t, mapped[0]); b != nil {
		mapped[0] = b.path
	}
	cmd := exec.CommandContext(ctx, mapped[0], mapped[1:]...)
	cmd.Env = u.env(s)
	cmd.Dir = u.dir
	if s.svc.WorkingDir != "" {
		cmd.Dir = u.mapValue(s, s.svc.WorkingDir)
	}
	return cmd
}

// runJob runs a one-shot service's command to the end; it must exit 0, as
// depends_on's service_completed_successfully wants.
func (u *upRun) runJob(name string) {
	u.t.Helper()
	s := u.services[name]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := u.command(ctx, s, s.argv()).CombinedOutput()
	if err != nil {
		u.t.Fatalf("job %s: %v\n%s", name, err, out)
	}
	u.t.Logf("job %s:\n%s", name, bytes.TrimSpace(out))
}

// startController runs the service's `opsconductor server` command, with
// listeners moved to its loopback ports.
func (u *upRun) startController(name string) {
	s := u.services[name]
	argv := s.argv()
	cfg := serverSettings(u.t, s)
	for _, f := range []string{"http-addr", "agent-addr", "raft-addr"} {
		argv = append(argv, "--"+f, "127.0.0.1:"+u.ports[name][port(u.t, one(u.t, name, cfg, f))])
	}
	// The name the others dial is loopback here; the last --advertise
	// wins, over the service's own and over any variable.
	argv = append(argv, "--advertise", "127.0.0.1")
	for _, v := range s.svc.Volumes {
		u.volumeDir(v.Source)
	}
	u.start(name, u.command(context.Background(), s, argv))
}

// startAgent runs the agent image's entrypoint script from the repository
// with the service's environment, the data directory in its volume.
func (u *upRun) startAgent(name string) {
	s := u.services[name]
	argv := s.argv()
	for len(argv) > 0 && (filepath.Base(argv[0]) == "tini" || argv[0] == "--") {
		argv = argv[1:]
	}
	if len(argv) == 0 || filepath.Base(argv[0]) != "opsconductor-agent-entrypoint" {
		u.t.Fatalf("%s runs %q, not the image's entrypoint script", name, s.argv())
	}
	cmd := u.command(context.Background(), s, append([]string{"sh", filepath.Join(repoRoot(u.t), dockerDir, "agent-entrypoint.sh")}, argv[1:]...))
	// The image's volume path, which the script defaults to.
	cmd.Env = append(cmd.Env, "OPSCONDUCTOR_AGENT_DATA_DIR="+u.mapValue(s, "/var/lib/opsconductor-agent"))
	u.start(name, cmd)
}

func (u *upRun) start(name string, cmd *exec.Cmd) {
	u.t.Helper()
	logPath := filepath.Join(u.dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		u.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		u.t.Fatalf("start %s: %v", name, err)
	}
	logFile.Close()
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	if u.procs == nil {
		u.procs = map[string]*proc{}
	}
	u.procs[name] = p
	u.t.Cleanup(func() {
		u.stop(name)
		if u.t.Failed() {
			data, _ := os.ReadFile(logPath)
			u.t.Logf("----- %s log -----\n%s", name, lastLines(string(data), 40))
		}
	})
}

// stop sends SIGTERM, as `docker stop` does, and SIGKILL after 20 s.
func (u *upRun) stop(name string) {
	p := u.procs[name]
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitHealthy runs the service's health check (the compose file's, else
// its image's) until it passes, as Docker would, failing early when the
// process exits.
func (u *upRun) waitHealthy(name string, within time.Duration) {
	u.t.Helper()
	s := u.services[name]
	test := s.imageHealthcheck()
	if s.svc.HealthCheck != nil && len(s.svc.HealthCheck.Test) > 0 {
		test = s.svc.HealthCheck.Test
	}
	if len(test) < 2 || test[0] != "CMD" {
		u.t.Fatalf("%s: health check %q is not exec-form", name, test)
	}
	argv := slices.Clone(test[1:])
	if p, ok := u.ports[name]; ok && filepath.Base(argv[0]) == "opsconductor" {
		// The check dials 127.0.0.1:3000 inside the container.
		cfg := serverSettings(u.t, s)
		argv = append(argv, "--address", "http://127.0.0.1:"+p[port(u.t, one(u.t, name, cfg, "http-addr"))])
	}
	deadline := time.Now().Add(within)
	var last []byte
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := u.command(ctx, s, argv).CombinedOutput()
		cancel()
		if err == nil {
			u.t.Logf("%s healthy: %s", name, bytes.TrimSpace(out))
			return
		}
		last = out
		if time.Now().After(deadline) {
			u.t.Fatalf("%s not healthy within %s: %s", name, within, last)
		}
		// Docker's start_interval, shortened; an exit ends the wait.
		select {
		case <-u.procs[name].done:
			u.t.Fatalf("%s exited while waiting for it to be healthy", name)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// cli runs the CLI against controller1 as admin, with a login of its own.
func (u *upRun) cli(args ...string) string {
	u.t.Helper()
	c := "controller1"
	s := u.services[c]
	addr := "http://127.0.0.1:" + u.ports[c][port(u.t, one(u.t, c, serverSettings(u.t, s), "http-addr"))]
	pw, err := os.ReadFile(filepath.Join(u.volumeDir("secrets"), "admin-password"))
	if err != nil {
		u.t.Fatal(err)
	}
	env := append(os.Environ(), "OPSCONDUCTOR_CONFIG_DIR="+filepath.Join(u.dir, "cli"), "OPSCONDUCTOR_ADDR="+addr, "OPSCONDUCTOR_TOKEN=")
	run := func(stdin []byte, args ...string) string {
		cmd := exec.Command(controllerBinary(u.t).path, args...)
		cmd.Env, cmd.Stdin = env, bytes.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				out = append(out, ee.Stderr...)
			}
			u.t.Fatalf("opsconductor %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run(pw, "login", "--username", "admin", "--password-stdin")
	return run(nil, args...)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// readAll maps every file under dir to its content.
func readAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
