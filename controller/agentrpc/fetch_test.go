package agentrpc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/opsconductor/opsconductor/controller/plugins"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
	"github.com/opsconductor/opsconductor/plugins/sdk"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// registryBuilds adapts the real registry, as the server does.
type registryBuilds struct{ reg *plugins.Service }

func (r registryBuilds) OpenBuild(ctx context.Context, name, version, os, arch string) (PluginBuild, io.ReadCloser, error) {
	p, b, f, err := r.reg.Open(ctx, name, version, os, arch)
	if err != nil {
		return PluginBuild{}, nil, err
	}
	return PluginBuild{Name: p.Name, Version: p.Version, SHA256: b.SHA256, Size: b.Size}, f, nil
}

func newPluginRegistry(t *testing.T) *plugins.Service {
	t.Helper()
	store := statetest.NewStore(t, plugins.Domain())
	r, err := plugins.New(plugins.Deps{Applier: &statetest.Applier{Store: store}, Store: store, Logger: slog.New(slog.DiscardHandler),
		Dir: t.TempDir(), NodeID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestFetchPluginStreamsTheResolvedBuildToEnrolledAgentsOnly(t *testing.T) {
	reg := newPluginRegistry(t)
	bin := make([]byte, 3*pluginChunk+12345) // several chunks and a partial one
	for i := range bin {
		bin[i] = byte(i * 7)
	}
	for _, v := range []string{"1.0.0", "1.3.0", "2.0.0"} {
		body := bin
		if v != "1.3.0" {
			body = []byte("other build " + v)
		}
		if _, err := reg.Push(context.Background(), "admin", plugins.Push{Description: sdk.Description{Name: "disk-usage", Version: v},
			OS: "linux", Arch: "amd64"}, bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnvDeps(t, nil, nil, func(d *Deps) { d.Plugins = registryBuilds{reg} })
	_, cert := e.enrolled(t, "web01")

	fetch := func(t *testing.T, name, version, os string) ([]byte, *agentv1.PluginChunk, error) {
		t.Helper()
		stream, err := e.dial(t, cert).FetchPlugin(context.Background(), &agentv1.FetchPluginRequest{Name: name, Version: version, Os: os, Arch: "amd64"})
		if err != nil {
			return nil, nil, err
		}
		var first *agentv1.PluginChunk
		var got []byte
		for {
			c, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return got, first, nil
			}
			if err != nil {
				return nil, nil, err
			}
			if first == nil {
				first = c
			}
			got = append(got, c.GetData()...)
		}
	}

	t.Run("a major pin gets the newest matching build, whole and checksummed", func(t *testing.T) {
		got, first, err := fetch(t, "disk-usage", "1", "linux")
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(bin)
		if !bytes.Equal(got, bin) || first.GetVersion() != "1.3.0" || first.GetSize() != uint64(len(bin)) || first.GetSha256() != hex.EncodeToString(sum[:]) {
			t.Fatalf("got %d bytes, first chunk %v/%d/%s", len(got), first.GetVersion(), first.GetSize(), first.GetSha256())
		}
	})
	refusals := []struct {
		name, plugin, version, os string
		code                      codes.Code
	}{
		{"an unknown plugin is not found", "nope", "1", "linux", codes.NotFound},
		{"a version nobody pushed is not found", "disk-usage", "3", "linux", codes.NotFound},
		{"a platform without a build is not found", "disk-usage", "1", "darwin", codes.NotFound},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := fetch(t, tc.plugin, tc.version, tc.os)
			if status.Code(err) != tc.code {
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
		})
	}
	t.Run("a client without an agent certificate is refused", func(t *testing.T) {
		stream, err := e.dial(t, nil).FetchPlugin(context.Background(), &agentv1.FetchPluginRequest{Name: "disk-usage", Os: "linux", Arch: "amd64"})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("err = %v, want Unauthenticated", err)
		}
	})
}
