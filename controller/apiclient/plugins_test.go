package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pluginServer reads uploads as the gateway does, a part at a time, and
// records what it got. The first `limited` calls are answered 429
// without reading the body.
type pluginServer struct {
	limited int32
	calls   atomic.Int32
	mu      sync.Mutex
	order   []string
	got     map[string][]byte
	ctype   string
}

func (s *pluginServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if s.calls.Add(1) <= s.limited {
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"code":"rate_limited","message":"slow down"}}`))
		return
	}
	mr, err := r.MultipartReader()
	if err != nil {
		w.WriteHeader(http.StatusUnsupportedMediaType)
		_, _ = w.Write([]byte(`{"error":{"code":"unsupported_media_type","message":"` + err.Error() + `"}}`))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.order, s.got = nil, map[string][]byte{}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(p)
		s.order = append(s.order, p.FormName())
		s.got[p.FormName()] = b
		if p.FormName() == "description" {
			s.ctype = p.Header.Get("Content-Type")
		}
	}
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(`{"name":"disk-usage","version":"1.0.0","summary":"","idempotent":false,"binaries":[{"os":"linux","arch":"amd64","sha256":"ab","size":3}]}`))
}

func TestPushPluginStreamsTheForm(t *testing.T) {
	bin := bytes.Repeat([]byte("\x7fELF"), 100_000)
	file := filepath.Join(t.TempDir(), "plugin")
	if err := os.WriteFile(file, bin, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		limited int32
		open    func(t *testing.T) io.Reader
		wantErr int // HTTP status of the error; 0 means success
	}{
		{"a file is sent whole with its fields first", 0, openFile(file), 0},
		{"a file refused by a rate limit is sent again from its start", 2, openFile(file), 0},
		{"a stream refused by a rate limit cannot be sent again", 1,
			func(*testing.T) io.Reader { return io.MultiReader(bytes.NewReader(bin)) }, http.StatusTooManyRequests},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &pluginServer{limited: tt.limited}
			hs := httptest.NewServer(srv)
			defer hs.Close()
			c, err := New(hs.URL)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var last int64
			p, err := c.PushPlugin(ctx, PushPluginRequest{OS: "linux", Arch: "amd64", Binary: tt.open(t),
				Description: StepDescription{Name: "disk-usage", Version: "1.0.0", Params: json.RawMessage(`{"type":"object"}`)},
				Progress:    func(sent int64) { last = sent }})
			if tt.wantErr != 0 {
				var apiErr *Error
				if !errors.As(err, &apiErr) || apiErr.Status != tt.wantErr {
					t.Fatalf("err = %v, want HTTP %d", err, tt.wantErr)
				}
				return
			}
			if err != nil || p.Ref() != "disk-usage@1.0.0" {
				t.Fatalf("push: %+v, %v", p, err)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if got := strings.Join(srv.order, " "); got != "os arch description binary" {
				t.Errorf("parts in order %q, want os arch description binary", got)
			}
			if !bytes.Equal(srv.got["binary"], bin) || string(srv.got["os"]) != "linux" || srv.ctype != "application/json" ||
				!strings.Contains(string(srv.got["description"]), `"params":{"type":"object"}`) {
				t.Errorf("server got binary %d bytes, os %q, description %s (%s)", len(srv.got["binary"]), srv.got["os"], srv.got["description"], srv.ctype)
			}
			if last != int64(len(bin)) {
				t.Errorf("progress ended at %d, want %d", last, len(bin))
			}
		})
	}
}

func openFile(path string) func(t *testing.T) io.Reader {
	return func(t *testing.T) io.Reader {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
}
