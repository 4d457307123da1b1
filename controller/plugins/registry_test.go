package plugins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

func newService(t *testing.T) *Service {
	t.Helper()
	store := statetest.NewStore(t, Domain())
	s, err := New(Deps{Applier: &statetest.Applier{Store: store, Now: func() time.Time { return time.Unix(1_800_000_000, 0).UTC() }}, Store: store, Logger: slog.New(slog.DiscardHandler),
		Dir: t.TempDir(), NodeID: "n1", Reserved: func(n string) bool { return n == "shell" }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func desc(version string) sdk.Description {
	return sdk.Description{Name: "disk-usage", Version: version, Summary: "Reports disk usage",
		Params:  json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"}}}`),
		Outputs: []sdk.OutputSpec{{Name: "used_percent"}}}
}

func TestAPushIsStoredUnderItsChecksumAndServedBack(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	bin := bytes.Repeat([]byte("\x7fELF plugin "), 10_000)
	p, err := s.Push(ctx, "alice", Push{Description: desc("1.2.0"), OS: "linux", Arch: "amd64"}, bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	if len(p.Binaries) != 1 || p.Binaries[0].SHA256 != hex.EncodeToString(sum[:]) || p.Binaries[0].Size != int64(len(bin)) ||
		p.Binaries[0].UploadedBy != "alice" || p.Binaries[0].Holders[0] != "n1" {
		t.Fatalf("pushed %+v", p)
	}
	_, b, f, err := s.Open(ctx, "disk-usage", "1", "linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := io.ReadAll(f)
	if !bytes.Equal(got, bin) || b.SHA256 != p.Binaries[0].SHA256 {
		t.Fatal("the file served back is not the one pushed")
	}
	entries, _ := os.ReadDir(s.d.Dir)
	if len(entries) != 1 || entries[0].Name() != b.SHA256 {
		t.Fatalf("data dir holds %v, want only the file named by its checksum", entries)
	}
}

func TestBadPushesNameTheFieldAndStoreNothing(t *testing.T) {
	tests := []struct {
		name      string
		push      Push
		bin       []byte
		wantField string
	}{
		{"an upper-case name", Push{Description: sdk.Description{Name: "Disk", Version: "1.0.0"}, OS: "linux", Arch: "amd64"}, []byte("x"), "name"},
		{"a built-in's name", Push{Description: sdk.Description{Name: "shell", Version: "1.0.0"}, OS: "linux", Arch: "amd64"}, []byte("x"), "name"},
		{"a version that is not semantic", Push{Description: sdk.Description{Name: "disk", Version: "v1"}, OS: "linux", Arch: "amd64"}, []byte("x"), "version"},
		{"an unknown OS", Push{Description: desc("1.0.0"), OS: "plan9", Arch: "amd64"}, []byte("x"), "os"},
		{"an arch the OS does not have", Push{Description: desc("1.0.0"), OS: "darwin", Arch: "s390x"}, []byte("x"), "arch"},
		{"a schema that is not an object schema", Push{Description: sdk.Description{Name: "disk", Version: "1.0.0", Params: json.RawMessage(`{"type":"string"}`)}, OS: "linux", Arch: "amd64"}, []byte("x"), "params"},
		{"an empty binary", Push{Description: desc("1.0.0"), OS: "linux", Arch: "amd64"}, nil, "binary"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newService(t)
			_, err := s.Push(context.Background(), "alice", tc.push, bytes.NewReader(tc.bin))
			p, ok := problem.As(err)
			if !ok || !strings.Contains(p.Error(), tc.wantField) {
				t.Fatalf("err = %v, want a problem naming %q", err, tc.wantField)
			}
			if all, _ := s.List(context.Background()); len(all) != 0 {
				t.Fatalf("registered %v", all)
			}
			if entries, _ := os.ReadDir(s.d.Dir); len(entries) != 0 {
				t.Fatalf("left files %v", entries)
			}
		})
	}
}

func TestVersionsCoexistAndResolveByPin(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	for _, v := range []string{"1.0.0", "1.4.2", "1.10.0", "2.0.0-rc.1", "2.0.0", "2.1.0-beta"} {
		if _, err := s.Push(ctx, "alice", Push{Description: desc(v), OS: "linux", Arch: "amd64"}, strings.NewReader("bin "+v)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct{ want, got string }{
		{"", "2.0.0"}, {"1", "1.10.0"}, {"1.4", "1.4.2"}, {"1.4.2", "1.4.2"}, {"2", "2.0.0"}, {"2.0.0-rc.1", "2.0.0-rc.1"}, {"3", ""},
	}
	for _, tc := range tests {
		p, err := s.Resolve(ctx, "disk-usage", tc.want)
		if tc.got == "" {
			if p, ok := problem.As(err); !ok || p.Kind != problem.KindNotFound {
				t.Errorf("resolve %q: %v, want not found", tc.want, err)
			}
			continue
		}
		if err != nil || p.Version != tc.got {
			t.Errorf("resolve %q = %s, %v; want %s", tc.want, p.Version, err, tc.got)
		}
	}
	all, _ := s.List(ctx)
	var order []string
	for _, p := range all {
		order = append(order, p.Version)
	}
	if got := strings.Join(order, " "); got != "1.0.0 1.4.2 1.10.0 2.0.0-rc.1 2.0.0 2.1.0-beta" {
		t.Fatalf("list order %s", got)
	}
}

func TestBuildsOfOneVersionShareItsContract(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	if _, err := s.Push(ctx, "alice", Push{Description: desc("1.0.0"), OS: "linux", Arch: "amd64"}, strings.NewReader("amd64")); err != nil {
		t.Fatal(err)
	}
	p, err := s.Push(ctx, "alice", Push{Description: desc("1.0.0"), OS: "linux", Arch: "arm64"}, strings.NewReader("arm64"))
	if err != nil || len(p.Binaries) != 2 {
		t.Fatalf("second build: %+v, %v", p, err)
	}
	changed := desc("1.0.0")
	changed.Outputs = nil
	_, err = s.Push(ctx, "alice", Push{Description: changed, OS: "darwin", Arch: "arm64"}, strings.NewReader("darwin"))
	if p, ok := problem.As(err); !ok || p.Code != "plugin_description_changed" {
		t.Fatalf("changed contract: %v", err)
	}
	_, _, _, err = s.Open(ctx, "disk-usage", "1.0.0", "windows", "amd64")
	if p, ok := problem.As(err); !ok || p.Code != "plugin_platform_missing" || !strings.Contains(p.Message, "--os windows --arch amd64") {
		t.Fatalf("missing platform: %v", err)
	}
	if _, err := s.Delete(ctx, "disk-usage", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(s.d.Dir); len(entries) != 0 {
		t.Fatalf("delete left files %v", entries)
	}
}

func TestDescribeResolvesBuiltinsThenTheRegistry(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	if _, err := s.Push(ctx, "alice", Push{Description: desc("1.2.0"), OS: "linux", Arch: "amd64"}, strings.NewReader("bin")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		uses, wantName, wantVersion, wantField string
	}{
		{uses: "noop", wantName: "noop", wantVersion: "1.0.0"},
		{uses: "http@1", wantName: "http", wantVersion: "1.0.0"},
		{uses: "http@2", wantField: "uses"},
		{uses: "disk-usage@1", wantName: "disk-usage", wantVersion: "1.2.0"},
		{uses: "disk-usage", wantName: "disk-usage", wantVersion: "1.2.0"},
		{uses: "disk-usage@2", wantField: "uses"},
		{uses: "nope", wantField: "uses"},
	}
	for _, tc := range tests {
		d, err := s.Describe(ctx, tc.uses)
		if tc.wantField != "" {
			if p, ok := problem.As(err); !ok || p.Kind != problem.KindInvalid || !strings.Contains(p.Error(), tc.wantField) {
				t.Errorf("%s: err = %v, want invalid %s", tc.uses, err, tc.wantField)
			}
			continue
		}
		if err != nil || d.Name != tc.wantName || d.Version != tc.wantVersion {
			t.Errorf("%s = %s@%s, %v", tc.uses, d.Name, d.Version, err)
		}
	}
}
