// Command teststep is a real plugin binary for agent/pluginhost's tests:
// one step whose "mode" parameter makes it behave well or badly. The
// version is set at build time (-ldflags -X main.version=…) so that the
// tests can install two versions side by side.
package main

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

var version = "1.0.0"

type step struct{}

func (step) Describe() sdk.Description {
	return sdk.Description{
		Name:    "teststep",
		Version: version,
		Summary: "Behaves as its mode says, for tests.",
		Params: []byte(`{"type":"object","required":["mode"],"additionalProperties":false,"properties":{
			"mode":{"enum":["noop","echo","secret","fail","error","panic","crash","hang","stop","flood"]},
			"text":{"type":"string"},
			"bytes":{"type":"integer","minimum":0},
			"done_file":{"type":"string"}}}`),
		Outputs: []sdk.OutputSpec{{Name: "pid"}, {Name: "version"}},
	}
}

type params struct {
	Mode  string `json:"mode"`
	Text  string `json:"text"`
	Bytes int    `json:"bytes"`
	// DoneFile is created when a flood has been written, so that a test
	// can see how far the plugin got while the agent held it back.
	DoneFile string `json:"done_file"`
}

func (step) Run(ctx context.Context, req sdk.Request, out sdk.Output) (sdk.Result, error) {
	var p params
	if err := req.Decode(&p); err != nil {
		return sdk.Result{}, err
	}
	res := sdk.Result{Outputs: map[string]string{"pid": strconv.Itoa(os.Getpid()), "version": version}}
	switch p.Mode {
	case "noop":
	case "echo":
		sdk.Printf(out, "%s", p.Text)
		io.WriteString(out.Stderr(), "to stderr\n")
		res.Changed = true
	case "secret":
		// Every secret, cut in two across two writes.
		for _, v := range req.Secrets {
			io.WriteString(out.Stdout(), "secret="+v[:len(v)/2])
			io.WriteString(out.Stdout(), v[len(v)/2:]+"\n")
		}
	case "fail":
		res.Status, res.Message = sdk.StatusFailed, "failed as asked"
	case "error":
		return res, errors.New("step error mentioning " + req.Secrets["pw"])
	case "panic":
		panic("boom in Run")
	case "crash":
		// A panic outside Run's goroutine cannot be recovered by the sdk:
		// the process dies.
		go func() { panic("crash boom " + req.Secrets["pw"]) }()
		<-ctx.Done()
	case "hang":
		// Ignores ctx: only a kill ends this.
		time.Sleep(time.Hour)
	case "stop":
		<-ctx.Done()
		res.Message = "stopped: " + context.Cause(ctx).Error()
	case "flood":
		line := []byte(strings.Repeat("x", 64*1024-1) + "\n")
		for n := 0; n < p.Bytes; n += len(line) {
			if _, err := out.Stdout().Write(line); err != nil {
				return res, err
			}
		}
		if p.DoneFile != "" {
			if err := os.WriteFile(p.DoneFile, nil, 0o644); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

func main() { sdk.Serve(step{}) }
