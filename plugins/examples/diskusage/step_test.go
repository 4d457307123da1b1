package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/plugins/sdk"
	"github.com/opsconductor/opsconductor/plugins/sdk/sdktest"
)

// fixed reports the same figures for every path.
func fixed(u usage) func(string) (usage, error) {
	return func(string) (usage, error) { return u, nil }
}

const gib = 1 << 30

func TestDiskUsage(t *testing.T) {
	// 100 GiB, 75 used, 20 available to users (5 reserved): 78.9% full.
	u := usage{Total: 100 * gib, Used: 75 * gib, Avail: 20 * gib}
	tests := []struct {
		name       string
		params     string
		wantStatus sdk.Status
		wantStdout []string
		wantStderr []string
		wantErr    string
	}{
		{name: "it reports the figures as df does", params: `{"path":"/srv"}`,
			wantStdout: []string{"/srv: 75.0 GiB used of 100.0 GiB, 20.0 GiB available (78.9%)"}},
		{name: "the path defaults to the root", params: `{}`,
			wantStdout: []string{"/: 75.0 GiB used of 100.0 GiB, 20.0 GiB available (78.9%)"}},
		{name: "at the warning threshold it warns on stderr and succeeds", params: `{"warn_percent":75}`,
			wantStderr: []string{"warning: / is 78.9% full (warn at 75%)"}},
		{name: "at the failure threshold it fails", params: `{"warn_percent":50,"fail_percent":78.9}`, wantStatus: sdk.StatusFailed},
		{name: "below both thresholds it is quiet", params: `{"warn_percent":90,"fail_percent":95}`},
		{name: "a threshold over 100 is refused by the schema", params: `{"fail_percent":101}`, wantErr: "params.fail_percent"},
		{name: "an unknown parameter is refused by the schema", params: `{"pth":"/"}`, wantErr: "params"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := sdktest.Run(context.Background(), step{statfs: fixed(u)}, sdktest.Input{Params: tt.params})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Result.Status != tt.wantStatus {
				t.Errorf("status %v (%s), want %v", o.Result.Status, o.Result.Message, tt.wantStatus)
			}
			if o.Result.Outputs["used_percent"] != "78.9" || o.Result.Outputs["avail_bytes"] != "21474836480" {
				t.Errorf("outputs = %v", o.Result.Outputs)
			}
			if tt.wantStdout != nil && !slices.Equal(o.Stdout, tt.wantStdout) {
				t.Errorf("stdout = %q, want %q", o.Stdout, tt.wantStdout)
			}
			if !slices.Equal(o.Stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want %q", o.Stderr, tt.wantStderr)
			}
		})
	}
}

func TestDiskUsageOfARealDirectory(t *testing.T) {
	o, err := sdktest.Run(context.Background(), step{statfs: statfs}, sdktest.Input{Params: map[string]any{"path": t.TempDir()}})
	if err != nil {
		t.Skipf("statfs is not available here: %v", err)
	}
	if o.Result.Outputs["total_bytes"] == "0" || len(o.Stdout) != 1 {
		t.Errorf("outcome = %+v", o)
	}
}

func TestStatfsErrorFailsTheAttempt(t *testing.T) {
	broken := func(string) (usage, error) { return usage{}, errors.New("no such file or directory") }
	_, err := sdktest.Run(context.Background(), step{statfs: broken}, sdktest.Input{Params: `{"path":"/nope"}`})
	if err == nil || !strings.Contains(err.Error(), "statfs /nope") {
		t.Fatalf("error %v", err)
	}
}

func TestHuman(t *testing.T) {
	for _, tt := range []struct {
		in   uint64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536 << 10, "1.5 MiB"}, {5 * gib, "5.0 GiB"}} {
		if got := human(tt.in); got != tt.want {
			t.Errorf("human(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
