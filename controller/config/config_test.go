package config

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

type testSettings struct {
	dataDir string
	join    []string
	expect  int
	hold    time.Duration
	rate    float64
}

func testFlags(s *testSettings) *pflag.FlagSet {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.String("config", "", "")
	fs.StringVar(&s.dataDir, "data-dir", "/default", "")
	fs.StringSliceVar(&s.join, "retry-join", nil, "")
	fs.IntVar(&s.expect, "bootstrap-expect", 0, "")
	fs.DurationVar(&s.hold, "apply-hold", 7*time.Second, "")
	fs.Float64Var(&s.rate, "rate-read", 100, "")
	return fs
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLayerPrecedence(t *testing.T) {
	file := writeFile(t, "data_dir: /from-file\nretry-join:\n  - a:1\n  - b:2\nbootstrap-expect: 3\napply-hold: 2s\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want testSettings
	}{
		{
			name: "the config file fills what nothing else sets",
			want: testSettings{dataDir: "/from-file", join: []string{"a:1", "b:2"}, expect: 3, hold: 2 * time.Second, rate: 100},
		},
		{
			name: "environment variables beat the file",
			env:  map[string]string{"OPSCONDUCTOR_DATA_DIR": "/from-env", "OPSCONDUCTOR_RETRY_JOIN": "c:3, d:4"},
			want: testSettings{dataDir: "/from-env", join: []string{"c:3", "d:4"}, expect: 3, hold: 2 * time.Second, rate: 100},
		},
		{
			name: "flags beat the environment and the file",
			args: []string{"--data-dir", "/from-flag", "--retry-join", "e:5", "--rate-read", "inf"},
			env:  map[string]string{"OPSCONDUCTOR_DATA_DIR": "/from-env"},
			want: testSettings{dataDir: "/from-flag", join: []string{"e:5"}, expect: 3, hold: 2 * time.Second, rate: math.Inf(1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got testSettings
			fs := testFlags(&got)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			env := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			if err := Layer(fs, file, env, "config"); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLayerErrorsNameTheProblem(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  map[string]string
		want string
	}{
		{"an unknown key", "data-dir: /x\ndata-dri: /y\n", nil, `line 2: unknown setting "data-dri"`},
		{"a key given twice", "data-dir: /x\ndata_dir: /y\n", nil, `setting "data_dir" given twice`},
		{"a bad duration", "apply-hold: soon\n", nil, `"apply-hold"`},
		{"a nested mapping", "data-dir:\n  a: b\n", nil, "must be a plain value or a list"},
		{"a list for a single value", "data-dir: [a, b]\n", nil, "takes one value"},
		{"not a mapping", "- a\n- b\n", nil, "expected a mapping"},
		{"invalid YAML", "data-dir: [\n", nil, "not valid YAML"},
		{"two documents", "data-dir: /a\n---\ndata-dir: /b\n", nil, "more than one YAML document"},
		{"the config key itself", "config: other.yaml\n", nil, `unknown setting "config"`},
		{"a bad environment value", "", map[string]string{"OPSCONDUCTOR_BOOTSTRAP_EXPECT": "three"}, "OPSCONDUCTOR_BOOTSTRAP_EXPECT"},
	}
	for _, tt := range tests {
		t.Run("it reports "+tt.name, func(t *testing.T) {
			var s testSettings
			fs := testFlags(&s)
			env := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			err := Layer(fs, writeFile(t, tt.file), env, "config")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	t.Run("it reports a missing file by flag", func(t *testing.T) {
		var s testSettings
		err := Layer(testFlags(&s), "/no/such/file.yaml", func(string) (string, bool) { return "", false })
		if err == nil || !strings.HasPrefix(err.Error(), "--config") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("an empty file sets nothing", func(t *testing.T) {
		var s testSettings
		if err := Layer(testFlags(&s), writeFile(t, ""), func(string) (string, bool) { return "", false }); err != nil {
			t.Fatal(err)
		}
	})
}

func validServer() Server {
	return Server{
		DataDir: "/d", HTTPAddr: "127.0.0.1:3000", AgentAddr: ":3001", RaftAddr: "127.0.0.1:3002",
		LogLevel: "info", LogFormat: "json", MaxBodyBytes: 1 << 20, ApplyHold: 7 * time.Second,
		RateRead: 1, RateWrite: 1, RateOperator: 1,
	}
}

func TestValidateNamesEveryBadFlag(t *testing.T) {
	if err := validServer().Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	tests := []struct {
		name string
		mut  func(*Server)
		want []string
	}{
		{"a missing data dir", func(s *Server) { s.DataDir = "" }, []string{"--data-dir"}},
		{"a bad node ID", func(s *Server) { s.NodeID = "a b" }, []string{"--node-id"}},
		{"bad addresses", func(s *Server) { s.HTTPAddr = "3000"; s.RaftAddr = "x:99999" }, []string{"--http-addr", "--raft-addr"}},
		{"an even bootstrap-expect", func(s *Server) { s.BootstrapExpect = 2 }, []string{"--bootstrap-expect"}},
		{"bootstrap-expect without retry-join", func(s *Server) { s.BootstrapExpect = 3 }, []string{"--retry-join"}},
		{"half a CA", func(s *Server) { s.TLSCACert = "ca.pem" }, []string{"--tls-ca-cert"}},
		{"bad log settings", func(s *Server) { s.LogLevel = "loud"; s.LogFormat = "xml" }, []string{"--log-level", "--log-format"}},
		{"a zero rate", func(s *Server) { s.RateWrite = 0 }, []string{"--rate-write"}},
		{"a bad CORS origin", func(s *Server) { s.CORSOrigins = []string{"example.com"} }, []string{"--cors-origin"}},
		{"an advertise with a port", func(s *Server) { s.Advertise = "host:1" }, []string{"--advertise"}},
		{"a cluster on the embedded history store", func(s *Server) { s.BootstrapExpect, s.RetryJoin = 3, []string{"a:1", "b:2"} }, []string{"--history: a cluster of several controllers"}},
		{"a history that is no store", func(s *Server) { s.History = "mysql://u:secret@h/db" }, []string{"--history", "mysql://u:xxxxx@h/db"}},
		{"an external URL without a scheme", func(s *Server) { s.ExternalURL = "ops.example.com" }, []string{"--external-url", "https://"}},
		{"an external URL with a query", func(s *Server) { s.ExternalURL = "https://ops.example.com/?a=1" }, []string{"--external-url"}},
	}
	for _, tt := range tests {
		t.Run("it names "+tt.name, func(t *testing.T) {
			s := validServer()
			tt.mut(&s)
			err := s.Validate()
			if err == nil {
				t.Fatal("invalid config accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}

func FuzzParseFile(f *testing.F) {
	f.Add([]byte("data-dir: /x\nretry-join: [a:1, b:2]\n"))
	f.Add([]byte("data_dir: ~\n"))
	f.Add([]byte("&a [*a]"))
	f.Add([]byte("a: &x {b: *x}\n"))
	f.Add([]byte("---\n...\n"))
	f.Add([]byte("? [a]\n: b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := ParseFile(data, func(k string) bool { return k == "data-dir" || k == "retry-join" })
		if err != nil {
			return
		}
		for k := range out {
			if k != "data-dir" && k != "retry-join" {
				t.Fatalf("parser returned a key it should have refused: %q", k)
			}
		}
	})
}
