package deploytest

import (
	"context"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

const composeFile = "deploy/compose/docker-compose.yml"

// loadCompose loads the compose file with Compose's own loader (schema
// validation, interpolation, merges and anchors as `docker compose` does),
// with an empty environment so that the defaults in the file apply.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	path := filepath.Join(repoRoot(t), composeFile)
	opts, err := cli.NewProjectOptions([]string{path}, cli.WithEnv([]string{}), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return p
}

// composeService is a service with what its image says about it.
type composeService struct {
	name string
	svc  types.ServiceConfig
	// stage is the Dockerfile stage the service's image is built from
	// (nil for a pulled image such as postgres).
	df    *dockerfile
	stage *instructions.Stage
}

// argv is the command the container runs: the service's entrypoint and
// command, or else its image's ENTRYPOINT and CMD.
func (s composeService) argv() []string {
	var entry, cmd []string
	if s.stage != nil {
		for _, c := range s.stage.Commands {
			switch c := c.(type) {
			case *instructions.EntrypointCommand:
				entry = c.CmdLine
			case *instructions.CmdCommand:
				cmd = c.CmdLine
			}
		}
	}
	if s.svc.Entrypoint != nil {
		entry, cmd = s.svc.Entrypoint, nil
	}
	if s.svc.Command != nil {
		cmd = s.svc.Command
	}
	return append(append([]string{}, entry...), cmd...)
}

// imageHealthcheck is the HEALTHCHECK of the service's image, if any.
func (s composeService) imageHealthcheck() []string {
	if s.stage == nil {
		return nil
	}
	var test []string
	for _, c := range s.stage.Commands {
		if h, ok := c.(*instructions.HealthCheckCommand); ok && h.Health != nil {
			test = h.Health.Test
		}
	}
	return test
}

func composeServices(t *testing.T) map[string]composeService {
	t.Helper()
	p := loadCompose(t)
	root := repoRoot(t)
	parsed := map[string]*dockerfile{}
	out := map[string]composeService{}
	for name, svc := range p.Services {
		cs := composeService{name: name, svc: svc}
		if b := svc.Build; b != nil {
			if filepath.Clean(b.Context) != root {
				t.Errorf("service %s: build context %s, want the repository root (the Dockerfiles COPY from there)", name, b.Context)
			}
			rel := filepath.ToSlash(b.Dockerfile)
			if !strings.HasPrefix(rel, dockerDir+"/") {
				t.Fatalf("service %s: dockerfile %s is not one of %s", name, rel, dockerDir)
			}
			file := strings.TrimPrefix(rel, dockerDir+"/")
			if parsed[file] == nil {
				parsed[file] = parseDockerfile(t, file)
			}
			cs.df = parsed[file]
			if b.Target == "" {
				cs.stage = &cs.df.stages[len(cs.df.stages)-1]
			} else if cs.stage = cs.df.stage(b.Target); cs.stage == nil {
				t.Fatalf("service %s: build target %q is not a stage of %s", name, b.Target, file)
			}
		}
		out[name] = cs
	}
	return out
}

// Services that share an image name must build it the same way, or the
// tag would hold whichever was built last.
func TestComposeImagesAreBuiltOneWay(t *testing.T) {
	p := loadCompose(t)
	byImage := map[string]string{}
	for _, name := range sortedNames(p.Services) {
		svc := p.Services[name]
		if svc.Build == nil {
			continue
		}
		key := svc.Build.Dockerfile + " target=" + svc.Build.Target
		if prev, ok := byImage[svc.Image]; ok && prev != key {
			t.Errorf("image %s is built as %s and as %s", svc.Image, prev, key)
		}
		byImage[svc.Image] = key
	}
}

// role sorts the services by what they are.
func roles(t *testing.T, services map[string]composeService) (controllers, agents, postgres, jobs []string) {
	t.Helper()
	for _, name := range sortedNames(services) {
		s := services[name]
		switch {
		case s.df != nil && s.df.name == "controller.Dockerfile" && s.stage == &s.df.stages[len(s.df.stages)-1]:
			controllers = append(controllers, name)
		case s.df != nil && s.df.name == "agent.Dockerfile":
			agents = append(agents, name)
		case strings.HasPrefix(s.svc.Image, "postgres:"):
			postgres = append(postgres, name)
		default:
			jobs = append(jobs, name)
		}
	}
	if len(controllers) != 3 || len(agents) != 2 || len(postgres) != 1 {
		t.Fatalf("controllers %q, agents %q, postgres %q: want three, two and one", controllers, agents, postgres)
	}
	return controllers, agents, postgres, jobs
}

// TestComposeCommandsAreRealCommands checks every command a container
// runs, its health check, and every call of our binaries in the jobs'
// shell scripts against the built binaries.
func TestComposeCommandsAreRealCommands(t *testing.T) {
	services := composeServices(t)
	for _, name := range sortedNames(services) {
		s := services[name]
		t.Run(name, func(t *testing.T) {
			argv := s.argv()
			for len(argv) > 0 && (filepath.Base(argv[0]) == "tini" || argv[0] == "--") {
				argv = argv[1:]
			}
			switch {
			case len(argv) == 0:
				if s.stage != nil {
					t.Fatalf("runs nothing")
				}
			case binaryByName(t, argv[0]) != nil:
				checkInvocations(t, []invocation{{bin: binaryByName(t, argv[0]), args: argv[1:], line: name + " command"}})
			case (argv[0] == "sh" || argv[0] == "/bin/sh") && len(argv) == 3 && strings.HasPrefix(argv[1], "-") && strings.Contains(argv[1], "c"):
				invs, err := scriptInvocations(t, name+" script", argv[2])
				if err != nil {
					t.Fatal(err)
				}
				if len(invs) == 0 {
					t.Errorf("the script calls neither opsconductor nor opsconductor-agent")
				}
				checkInvocations(t, invs)
				shellcheck(t, name+" script", argv[2])
			case strings.HasPrefix(argv[0], "/usr/local/bin/opsconductor-agent-entrypoint"):
				// The image's script, checked with its Dockerfile.
			case s.stage == nil:
				// A pulled image's own command.
			default:
				t.Errorf("runs %q, which this test cannot check", argv)
			}

			test := s.imageHealthcheck()
			if s.svc.HealthCheck != nil && len(s.svc.HealthCheck.Test) > 0 {
				test = s.svc.HealthCheck.Test
			}
			if len(test) > 1 && test[0] == "CMD" {
				if b := binaryByName(t, test[1]); b != nil {
					checkInvocations(t, []invocation{{bin: b, args: test[2:], line: name + " healthcheck"}})
				}
			}
		})
	}
}

// serverSettings is what `opsconductor server` would be configured with in
// a controller container: its flags, then OPSCONDUCTOR_* variables, then
// the defaults --help prints.
func serverSettings(t *testing.T, s composeService) map[string][]string {
	t.Helper()
	b := controllerBinary(t)
	argv := s.argv()
	path, flags, err := b.parse(argv[1:])
	if err != nil || len(path) != 1 || path[0] != "server" {
		t.Fatalf("%s: does not run `opsconductor server`: %q: %v", s.name, argv, err)
	}
	h, err := b.help(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for flag := range h.flags {
		if v, ok := flags[flag]; ok {
			out[flag] = splitList(v...)
		} else if v := envValue(s.svc, "OPSCONDUCTOR_"+strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))); v != "" {
			out[flag] = splitList(v)
		} else if d, ok := h.defaults[flag]; ok {
			out[flag] = splitList(d)
		}
	}
	if v := envValue(s.svc, "OPSCONDUCTOR_HISTORY_DSN"); v != "" && len(flags["history"]) == 0 {
		out["history"] = []string{v}
	}
	return out
}

func envValue(svc types.ServiceConfig, name string) string {
	if v, ok := svc.Environment[name]; ok && v != nil {
		return *v
	}
	return ""
}

func splitList(vs ...string) []string {
	var out []string
	for _, v := range vs {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func one(t *testing.T, service string, settings map[string][]string, flag string) string {
	t.Helper()
	if len(settings[flag]) != 1 {
		t.Fatalf("%s: --%s is %q, want one value", service, flag, settings[flag])
	}
	return settings[flag][0]
}

func port(t *testing.T, hostPort string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hostPort)
	if err != nil {
		t.Fatalf("%q: %v", hostPort, err)
	}
	return p
}

// TestComposeClusterIsConsistent checks that the pieces fit: the servers
// expect as many peers as there are, each retry-joins all the others at
// their Raft port under names that resolve on the compose network, the
// agents and the enrol job dial real controllers at the right ports, the
// history store is the postgres service, every file a server reads lies
// in a volume it mounts, and every service waits for what it needs.
func TestComposeClusterIsConsistent(t *testing.T) {
	services := composeServices(t)
	controllers, agents, pgs, jobs := roles(t, services)
	pg := services[pgs[0]]

	settings := map[string]map[string][]string{}
	for _, c := range controllers {
		settings[c] = serverSettings(t, services[c])
	}
	httpPort := port(t, one(t, controllers[0], settings[controllers[0]], "http-addr"))
	agentPort := port(t, one(t, controllers[0], settings[controllers[0]], "agent-addr"))
	raftPort := port(t, one(t, controllers[0], settings[controllers[0]], "raft-addr"))

	nodeIDs := map[string]bool{}
	published := map[string]string{}
	for _, c := range controllers {
		s, cfg := services[c], settings[c]
		if got := one(t, c, cfg, "bootstrap-expect"); got != strconv.Itoa(len(controllers)) {
			t.Errorf("%s: --bootstrap-expect %s, but the file has %d controllers", c, got, len(controllers))
		}
		for _, f := range []string{"http-addr", "agent-addr", "raft-addr"} {
			if p := port(t, one(t, c, cfg, f)); p != map[string]string{"http-addr": httpPort, "agent-addr": agentPort, "raft-addr": raftPort}[f] {
				t.Errorf("%s: --%s port %s differs from the other servers'", c, f, p)
			}
		}
		// The name others dial must be this service's name on the network.
		if adv := one(t, c, cfg, "advertise"); adv != c && adv != s.svc.Hostname {
			t.Errorf("%s: --advertise %s is not the service's name", c, adv)
		}
		id := one(t, c, cfg, "node-id")
		if nodeIDs[id] {
			t.Errorf("%s: --node-id %s is used twice", c, id)
		}
		nodeIDs[id] = true
		var want []string
		for _, other := range controllers {
			if other != c {
				want = append(want, net.JoinHostPort(other, raftPort))
			}
		}
		if got := slices.Sorted(slices.Values(cfg["retry-join"])); !slices.Equal(got, want) {
			t.Errorf("%s: --retry-join %q, want the other servers' Raft addresses %q", c, got, want)
		}

		// History: the postgres service, its user and database.
		u, err := url.Parse(one(t, c, cfg, "history"))
		if err != nil || u.Scheme != "postgres" {
			t.Fatalf("%s: --history %q is not a postgres:// URL: %v", c, cfg["history"], err)
		}
		if u.Hostname() != pgs[0] || u.Port() != "5432" || u.User.Username() != envValue(pg.svc, "POSTGRES_USER") || strings.TrimPrefix(u.Path, "/") != envValue(pg.svc, "POSTGRES_DB") {
			t.Errorf("%s: --history %s does not name the %s service's user and database (%s, %s)", c, u.Redacted(), pgs[0], envValue(pg.svc, "POSTGRES_USER"), envValue(pg.svc, "POSTGRES_DB"))
		}
		if _, hasPassword := u.User.Password(); hasPassword {
			t.Errorf("%s: the history URL holds a password; use --history-password-file", c)
		}

		// Every file the server reads is in a volume; the data dir in a writable one.
		for _, f := range []string{"tls-ca-cert", "tls-ca-key", "keyring-file", "bootstrap-admin-password-file", "history-password-file"} {
			if vol, _ := volumeFor(s.svc, one(t, c, cfg, f)); vol == "" {
				t.Errorf("%s: --%s %s is in no volume the service mounts", c, f, cfg[f])
			}
		}
		if vol, ro := volumeFor(s.svc, one(t, c, cfg, "data-dir")); vol == "" || ro || vol == "secrets" {
			t.Errorf("%s: --data-dir %s must be in a writable volume of its own (got %q, read-only %v)", c, cfg["data-dir"], vol, ro)
		}

		for _, p := range s.svc.Ports {
			if strconv.Itoa(int(p.Target)) != httpPort {
				t.Errorf("%s: publishes container port %d; only the HTTP port %s is meant for the host", c, p.Target, httpPort)
			}
			if prev, ok := published[p.Published]; ok {
				t.Errorf("%s and %s both publish host port %s", prev, c, p.Published)
			}
			published[p.Published] = c
		}
		wantDeps(t, s, map[string]string{"postgres": types.ServiceConditionHealthy})
	}
	if len(published) == 0 {
		t.Errorf("no controller publishes its HTTP port: the UI would be unreachable")
	}
	checkOwnership(t, services, controllers, settings, jobs)

	// PostgreSQL reads the password the servers use.
	pgPass := envValue(pg.svc, "POSTGRES_PASSWORD_FILE")
	pgVol, _ := volumeFor(pg.svc, pgPass)
	c0 := services[controllers[0]]
	srvVol, _ := volumeFor(c0.svc, one(t, controllers[0], settings[controllers[0]], "history-password-file"))
	if pgVol == "" || pgVol != srvVol || relIn(pg.svc, pgPass) != relIn(c0.svc, one(t, controllers[0], settings[controllers[0]], "history-password-file")) {
		t.Errorf("PostgreSQL's password file %s and the servers' --history-password-file are not the same file of one volume", pgPass)
	}
	if pg.svc.HealthCheck == nil {
		t.Errorf("%s: no healthcheck, but the controllers wait for it to be healthy", pgs[0])
	}

	// Agents dial every controller at the agent port, after the enrol job.
	for _, a := range agents {
		s := services[a]
		var want, got []string
		for _, c := range controllers {
			want = append(want, net.JoinHostPort(c, agentPort))
		}
		got = slices.Sorted(slices.Values(splitList(envValue(s.svc, "OPSCONDUCTOR_AGENT_CONTROLLER"))))
		if !slices.Equal(got, want) {
			t.Errorf("%s: OPSCONDUCTOR_AGENT_CONTROLLER %q, want every controller's agent listener %q", a, got, want)
		}
		for _, v := range []string{"OPSCONDUCTOR_JOIN_TOKEN_FILE", "OPSCONDUCTOR_JOIN_CA_PIN_FILE"} {
			if vol, _ := volumeFor(s.svc, envValue(s.svc, v)); vol == "" {
				t.Errorf("%s: %s %q is in no volume the service mounts", a, v, envValue(s.svc, v))
			}
		}
		if vol, ro := volumeFor(s.svc, "/var/lib/opsconductor-agent"); vol == "" || ro {
			t.Errorf("%s: the agent's data directory is not a writable volume: its enrolment would not survive the container", a)
		}
		if len(s.imageHealthcheck()) == 0 && s.svc.HealthCheck == nil {
			t.Errorf("%s: no healthcheck", a)
		}
	}

	// The jobs: one fills the secrets volume before anything starts, one
	// needs every controller healthy and feeds the agents.
	for _, j := range jobs {
		s := services[j]
		if s.svc.Restart != "" && s.svc.Restart != "no" {
			t.Errorf("%s: a one-shot job must not restart (restart: %s)", j, s.svc.Restart)
		}
		if addr := envValue(s.svc, "OPSCONDUCTOR_ADDR"); addr != "" {
			u, err := url.Parse(addr)
			if err != nil || !slices.Contains(controllers, u.Hostname()) || u.Port() != httpPort {
				t.Errorf("%s: OPSCONDUCTOR_ADDR %s is not a controller's HTTP address", j, addr)
			}
			deps := map[string]string{}
			for _, c := range controllers {
				deps[c] = types.ServiceConditionHealthy
			}
			wantDeps(t, s, deps)
			for _, a := range agents {
				wantDeps(t, services[a], map[string]string{j: types.ServiceConditionCompletedSuccessfully})
			}
		}
	}
	for _, c := range controllers {
		for dep, d := range services[c].svc.DependsOn {
			if d.Condition == types.ServiceConditionCompletedSuccessfully && !slices.Contains(jobs, dep) {
				t.Errorf("%s waits for %s to complete, which is not a job", c, dep)
			}
			if d.Condition == types.ServiceConditionHealthy && services[dep].svc.HealthCheck == nil && len(services[dep].imageHealthcheck()) == 0 {
				t.Errorf("%s waits for %s to be healthy, which has no healthcheck", c, dep)
			}
		}
		if services[c].svc.HealthCheck == nil {
			t.Errorf("%s: no healthcheck (the enrol job waits for the controllers to be ready)", c)
		}
	}
}

// checkOwnership: the servers run as their image's USER, so a fresh data
// volume must start out owned by it (Docker copies the image directory's
// owner into an empty named volume), and the job that writes the secrets
// must hand them to that user.
func checkOwnership(t *testing.T, services map[string]composeService, controllers []string, settings map[string]map[string][]string, jobs []string) {
	t.Helper()
	c := services[controllers[0]]
	user := ""
	chowned := map[string]string{} // COPY destination → --chown
	for _, cmd := range c.stage.Commands {
		switch cmd := cmd.(type) {
		case *instructions.UserCommand:
			user = cmd.User
		case *instructions.CopyCommand:
			chowned[cmd.DestPath] = cmd.Chown
		}
	}
	dataDir := one(t, controllers[0], settings[controllers[0]], "data-dir")
	if chowned[dataDir] != user {
		t.Errorf("%s: the image does not create --data-dir %s owned by its USER %s (a new volume there would not be writable)", c.df.name, dataDir, user)
	}
	secretsVol, _ := volumeFor(c.svc, one(t, controllers[0], settings[controllers[0]], "keyring-file"))
	writers := 0
	for _, j := range jobs {
		s := services[j]
		if vol, ro := volumeFor(s.svc, s.svc.WorkingDir); vol != secretsVol || ro {
			continue
		}
		writers++
		argv := s.argv()
		calls, err := scriptCalls(j, argv[len(argv)-1])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(calls, func(c scriptCall) bool { return c.fields[0] == "chown" && slices.Contains(c.fields, user) }) {
			t.Errorf("%s writes the %s volume but never chowns it to the servers' USER %s", j, secretsVol, user)
		}
	}
	if writers != 1 {
		t.Errorf("%d jobs write the %s volume the servers read, want one", writers, secretsVol)
	}
}

func wantDeps(t *testing.T, s composeService, want map[string]string) {
	t.Helper()
	for dep, cond := range want {
		if got := s.svc.DependsOn[dep].Condition; got != cond {
			t.Errorf("%s: depends_on %s: condition %q, want %q", s.name, dep, got, cond)
		}
	}
}

// volumeFor returns the named volume (or bind source) holding an absolute
// path in the service's container, and whether it is mounted read-only.
func volumeFor(svc types.ServiceConfig, path string) (string, bool) {
	best := ""
	var vol types.ServiceVolumeConfig
	for _, v := range svc.Volumes {
		if (path == v.Target || strings.HasPrefix(path, strings.TrimSuffix(v.Target, "/")+"/")) && len(v.Target) > len(best) {
			best, vol = v.Target, v
		}
	}
	if best == "" {
		return "", false
	}
	return vol.Source, vol.ReadOnly
}

// relIn is the path's place inside its volume.
func relIn(svc types.ServiceConfig, path string) string {
	for _, v := range svc.Volumes {
		if strings.HasPrefix(path, strings.TrimSuffix(v.Target, "/")+"/") {
			return strings.TrimPrefix(path, strings.TrimSuffix(v.Target, "/")+"/")
		}
	}
	return ""
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TestComposeEnvironmentIsRead: every OPSCONDUCTOR_* variable a service
// sets is one its program reads; a misspelt one would be ignored without a
// word. Servers read OPSCONDUCTOR_<FLAG> (and a few named ones), agents
// OPSCONDUCTOR_AGENT_<FLAG of run> and the entrypoint script's variables,
// the CLI jobs OPSCONDUCTOR_ADDR and OPSCONDUCTOR_CONFIG_DIR.
func TestComposeEnvironmentIsRead(t *testing.T) {
	services := composeServices(t)
	controllers, agents, _, jobs := roles(t, services)
	entrypoint := string(readRepoFile(t, filepath.Join(dockerDir, "agent-entrypoint.sh")))
	flagVars := func(b *binary, path []string, prefix string) map[string]bool {
		h, err := b.help(path)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for f := range h.flags {
			out[prefix+strings.ToUpper(strings.ReplaceAll(f, "-", "_"))] = true
		}
		return out
	}
	server := flagVars(controllerBinary(t), []string{"server"}, "OPSCONDUCTOR_")
	for _, v := range []string{"OPSCONDUCTOR_HISTORY_DSN", "OPSCONDUCTOR_KEYRING_KEY", "OPSCONDUCTOR_BOOTSTRAP_ADMIN_PASSWORD"} {
		server[v] = true
	}
	agentRun := flagVars(agentBinary(t), []string{"run"}, "OPSCONDUCTOR_AGENT_")
	cliVars := map[string]bool{"OPSCONDUCTOR_ADDR": true, "OPSCONDUCTOR_CONFIG_DIR": true, "OPSCONDUCTOR_TOKEN": true}

	check := func(name string, reads func(string) bool) {
		for _, v := range sortedNames(services[name].svc.Environment) {
			if strings.HasPrefix(v, "OPSCONDUCTOR_") && !reads(v) {
				t.Errorf("%s: %s is read by nothing the service runs", name, v)
			}
		}
	}
	for _, c := range controllers {
		check(c, func(v string) bool { return server[v] })
	}
	for _, a := range agents {
		check(a, func(v string) bool {
			// The script lists what it reads in its header; the _FILE
			// forms are read indirectly (from_file), so a word match.
			return agentRun[v] || regexp.MustCompile(`\b`+v+`\b`).MatchString(entrypoint)
		})
	}
	for _, j := range jobs {
		check(j, func(v string) bool { return cliVars[v] })
	}
}
