package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/plugins/sdk/host"
)

// progressMin is the binary size from which push reports its progress.
const progressMin = 4 << 20

// describeTimeout bounds starting a plugin and asking for its description.
const describeTimeout = 30 * time.Second

func newPluginCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "plugin", Short: "Push, list, show and delete step plugins (needs plugins:write to change them, jobs:read to read)"}
	f := addAPIFlags(cmd)

	var osName, arch, describeFrom, descFile string
	push := &cobra.Command{
		Use:   "push FILE",
		Short: "Upload one build of a step plugin for one OS and architecture",
		Long: "Upload one build of a step plugin. Its description (name, version, parameters schema, outputs) is read by\n" +
			"starting FILE as the agent would and asking it, when FILE is for this host's platform. For another\n" +
			"platform, give --describe-from with a build of the same plugin for this host, or --description with\n" +
			"the description as JSON.",
		Args: exactArgs(1, "the plugin binary"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			if describeFrom != "" && descFile != "" {
				return usageError{errors.New("give --describe-from or --description, not both")}
			}
			file := args[0]
			if err := checkPlatform(file, osName, arch); err != nil {
				return err
			}
			desc, err := pluginDescription(cmd.Context(), file, osName, arch, describeFrom, descFile)
			if err != nil {
				return err
			}
			bin, err := os.Open(file)
			if err != nil {
				return err
			}
			defer bin.Close()
			st, err := bin.Stat()
			if err != nil {
				return err
			}
			req := apiclient.PushPluginRequest{OS: osName, Arch: arch, Description: desc, Binary: bin}
			if st.Size() >= progressMin {
				req.Progress = progressPrinter(cmd.ErrOrStderr(), st.Size())
			}
			p, err := c.PushPlugin(cmd.Context(), req)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), p)
			}
			sum := "-"
			for _, b := range p.Binaries {
				if b.OS == osName && b.Arch == arch {
					sum = b.SHA256
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Pushed %s for %s/%s, sha256 %s\n", p.Ref(), osName, arch, sum)
			return nil
		}),
	}
	push.Flags().StringVar(&osName, "os", runtime.GOOS, "the OS the binary is built for (linux, darwin, freebsd, windows)")
	push.Flags().StringVar(&arch, "arch", runtime.GOARCH, "the architecture the binary is built for (amd64, arm64 …)")
	push.Flags().StringVar(&describeFrom, "describe-from", "", "a build of the same plugin for this host, run to read the description when FILE is for another platform")
	push.Flags().StringVar(&descFile, "description", "", "a JSON file with the plugin's description, instead of running a build of it")

	list := &cobra.Command{
		Use: "list", Short: "List plugin versions and their builds", Args: cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			all, err := c.ListPlugins(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), nonNilSlice(all))
			}
			var rows [][]string
			for _, p := range all {
				for _, b := range p.Binaries {
					rows = append(rows, []string{p.Ref(), b.OS + "/" + b.Arch, shortSum(b.SHA256), byteSize(b.Size),
						when(&b.UploadedAt), b.UploadedBy})
				}
			}
			return table(cmd.OutOrStdout(), "PLUGIN\tPLATFORM\tSHA256\tSIZE\tUPLOADED\tBY", rows)
		}),
	}
	show := &cobra.Command{
		Use: "show NAME[@VERSION]", Short: "Show a plugin version: its parameters, outputs and builds (VERSION may be a pin such as 1)",
		Args: exactArgs(1, "the plugin, NAME or NAME@VERSION"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			name, version, _ := strings.Cut(args[0], "@")
			p, err := c.GetPlugin(cmd.Context(), name, version)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), p)
			}
			return printPlugin(cmd.OutOrStdout(), p)
		}),
	}
	del := &cobra.Command{
		Use: "delete NAME@VERSION", Short: "Delete a plugin version and all its builds (needs plugins:write)",
		Args: exactArgs(1, "the exact plugin version, NAME@VERSION"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			name, version, ok := strings.Cut(args[0], "@")
			if !ok || name == "" || version == "" {
				return usageError{fmt.Errorf("%q: want NAME@VERSION with the exact version, such as disk-usage@1.0.0", args[0])}
			}
			p, err := c.DeletePlugin(cmd.Context(), name, version)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), p)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted %s (%d build(s))\n", p.Ref(), len(p.Binaries))
			return nil
		}),
	}
	cmd.AddCommand(push, list, show, del)
	return cmd
}

func newStepsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use: "steps", Short: "List the step catalog: every built-in step and plugin version a job can use (needs jobs:read)",
		Args: cobra.NoArgs,
	}
	f := addAPIFlags(cmd)
	cmd.RunE = f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
		steps, err := c.ListSteps(cmd.Context())
		if err != nil {
			return err
		}
		if f.json {
			return printJSON(cmd.OutOrStdout(), nonNilSlice(steps))
		}
		rows := make([][]string, 0, len(steps))
		for _, s := range steps {
			agents := strconv.Itoa(s.Agents.Count)
			if s.Agents.All {
				agents = "all (" + agents + ")"
			}
			rows = append(rows, []string{s.Name, s.Version, s.Kind, agents, orDash(s.Summary)})
		}
		return table(cmd.OutOrStdout(), "STEP\tVERSION\tKIND\tAGENTS\tSUMMARY", rows)
	})
	return cmd
}

// pluginDescription reads what the plugin says about itself: from a JSON
// file, or by starting a build this host can run.
func pluginDescription(ctx context.Context, file, osName, arch, describeFrom, descFile string) (apiclient.StepDescription, error) {
	if descFile != "" {
		raw, err := os.ReadFile(descFile)
		if err != nil {
			return apiclient.StepDescription{}, fmt.Errorf("--description: %w", err)
		}
		var d apiclient.StepDescription
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			return apiclient.StepDescription{}, usageError{fmt.Errorf("--description %s: not a plugin description: %w", descFile, err)}
		}
		return d, nil
	}
	run := describeFrom
	if run == "" {
		if osName != runtime.GOOS || arch != runtime.GOARCH {
			return apiclient.StepDescription{}, usageError{fmt.Errorf("%s is for %s/%s, which this %s/%s host cannot start to read its description: "+
				"give --describe-from with a build of the same plugin for %s/%s, or --description with its description as JSON",
				file, osName, arch, runtime.GOOS, runtime.GOARCH, runtime.GOOS, runtime.GOARCH)}
		}
		run = file
	} else if err := checkPlatform(run, runtime.GOOS, runtime.GOARCH); err != nil {
		return apiclient.StepDescription{}, fmt.Errorf("--describe-from: %w", err)
	}
	return describe(ctx, run)
}

// describe starts the plugin through the same go-plugin handshake the
// agent uses, asks for its description and stops it.
func describe(ctx context.Context, path string) (apiclient.StepDescription, error) {
	sum, err := fileSHA256(path)
	if err != nil {
		return apiclient.StepDescription{}, err
	}
	stderr := &lockedBuffer{}
	p, err := host.Start(host.Config{Path: path, SHA256: sum, StartTimeout: describeTimeout, Stderr: stderr})
	if err != nil {
		return apiclient.StepDescription{}, stderr.explain(fmt.Errorf("start %s to read its description (is it a step plugin built with plugins/sdk?): %w", path, err))
	}
	defer p.Stop()
	ctx, cancel := context.WithTimeout(ctx, describeTimeout)
	defer cancel()
	d, err := p.Describe(ctx)
	if err != nil {
		return apiclient.StepDescription{}, stderr.explain(fmt.Errorf("ask %s for its description: %w", path, err))
	}
	out := apiclient.StepDescription{Name: d.Name, Version: d.Version, Summary: d.Summary, Params: d.Params, Idempotent: d.Idempotent}
	for _, o := range d.Outputs {
		out.Outputs = append(out.Outputs, apiclient.StepOutput{Name: o.Name, Description: o.Description})
	}
	return out, nil
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return h.Sum(nil), nil
}

// lockedBuffer keeps the start of the plugin's stderr (go-plugin writes it
// from its own goroutine) to explain a plugin that fails to start.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := 4096 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// explain adds what the plugin printed, if anything, to err.
func (l *lockedBuffer) explain(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if out := strings.TrimSpace(l.b.String()); out != "" {
		return fmt.Errorf("%w\n  the plugin printed: %s", err, out)
	}
	return err
}

// checkPlatform refuses a binary whose headers say it is for another
// platform than the one it is pushed as: the agents of that platform
// would fetch it and fail to run it. Formats it cannot read are refused,
// since no agent could run them either.
func checkPlatform(path, osName, arch string) error {
	gotOS, gotArch, err := binaryPlatform(path)
	if err != nil {
		return err
	}
	if (gotOS != "" && gotOS != osName) || gotArch != arch {
		shown := gotOS
		if shown == "" {
			shown = osName
		}
		return usageError{fmt.Errorf("%s is built for %s/%s, not %s/%s: pass --os %s --arch %s", path, shown, gotArch, osName, arch, shown, gotArch)}
	}
	return nil
}

// binaryPlatform reads an executable's OS and architecture from its
// headers. ELF does not reliably say which Unix it is for, so os is ""
// for ELF files.
func binaryPlatform(path string) (osName, arch string, err error) {
	if f, err := elf.Open(path); err == nil {
		defer f.Close()
		a, ok := map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_ARM: "arm", elf.EM_386: "386",
			elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x", elf.EM_RISCV: "riscv64"}[f.Machine]
		if !ok {
			return "", "", fmt.Errorf("%s: an ELF executable for machine %s, which no agent runs", path, f.Machine)
		}
		return "", a, nil
	}
	if f, err := macho.Open(path); err == nil {
		defer f.Close()
		a, ok := map[macho.Cpu]string{macho.CpuAmd64: "amd64", macho.CpuArm64: "arm64"}[f.Cpu]
		if !ok {
			return "", "", fmt.Errorf("%s: a Mach-O executable for %s, which no agent runs", path, f.Cpu)
		}
		return "darwin", a, nil
	}
	if f, err := pe.Open(path); err == nil {
		defer f.Close()
		a, ok := map[uint16]string{pe.IMAGE_FILE_MACHINE_AMD64: "amd64", pe.IMAGE_FILE_MACHINE_ARM64: "arm64"}[f.Machine]
		if !ok {
			return "", "", fmt.Errorf("%s: a PE executable for machine %#x, which no agent runs", path, f.Machine)
		}
		return "windows", a, nil
	}
	if _, err := os.Stat(path); err != nil {
		return "", "", err
	}
	return "", "", fmt.Errorf("%s is not an executable (ELF, Mach-O or PE)", path)
}

// progressPrinter reports an upload on w every tenth of the way.
func progressPrinter(w io.Writer, total int64) func(int64) {
	next := int64(0)
	return func(sent int64) {
		if sent < next && sent < total {
			return
		}
		fmt.Fprintf(w, "sent %s of %s (%d%%)\n", byteSize(sent), byteSize(total), sent*100/total)
		next = sent + total/10
	}
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func shortSum(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// printPlugin shows one plugin version: what it is, its parameters as a
// table read from its schema, its outputs and its builds.
func printPlugin(w io.Writer, p apiclient.Plugin) error {
	if err := table(w, "FIELD\tVALUE", [][]string{
		{"plugin", p.Ref()}, {"summary", orDash(p.Summary)}, {"idempotent", yesNo(p.Idempotent)},
		{"created", when(&p.CreatedAt)}, {"created by", orDash(p.CreatedBy)},
	}); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if err := printParams(w, p.Params); err != nil {
		return err
	}
	if len(p.Outputs) > 0 {
		fmt.Fprintln(w)
		rows := make([][]string, 0, len(p.Outputs))
		for _, o := range p.Outputs {
			rows = append(rows, []string{o.Name, orDash(o.Description)})
		}
		if err := table(w, "OUTPUT\tDESCRIPTION", rows); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	rows := make([][]string, 0, len(p.Binaries))
	for _, b := range p.Binaries {
		rows = append(rows, []string{b.OS + "/" + b.Arch, b.SHA256, byteSize(b.Size), when(&b.UploadedAt), b.UploadedBy})
	}
	return table(w, "PLATFORM\tSHA256\tSIZE\tUPLOADED\tBY", rows)
}

// paramSchema is the part of a parameter's JSON Schema worth a column.
type paramSchema struct {
	Type        any             `json:"type"`
	Description string          `json:"description"`
	Default     json.RawMessage `json:"default"`
	Enum        []any           `json:"enum"`
	Minimum     *float64        `json:"minimum"`
	Maximum     *float64        `json:"maximum"`
	Pattern     string          `json:"pattern"`
}

// printParams renders an object schema's properties as a table; a schema
// it cannot read that way is printed as indented JSON.
func printParams(w io.Writer, schema json.RawMessage) error {
	if len(schema) == 0 {
		fmt.Fprintln(w, "PARAMETERS: none")
		return nil
	}
	var obj struct {
		Properties map[string]paramSchema `json:"properties"`
		Required   []string               `json:"required"`
	}
	if err := json.Unmarshal(schema, &obj); err != nil || len(obj.Properties) == 0 {
		var buf bytes.Buffer
		if json.Indent(&buf, schema, "", "  ") != nil {
			buf.Reset()
			buf.Write(schema)
		}
		fmt.Fprintf(w, "PARAMETERS (JSON Schema):\n%s\n", buf.String())
		return nil
	}
	names := make([]string, 0, len(obj.Properties))
	for n := range obj.Properties {
		names = append(names, n)
	}
	slices.Sort(names)
	rows := make([][]string, 0, len(names))
	for _, n := range names {
		ps := obj.Properties[n]
		typ := "-"
		switch t := ps.Type.(type) {
		case string:
			typ = t
		case []any:
			parts := make([]string, 0, len(t))
			for _, x := range t {
				parts = append(parts, fmt.Sprint(x))
			}
			typ = strings.Join(parts, "|")
		}
		var rules []string
		if len(ps.Enum) > 0 {
			parts := make([]string, 0, len(ps.Enum))
			for _, e := range ps.Enum {
				parts = append(parts, fmt.Sprint(e))
			}
			rules = append(rules, "one of "+strings.Join(parts, ", "))
		}
		if ps.Minimum != nil {
			rules = append(rules, "≥ "+strconv.FormatFloat(*ps.Minimum, 'g', -1, 64))
		}
		if ps.Maximum != nil {
			rules = append(rules, "≤ "+strconv.FormatFloat(*ps.Maximum, 'g', -1, 64))
		}
		if ps.Pattern != "" {
			rules = append(rules, "matches "+ps.Pattern)
		}
		def := "-"
		if len(ps.Default) > 0 {
			def = string(ps.Default)
		}
		rows = append(rows, []string{n, typ, yesNo(slices.Contains(obj.Required, n)), def, orDash(strings.Join(rules, "; ")), orDash(ps.Description)})
	}
	return table(w, "PARAMETER\tTYPE\tREQUIRED\tDEFAULT\tRULES\tDESCRIPTION", rows)
}
