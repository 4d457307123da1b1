package hclogslog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestLinesReachSlogWithLevelsArgsAndNames(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		log   func(l hclog.Logger)
		want  []string
		never []string
	}{
		{
			name: "levels below the threshold are dropped and Fmt arguments are formatted",
			opts: Options{Level: hclog.Info},
			log: func(l hclog.Logger) {
				l.Debug("quiet")
				l.With("peer", "n2").Warn("slow", "lag", hclog.Fmt("%d ms", 42))
			},
			want:  []string{"level=WARN", "msg=slow", "peer=n2", `lag="42 ms"`},
			never: []string{"quiet"},
		},
		{
			name:  "a named logger adds its name to the component",
			opts:  Options{Level: hclog.Info, Component: "raft"},
			log:   func(l hclog.Logger) { l.Named("snapshot").Info("saved") },
			want:  []string{"msg=saved", "component=raft.snapshot"},
			never: nil,
		},
		{
			name:  "silenced named loggers say nothing, the root still does",
			opts:  Options{Level: hclog.Info, Component: "go-plugin", SilenceNamed: true},
			log:   func(l hclog.Logger) { l.Named("stderr").Info("a secret line"); l.Info("plugin started") },
			want:  []string{"msg=\"plugin started\"", "component=go-plugin"},
			never: []string{"secret"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tc.log(New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), tc.opts))
			out := buf.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, n := range tc.never {
				if strings.Contains(out, n) {
					t.Errorf("output has %q:\n%s", n, out)
				}
			}
		})
	}
}
