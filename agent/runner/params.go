package runner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
)

// params is the JSON shape of a command step's parameters.
type params struct {
	Argv  []string          `json:"argv"`
	Shell *string           `json:"shell"`
	Env   map[string]string `json:"env"`
	Dir   string            `json:"dir"`
}

// maxParams bounds what DecodeParams reads; parameters are small.
const maxParams = 1 << 20

// DecodeParams decodes an Assignment's params_json for the "command" kind:
// {"argv": [...]} or {"shell": "..."} (exactly one), with optional "env"
// (an object of strings) and "dir" (an absolute path). Unknown fields are
// refused. Every problem is reported at once, each naming its field.
func DecodeParams(b []byte) (Command, error) {
	if len(b) > maxParams {
		return Command{}, fmt.Errorf("params: larger than %d bytes", maxParams)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p params
	if err := dec.Decode(&p); err != nil {
		return Command{}, fmt.Errorf("params: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Command{}, errors.New("params: trailing data after the JSON object")
	}
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	switch {
	case p.Argv != nil && p.Shell != nil:
		bad("params: give either argv or shell, not both")
	case p.Argv == nil && p.Shell == nil:
		bad("params: one of argv or shell is required")
	}
	if p.Argv != nil {
		if len(p.Argv) == 0 {
			bad("argv: must name a program")
		} else if p.Argv[0] == "" {
			bad("argv[0]: empty program name")
		}
		for i, a := range p.Argv {
			if strings.IndexByte(a, 0) >= 0 {
				bad("argv[%d]: contains a NUL byte", i)
			}
		}
	}
	if p.Shell != nil {
		if strings.TrimSpace(*p.Shell) == "" {
			bad("shell: empty command")
		} else if strings.IndexByte(*p.Shell, 0) >= 0 {
			bad("shell: contains a NUL byte")
		}
	}
	keys := make([]string, 0, len(p.Env))
	for k := range p.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			bad("env[%q]: invalid variable name", k)
		}
		if strings.IndexByte(p.Env[k], 0) >= 0 {
			bad("env[%q]: value contains a NUL byte", k)
		}
	}
	if p.Dir != "" && (!filepath.IsAbs(p.Dir) || strings.IndexByte(p.Dir, 0) >= 0) {
		bad("dir: %q is not an absolute path", p.Dir)
	}
	if len(probs) > 0 {
		return Command{}, errors.New(strings.Join(probs, "; "))
	}
	c := Command{Argv: p.Argv, Env: p.Env, Dir: p.Dir}
	if p.Shell != nil {
		c.Shell = *p.Shell
	}
	return c, nil
}
