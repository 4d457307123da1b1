package deploytest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// repoRoot is the repository this module lives in (deploy/deploytest).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

// readRepoFile reads a file given by its path from the repository root.
func readRepoFile(t testing.TB, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A binary is one of the built programs, whose command tree is learnt
// from its own --help output: the files under deploy/ are checked against
// what the binary really accepts, not against a list kept here.
type binary struct {
	name string // as command lines call it: opsconductor, opsconductor-agent
	path string

	mu    sync.Mutex
	helps map[string]*cmdHelp // by subcommand path, "" for the root
}

// cmdHelp is what one command's --help says.
type cmdHelp struct {
	subcommands map[string]bool
	// flags maps every flag (long without "--", short without "-") to
	// whether it takes a value.
	flags map[string]bool
	// defaults holds each flag's default as --help prints it.
	defaults map[string]string
}

var (
	binMu    sync.Mutex
	binaries = map[string]*binary{}
)

// binaryFor returns the built binary by name, from $env or bin/ at the
// repository root. The deploy files are only meaningful against a build,
// so a missing binary fails the test rather than skipping it.
func binaryFor(t testing.TB, name, env string) *binary {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if b, ok := binaries[name]; ok {
		return b
	}
	path := os.Getenv(env)
	if path == "" {
		path = filepath.Join(repoRoot(t), "bin", name)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s: %v (run `make build`, or set %s)", name, err, env)
	}
	b := &binary{name: name, path: path, helps: map[string]*cmdHelp{}}
	binaries[name] = b
	return b
}

func controllerBinary(t testing.TB) *binary {
	return binaryFor(t, "opsconductor", "OPSCONDUCTOR_BIN")
}

func agentBinary(t testing.TB) *binary {
	return binaryFor(t, "opsconductor-agent", "OPSCONDUCTOR_AGENT_BIN")
}

// binaryByName returns the binary a command line calls, or nil for any
// other program.
func binaryByName(t testing.TB, word string) *binary {
	switch filepath.Base(word) {
	case "opsconductor":
		return controllerBinary(t)
	case "opsconductor-agent":
		return agentBinary(t)
	}
	return nil
}

var (
	// "  -h, --help   help for x", "      --data-dir string   where …"
	helpFlagLine = regexp.MustCompile(`^\s+(?:-(\w), )?--([\w-]+)(?: (\w+))?\s{2,}`)
	// "  join        Enrol this host …"
	helpCmdLine = regexp.MustCompile(`^  (\S+)\s{2,}`)
	// `… (default "0.0.0.0:3002")` or `(default 32)` at the end of a flag line
	helpDefault = regexp.MustCompile(`\(default "?([^"()]*)"?\)$`)
)

// help runs `binary PATH... --help` once per path and parses its sections.
func (b *binary) help(path []string) (*cmdHelp, error) {
	key := strings.Join(path, " ")
	b.mu.Lock()
	defer b.mu.Unlock()
	if h, ok := b.helps[key]; ok {
		return h, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, b.path, append(append([]string{}, path...), "--help")...).Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s --help: %w", b.name, key, err)
	}
	h := &cmdHelp{subcommands: map[string]bool{}, flags: map[string]bool{}, defaults: map[string]string{}}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if line != "" && !strings.HasPrefix(line, " ") {
			section = strings.TrimSuffix(line, ":")
			continue
		}
		switch section {
		case "Available Commands":
			if m := helpCmdLine.FindStringSubmatch(line); m != nil {
				h.subcommands[m[1]] = true
			}
		case "Flags", "Global Flags":
			if m := helpFlagLine.FindStringSubmatch(line); m != nil {
				takesValue := m[3] != ""
				h.flags[m[2]] = takesValue
				if d := helpDefault.FindStringSubmatch(line); d != nil {
					h.defaults[m[2]] = d[1]
				}
				if m[1] != "" {
					h.flags[m[1]] = takesValue
				}
			}
		}
	}
	if len(h.flags) == 0 {
		return nil, fmt.Errorf("%s %s --help lists no flags; has its help format changed?", b.name, key)
	}
	b.helps[key] = h
	return h, nil
}

// check reports every word of a command line (the binary's arguments)
// that the binary does not accept: an unknown subcommand, an unknown flag,
// or a flag without its value. It returns the subcommand path it found.
func (b *binary) check(args []string) ([]string, error) {
	path, _, err := b.parse(args)
	return path, err
}

// parse is check that also returns the flags' values, by long name.
func (b *binary) parse(args []string) ([]string, map[string][]string, error) {
	var path []string
	values := map[string][]string{}
	h, err := b.help(nil)
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	positional := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			takesValue, ok := h.flags[name]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("%s %s: unknown flag %s", b.name, strings.Join(path, " "), a))
			case takesValue && !hasValue:
				if i+1 >= len(args) {
					errs = append(errs, fmt.Errorf("%s %s: flag %s needs a value", b.name, strings.Join(path, " "), a))
					break
				}
				i++
				values[name] = append(values[name], args[i])
			default:
				values[name] = append(values[name], value)
			}
			continue
		}
		if positional || len(h.subcommands) == 0 {
			positional = true
			continue
		}
		if !h.subcommands[a] {
			errs = append(errs, fmt.Errorf("%s %s: unknown command %q", b.name, strings.Join(path, " "), a))
			positional = true
			continue
		}
		path = append(path, a)
		if h, err = b.help(path); err != nil {
			return path, values, err
		}
	}
	if len(h.subcommands) > 0 && !positional {
		errs = append(errs, fmt.Errorf("%s %s: names a command group, not a command", b.name, strings.Join(path, " ")))
	}
	return path, values, errors.Join(errs...)
}

// An invocation is one call of one of our binaries found in a command
// line or a shell script.
type invocation struct {
	bin  *binary
	args []string
	line string // where it was found, for messages
}

// placeholder stands for every variable and command substitution when a
// script is expanded: set and non-empty, so that ${X:+--flag "$X"} shows
// the flag it would add.
const placeholder = "PLACEHOLDER"

type placeholderEnv struct{}

func (placeholderEnv) Get(name string) expand.Variable {
	if name == "IFS" { // the shell's default, for field splitting
		return expand.Variable{Set: true, Kind: expand.String, Str: " \t\n"}
	}
	return expand.Variable{Set: true, Kind: expand.String, Str: placeholder}
}

func (placeholderEnv) Each(func(name string, vr expand.Variable) bool) {}

// scriptInvocations parses a POSIX shell script with a real shell parser
// and returns every call of opsconductor or opsconductor-agent in it, its
// words expanded and split as the shell would (with every variable set to
// a placeholder). `exec` prefixes are looked through.
func scriptInvocations(t testing.TB, name, script string) ([]invocation, error) {
	calls, err := scriptCalls(name, script)
	var out []invocation
	for _, c := range calls {
		if b := binaryByName(t, c.fields[0]); b != nil {
			out = append(out, invocation{bin: b, args: c.fields[1:], line: c.line})
		}
	}
	return out, err
}

// A scriptCall is one simple command of a script, expanded.
type scriptCall struct {
	fields []string
	line   string
}

// scriptCalls returns every simple command of a script, expanded as
// scriptInvocations describes.
func scriptCalls(name, script string) ([]scriptCall, error) {
	f, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(script), name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cfg := &expand.Config{
		Env: placeholderEnv{},
		CmdSubst: func(w io.Writer, _ *syntax.CmdSubst) error {
			_, err := io.WriteString(w, placeholder)
			return err
		},
	}
	var out []scriptCall
	var errs []error
	syntax.Walk(f, func(node syntax.Node) bool {
		call, ok := node.(*syntax.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		fields, err := expand.Fields(cfg, call.Args...)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%s: %w", name, call.Pos(), err))
			return true
		}
		for len(fields) > 0 && fields[0] == "exec" {
			fields = fields[1:]
		}
		if len(fields) > 0 {
			out = append(out, scriptCall{fields: fields, line: fmt.Sprintf("%s:%s", name, call.Pos())})
		}
		return true
	})
	return out, errors.Join(errs...)
}

// checkInvocations checks each invocation against its binary and returns
// the subcommand paths seen, as "opsconductor agent join-token create".
func checkInvocations(t *testing.T, invs []invocation) []string {
	t.Helper()
	var seen []string
	for _, inv := range invs {
		path, err := inv.bin.check(inv.args)
		if err != nil {
			t.Errorf("%s: %v", inv.line, err)
		}
		seen = append(seen, strings.Join(append([]string{inv.bin.name}, path...), " "))
	}
	return seen
}
