package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

func TestNoop(t *testing.T) {
	tests := []struct {
		name    string
		params  obj
		lines   int
		want    sdk.Result
		wantErr error
		cancel  bool
	}{
		{name: "no parameters succeed quietly", params: obj{}},
		{name: "it prints the lines asked for", params: obj{"lines": 3}, lines: 3},
		{name: "it sets outputs and changed", params: obj{"outputs": obj{"a": "1"}, "changed": true},
			want: sdk.Result{Changed: true, Outputs: map[string]string{"a": "1"}}},
		{name: "it fails when asked", params: obj{"fail": true},
			want: sdk.Result{Status: sdk.StatusFailed, Message: "noop asked to fail"}},
		{name: "a sleep ends early on cancel", params: obj{"sleep": "1h"}, cancel: true, wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			res, rec, err := run(t, ctx, Noop{}, tt.params)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if res.Status != tt.want.Status || res.Changed != tt.want.Changed || res.Message != tt.want.Message ||
				!maps.Equal(res.Outputs, tt.want.Outputs) {
				t.Errorf("result = %+v, want %+v", res, tt.want)
			}
			if n := strings.Count(rec.stdout(), "\n"); n != tt.lines {
				t.Errorf("printed %d lines, want %d", n, tt.lines)
			}
		})
	}
	start := time.Now()
	if _, _, err := run(t, context.Background(), Noop{}, obj{"sleep": "20ms"}); err != nil || time.Since(start) < 20*time.Millisecond {
		t.Errorf("sleep 20ms: err %v after %s", err, time.Since(start))
	}
}

type discard struct{}

func (discard) Stdout() io.Writer { return io.Discard }
func (discard) Stderr() io.Writer { return io.Discard }

// BenchmarkNoopRun measures a built-in step's own overhead per attempt:
// parameter validation against the cached schema, decoding, and Run.
func BenchmarkNoopRun(b *testing.B) {
	for _, bc := range []struct {
		name   string
		params string
	}{
		{"empty", `{}`},
		{"outputs", `{"outputs":{"version":"1.2.3","host":"web-1"},"changed":true}`},
		{"10 lines", `{"lines":10}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := sdk.Request{AttemptID: "a1", Params: json.RawMessage(bc.params)}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := (Noop{}).Run(ctx, req, discard{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
