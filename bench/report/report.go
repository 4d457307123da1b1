package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/bench/internal/figure"
)

type report struct {
	Quick   bool         `json:"quick"`
	Machine machine      `json:"machine"`
	Start   time.Time    `json:"start"`
	Seconds float64      `json:"seconds"`
	Steps   []stepResult `json:"steps"`
}

// machine is what the figures were measured on. Load is read at the start
// and the end: other work on the machine shows there, and it changes how
// the figures read.
type machine struct {
	CPU        string  `json:"cpu"`
	Cores      int     `json:"cores"`
	MemoryMB   int     `json:"memory_mb"`
	Kernel     string  `json:"kernel"`
	GoVersion  string  `json:"go_version"`
	GitRev     string  `json:"git_revision"`
	GitDirty   bool    `json:"git_dirty"`
	LoadBefore float64 `json:"load_average_before"`
	LoadAfter  float64 `json:"load_average_after"`
}

func readMachine(ctx context.Context) machine {
	m := machine{Cores: runtime.NumCPU(), CPU: "unknown", LoadBefore: loadAvg()}
	m.CPU = procField("/proc/cpuinfo", "model name", m.CPU)
	if kb, err := strconv.Atoi(strings.Fields(procField("/proc/meminfo", "MemTotal", "0 kB"))[0]); err == nil {
		m.MemoryMB = kb / 1024
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.GoVersion = output(ctx, "go", "env", "GOVERSION")
	m.GitRev = output(ctx, "git", "rev-parse", "HEAD")
	m.GitDirty = output(ctx, "git", "status", "--porcelain", "--untracked-files=no") != ""
	return m
}

// procField is the value of the first "key: value" line of a /proc file.
func procField(path, key, fallback string) string {
	f, err := os.Open(path)
	if err != nil {
		return fallback
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return fallback
}

func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return v
}

func output(ctx context.Context, name string, args ...string) string {
	b, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func (r *report) counts() (pass, fail, errs int) {
	for _, s := range r.Steps {
		if s.Error != "" {
			errs++
		}
		for _, f := range s.Figures {
			switch f.Verdict {
			case figure.Pass:
				pass++
			case figure.Fail:
				fail++
			}
		}
	}
	return pass, fail, errs
}

func (r *report) write(mdPath, jsonPath string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the report: %w", err)
	}
	if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the JSON report: %w", err)
	}
	if err := os.WriteFile(mdPath, []byte(r.markdown()), 0o644); err != nil {
		return fmt.Errorf("write the markdown report: %w", err)
	}
	return nil
}

func (r *report) markdown() string {
	var b strings.Builder
	m := r.Machine
	mode := "full"
	if r.Quick {
		mode = "QUICK (reduced parameters; figures below their target's scale are not judged)"
	}
	dirty := ""
	if m.GitDirty {
		dirty = " (with uncommitted changes)"
	}
	pass, fail, errs := r.counts()
	fmt.Fprintf(&b, "# make bench\n\n")
	fmt.Fprintf(&b, "- run: %s, started %s, took %s\n", mode, r.Start.Format(time.RFC3339), time.Duration(r.Seconds*float64(time.Second)).Round(time.Second))
	fmt.Fprintf(&b, "- machine: %s, %d cores, %d MB memory, Linux %s; load average %.2f before, %.2f after\n",
		m.CPU, m.Cores, m.MemoryMB, m.Kernel, m.LoadBefore, m.LoadAfter)
	fmt.Fprintf(&b, "- build: %s, git %s%s\n", m.GoVersion, m.GitRev, dirty)
	fmt.Fprintf(&b, "- result: %d figures met their target, %d missed, %d steps failed\n\n", pass, fail, errs)

	b.WriteString("## Figures against targets\n\n| step | figure | value | target | verdict | note |\n|---|---|---|---|---|---|\n")
	for _, s := range r.Steps {
		for _, f := range s.Figures {
			if f.Target != nil {
				fmt.Fprintf(&b, "| %s | %s | %s %s | %s %s | %s | %s |\n", cell(s.Name), cell(f.Name), num(f.Value), f.Unit, f.Target, f.Unit, verdictCell(f), cell(f.Note))
			}
		}
		if s.Error != "" {
			fmt.Fprintf(&b, "| %s | — | — | — | **error** | %s |\n", cell(s.Name), cell(s.Error))
		}
	}

	b.WriteString("\n## Every step\n")
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "\n### %s (%.0f s)\n\n```\n$ %s\n```\n\n", s.Name, s.Seconds, s.Command)
		switch {
		case s.Skipped != "":
			fmt.Fprintf(&b, "Skipped: %s\n", s.Skipped)
			continue
		case s.Error != "":
			fmt.Fprintf(&b, "**Error:** %s\n\n```\n%s\n```\n", s.Error, strings.TrimRight(s.Output, "\n"))
			continue
		}
		b.WriteString("| figure | value | target | verdict | note |\n|---|---|---|---|---|\n")
		for _, f := range s.Figures {
			target := "—"
			if f.Target != nil {
				target = f.Target.String() + " " + f.Unit
			}
			fmt.Fprintf(&b, "| %s | %s %s | %s | %s | %s |\n", cell(f.Name), num(f.Value), f.Unit, target, verdictCell(f), cell(f.Note))
		}
	}
	return b.String()
}

func verdictCell(f figure.Figure) string {
	switch f.Verdict {
	case figure.Pass:
		return "pass"
	case figure.Fail:
		return "**FAIL**"
	}
	return "—"
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// num prints a figure with the precision its size warrants.
func num(v float64) string {
	switch a := max(v, -v); {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}
