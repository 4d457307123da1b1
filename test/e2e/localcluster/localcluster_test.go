package localcluster

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

func TestKillTime(t *testing.T) {
	for _, tc := range []struct {
		name string
		out  string
		want time.Time
		ok   bool
	}{
		{
			name: "reads the microsecond timestamp bash 5 prints",
			out:  "cluster.sh: sent SIGKILL to node2 (pid 4242) at 1764242345.123456\n",
			want: time.Unix(1764242345, 123456000), ok: true,
		},
		{
			name: "accepts a comma as the locale's decimal separator",
			out:  "cluster.sh: sent SIGKILL to node1 (pid 7) at 1764242345,000001\n",
			want: time.Unix(1764242345, 1000), ok: true,
		},
		{
			name: "reports nothing when an older bash printed no time",
			out:  "cluster.sh: sent SIGKILL to node3 (pid 99)\n",
		},
		{
			name: "reports nothing when the node was not running",
			out:  "cluster.sh: node3 is not running\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := killTime(tc.out)
			if ok != tc.ok || !got.Equal(tc.want) {
				t.Errorf("killTime(%q) = %v, %v; want %v, %v", tc.out, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestNodeNumber(t *testing.T) {
	for id, want := range map[string]int{"node1": 1, "node3": 3, "node4": 0, "node0": 0, "": 0, "1": 0, "nodeX": 0} {
		got, ok := NodeNumber(id)
		if got != want || ok != (want != 0) {
			t.Errorf("NodeNumber(%q) = %d, %v; want %d", id, got, ok, want)
		}
	}
}

func TestFreeBasePortSkipsBusyPorts(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	base, err := FreeBasePort(rand.New(rand.NewPCG(seed, 0)))
	if err != nil {
		t.Fatal(err)
	}
	// Hold one of the chosen ports; the same seed must then not yield the
	// same range.
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+12)))
	if err != nil {
		t.Fatalf("port %d was reported free: %v", base+12, err)
	}
	defer l.Close()
	again, err := FreeBasePort(rand.New(rand.NewPCG(seed, 0)))
	if err != nil {
		t.Fatal(err)
	}
	if again == base {
		t.Errorf("FreeBasePort returned %d although %d is in use", again, base+12)
	}
}

func TestPollReportsWhatItWaitedFor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	calls := 0
	err := Poll(ctx, time.Millisecond, func(context.Context) error {
		calls++
		return errors.New("node2 applied index 7, leader node1 9")
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if want := "node2 applied index 7, leader node1 9"; !strings.Contains(err.Error(), want) {
		t.Errorf("err = %q, want it to say %q", err, want)
	}
	if calls < 2 {
		t.Errorf("cond called %d times, want it polled", calls)
	}
}

func TestCheckNumbered(t *testing.T) {
	chunk := func(seq uint64, data string) apiclient.RunLogLine { return apiclient.RunLogLine{Seq: seq, Data: data} }
	tests := []struct {
		name    string
		chunks  []apiclient.RunLogLine
		want    int
		wantErr string
	}{
		{"lines split across chunks count once", []apiclient.RunLogLine{chunk(1, "line 1\nli"), chunk(2, "ne 2\n")}, 2, ""},
		{"no output is zero lines", nil, 0, ""},
		{"a repeated chunk is caught", []apiclient.RunLogLine{chunk(1, "line 1\n"), chunk(1, "line 1\n")}, 0, "seq 1"},
		{"a gap in the chunks is caught", []apiclient.RunLogLine{chunk(1, "line 1\n"), chunk(3, "line 2\n")}, 0, "seq 3"},
		{"a repeated line is caught", []apiclient.RunLogLine{chunk(1, "line 1\nline 1\n")}, 1, `line 2 is "line 1\n"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := CheckNumbered(tt.chunks)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || n != tt.want {
				t.Fatalf("= %d, %v; want %d", n, err, tt.want)
			}
		})
	}
}
