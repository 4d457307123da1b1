package deploytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	digest "github.com/opencontainers/go-digest"
)

const dockerDir = "deploy/docker"

// images says what each Dockerfile must build.
var images = []struct {
	file   string
	binary string // what the default stage runs
	// bases are the allowed base images of the default (last) stage, by prefix.
	bases []string
	// nonRoot: the default stage runs as a numeric uid and gid other than 0.
	nonRoot bool
	// webUI: the binary is built with the web UI from a Node stage.
	webUI bool
}{
	{file: "controller.Dockerfile", binary: "opsconductor", bases: []string{"scratch", "gcr.io/distroless/static"}, nonRoot: true, webUI: true},
	// The agent runs operators' shell steps: its image needs /bin/sh
	// (agent.Dockerfile says why), so it is the one on Debian, as root.
	{file: "agent.Dockerfile", binary: "opsconductor-agent", bases: []string{"debian:"}},
}

// dockerfile is a parsed Dockerfile.
type dockerfile struct {
	name   string
	data   []byte
	stages []instructions.Stage
}

func parseDockerfile(t *testing.T, file string) *dockerfile {
	t.Helper()
	data := readRepoFile(t, filepath.Join(dockerDir, file))
	ast, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	for _, w := range ast.Warnings {
		t.Errorf("%s: parser: %s", file, w.Short)
	}
	stages, _, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return &dockerfile{name: file, data: data, stages: stages}
}

func (d *dockerfile) stage(name string) *instructions.Stage {
	for i := range d.stages {
		if strings.EqualFold(d.stages[i].Name, name) {
			return &d.stages[i]
		}
	}
	return nil
}

// offlineResolver stands in for a registry, which this machine cannot
// reach: every base image resolves to an empty linux config of this
// machine's architecture. The lint rules about a base image's own
// contents (its platform, its ENV) are therefore out of reach; the rules
// about the Dockerfile itself all run.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg, err := json.Marshal(map[string]any{"os": "linux", "architecture": runtime.GOARCH, "config": map[string]any{}})
	return ref, "", cfg, err
}

// TestDockerfilesLint runs BuildKit's own Dockerfile checks (those
// `docker build --check` runs) over every stage; any warning fails.
func TestDockerfilesLint(t *testing.T) {
	for _, img := range images {
		t.Run(img.file, func(t *testing.T) {
			warnings, err := lintDockerfile(img.file, readRepoFile(t, filepath.Join(dockerDir, img.file)))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range warnings {
				t.Error(w)
			}
		})
	}
}

// The linter must really run its rules here, offline: a Dockerfile with
// known faults gets their warnings.
func TestDockerfileLinterReportsFaults(t *testing.T) {
	bad := "FROM golang:1.26 as build\nENV A b\nFROM scratch\nCOPY --from=build /x /x\nCMD /x\n"
	warnings, err := lintDockerfile("bad.Dockerfile", []byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(warnings, "\n")
	for _, rule := range []string{"FromAsCasing", "LegacyKeyValueFormat", "JSONArgsRecommended"} {
		if !strings.Contains(got, rule) {
			t.Errorf("no %s warning for a Dockerfile that breaks it; got:\n%s", rule, got)
		}
	}
}

// lintDockerfile converts a Dockerfile as a build would, all stages,
// collecting the lint warnings.
func lintDockerfile(name string, data []byte) ([]string, error) {
	var warnings []string
	_, err := dockerfile2llb.Dockerfile2LLB(context.Background(), data, dockerfile2llb.ConvertOpt{
		AllStages:    true,
		MetaResolver: offlineResolver{},
		Warn: func(rule, _, url, msg string, loc []parser.Range) {
			line := 0
			if len(loc) > 0 {
				line = loc[0].Start.Line
			}
			warnings = append(warnings, fmt.Sprintf("%s:%d: %s: %s (%s)", name, line, rule, msg, url))
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%s does not convert to a build: %w", name, err)
	}
	return warnings, nil
}

// makeBuildFlags reads the go build flags and the version ldflag from the
// Makefile, so that the images cannot drift from `make build`.
func makeBuildFlags(t *testing.T) (buildFlags []string, ldflags []string) {
	t.Helper()
	mk := string(readRepoFile(t, "Makefile"))
	get := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `\s*:=\s*(.*)$`).FindStringSubmatch(mk)
		if m == nil {
			t.Fatalf("Makefile: no %s := line", name)
		}
		return strings.TrimSpace(m[1])
	}
	ld := strings.ReplaceAll(get("LDFLAGS"), "$(VERSION)", "${VERSION}")
	return strings.Fields(get("BUILDFLAGS")), strings.Fields(ld)
}

func TestDockerfilesBuildWhatMakeBuilds(t *testing.T) {
	buildFlags, ldflags := makeBuildFlags(t)
	ignore := dockerignore(t)
	for _, img := range images {
		t.Run(img.file, func(t *testing.T) {
			d := parseDockerfile(t, img.file)
			if len(d.stages) < 2 {
				t.Fatalf("%s: %d stage(s): want a multi-stage build (toolchains stay out of the image)", img.file, len(d.stages))
			}
			final := &d.stages[len(d.stages)-1]
			if !slices.ContainsFunc(img.bases, func(p string) bool { return strings.HasPrefix(final.BaseName, p) }) {
				t.Errorf("%s: the default stage is FROM %s, want one of %q", img.file, final.BaseName, img.bases)
			}

			// The go build: static, with make's flags and the version.
			build, buildAt := findRun(d, regexp.MustCompile(`go build .*\./cmd/`+regexp.QuoteMeta(img.binary)+`\b`))
			if build == "" {
				t.Fatalf("%s: no RUN builds ./cmd/%s", img.file, img.binary)
			}
			for _, want := range append(append([]string{"CGO_ENABLED=0"}, buildFlags...), ldflags...) {
				if !containsWord(build, want) {
					t.Errorf("%s: the go build lacks %q (make build has it): %s", img.file, want, build)
				}
			}
			if !declaresArg(&d.stages[buildAt], "VERSION") {
				t.Errorf("%s: stage %q uses ${VERSION} without ARG VERSION", img.file, d.stages[buildAt].Name)
			}

			if img.webUI {
				checkWebUI(t, d, buildAt)
			}
			checkCopies(t, d, ignore)
			checkFinalStage(t, d, final, img.binary, img.nonRoot)
		})
	}
}

// findRun returns the first RUN line matching re and its stage's index.
func findRun(d *dockerfile, re *regexp.Regexp) (string, int) {
	for i, s := range d.stages {
		for _, c := range s.Commands {
			if r, ok := c.(*instructions.RunCommand); ok {
				line := strings.Join(r.CmdLine, " ")
				if re.MatchString(line) {
					return line, i
				}
			}
		}
	}
	return "", -1
}

// containsWord reports whether want is one of line's words, the words
// split at spaces, quotes and line continuations.
func containsWord(line, want string) bool {
	return slices.Contains(strings.FieldsFunc(line, func(r rune) bool { return strings.ContainsRune(" \t\n\"'\\", r) }), want)
}

func declaresArg(s *instructions.Stage, name string) bool {
	for _, c := range s.Commands {
		if a, ok := c.(*instructions.ArgCommand); ok {
			for _, kv := range a.Args {
				if kv.Key == name {
					return true
				}
			}
		}
	}
	return false
}

// checkWebUI: a Node stage installs from the lockfile and builds the UI,
// and the Go build stage copies its output to web/dist before go build.
func checkWebUI(t *testing.T, d *dockerfile, buildAt int) {
	t.Helper()
	ci, webAt := findRun(d, regexp.MustCompile(`\bnpm ci\b`))
	npmBuild, buildWebAt := findRun(d, regexp.MustCompile(`\bnpm run build\b`))
	if ci == "" || npmBuild == "" || webAt != buildWebAt {
		t.Fatalf("%s: want one stage that runs `npm ci` and `npm run build` (the UI the controller embeds)", d.name)
	}
	web := d.stages[webAt].Name
	copied := false
	for _, c := range d.stages[buildAt].Commands {
		if cp, ok := c.(*instructions.CopyCommand); ok && strings.EqualFold(cp.From, web) && strings.TrimSuffix(cp.DestPath, "/") == "./web/dist" {
			copied = true
		}
		if r, ok := c.(*instructions.RunCommand); ok && strings.Contains(strings.Join(r.CmdLine, " "), "go build") && !copied {
			t.Errorf("%s: go build runs before web/dist is copied from stage %q", d.name, web)
		}
	}
	if !copied {
		t.Errorf("%s: stage %q never copies the UI from stage %q into ./web/dist", d.name, d.stages[buildAt].Name, web)
	}
}

// dockerignore reads the build context's .dockerignore with Docker's parser.
func dockerignore(t *testing.T) *patternmatcher.PatternMatcher {
	t.Helper()
	patterns, err := ignorefile.ReadAll(bytes.NewReader(readRepoFile(t, ".dockerignore")))
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	return pm
}

// checkCopies: every COPY from the build context names files that exist
// in the repository and that .dockerignore does not leave out; every
// COPY --from names an earlier stage.
func checkCopies(t *testing.T, d *dockerfile, ignore *patternmatcher.PatternMatcher) {
	t.Helper()
	root := repoRoot(t)
	for i, s := range d.stages {
		for _, c := range s.Commands {
			cp, ok := c.(*instructions.CopyCommand)
			if !ok {
				continue
			}
			if cp.From != "" {
				if !slices.ContainsFunc(d.stages[:i], func(e instructions.Stage) bool { return strings.EqualFold(e.Name, cp.From) }) {
					t.Errorf("%s: COPY --from=%s: no earlier stage of that name", d.name, cp.From)
				}
				continue
			}
			for _, src := range cp.SourcePaths {
				rel := path.Clean(strings.TrimPrefix(src, "/"))
				if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
					t.Errorf("%s: COPY %s: not in the repository", d.name, src)
				}
				if rel == "." {
					continue
				}
				if excluded, err := ignore.MatchesOrParentMatches(rel); err != nil || excluded {
					t.Errorf("%s: COPY %s: left out of the build context by .dockerignore", d.name, src)
				}
			}
		}
	}
}

// checkFinalStage: the image runs the binary it copied in, as the user it
// should, and tells the engine how to probe it.
func checkFinalStage(t *testing.T, d *dockerfile, final *instructions.Stage, binary string, nonRoot bool) {
	t.Helper()
	var (
		copiedTo   = map[string]instructions.CopyCommand{}
		user       string
		health     *instructions.HealthCheckCommand
		entrypoint *instructions.EntrypointCommand
	)
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			copiedTo[c.DestPath] = *c
		case *instructions.UserCommand:
			user = c.User
		case *instructions.HealthCheckCommand:
			health = c
		case *instructions.EntrypointCommand:
			entrypoint = c
		}
	}
	binPath := "/usr/local/bin/" + binary
	if _, ok := copiedTo[binPath]; !ok {
		t.Errorf("%s: the default stage does not COPY the binary to %s", d.name, binPath)
	}

	if nonRoot {
		uid, gid, _ := strings.Cut(user, ":")
		u, errU := strconv.Atoi(uid)
		g, errG := strconv.Atoi(gid)
		if errU != nil || errG != nil || u == 0 || g == 0 {
			t.Errorf("%s: USER %q: want a numeric uid:gid other than root (Kubernetes' runAsNonRoot can only check a number)", d.name, user)
		}
	} else if user == "" {
		t.Errorf("%s: no USER: say which user the image runs as", d.name)
	}

	if entrypoint == nil || entrypoint.PrependShell {
		t.Errorf("%s: want an exec-form ENTRYPOINT (signals reach the program, not a shell)", d.name)
	} else {
		checkEntrypoint(t, d, entrypoint.CmdLine, copiedTo, binPath)
	}

	if health == nil || health.Health == nil || len(health.Health.Test) < 2 || health.Health.Test[0] != "CMD" {
		t.Fatalf("%s: want an exec-form HEALTHCHECK CMD [...] (the image may have no shell)", d.name)
	}
	probe := health.Health.Test[1:]
	if probe[0] != binPath {
		t.Fatalf("%s: HEALTHCHECK runs %s, want the image's own %s", d.name, probe[0], binPath)
	}
	path, err := binaryByName(t, binary).check(probe[1:])
	if err != nil {
		t.Errorf("%s: HEALTHCHECK: %v", d.name, err)
	}
	if len(path) == 0 || path[0] != "health" {
		t.Errorf("%s: HEALTHCHECK runs %q, want the binary's health command", d.name, probe)
	}
}

// checkEntrypoint follows the ENTRYPOINT to the program it starts: the
// binary itself, or a script from the repository (through an init such as
// tini), whose calls of the binary are checked too.
func checkEntrypoint(t *testing.T, d *dockerfile, cmd []string, copiedTo map[string]instructions.CopyCommand, binPath string) {
	t.Helper()
	for len(cmd) > 0 && (filepath.Base(cmd[0]) == "tini" || cmd[0] == "--") {
		cmd = cmd[1:]
	}
	if len(cmd) == 0 {
		t.Errorf("%s: ENTRYPOINT starts nothing but an init", d.name)
		return
	}
	if cmd[0] == binPath {
		return
	}
	cp, ok := copiedTo[cmd[0]]
	if !ok || cp.From != "" || len(cp.SourcePaths) != 1 {
		t.Errorf("%s: ENTRYPOINT %s is neither %s nor a script copied from the repository", d.name, cmd[0], binPath)
		return
	}
	src := cp.SourcePaths[0]
	if cp.Chmod != "0755" && cp.Chmod != "755" {
		t.Errorf("%s: COPY %s: want --chmod=0755 so that the script is executable whatever the checkout's modes", d.name, src)
	}
	script := string(readRepoFile(t, src))
	invs, err := scriptInvocations(t, src, script)
	if err != nil {
		t.Fatal(err)
	}
	seen := checkInvocations(t, invs)
	if !slices.ContainsFunc(seen, func(s string) bool { return strings.HasPrefix(s, filepath.Base(binPath)+" ") }) {
		t.Errorf("%s: %s never runs %s", d.name, src, binPath)
	}
	shellcheck(t, src, script)
}

// shellcheck runs ShellCheck on a POSIX sh script when it is installed.
func shellcheck(t *testing.T, name, script string) {
	t.Helper()
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Logf("shellcheck is not installed (Debian package shellcheck): %s not checked with it", name)
		return
	}
	f := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runTool(t, sc, "--shell=sh", "--severity=style", f); err != nil {
		t.Errorf("shellcheck %s: %v\n%s", name, err, out)
	}
}
