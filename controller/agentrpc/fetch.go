package agentrpc

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opsconductor/opsconductor/controller/problem"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// PluginBuild is one registered plugin binary as FetchPlugin serves it.
type PluginBuild struct {
	Name, Version string
	SHA256        string
	Size          int64
}

// PluginSource opens registered plugin binaries (the plugin registry).
type PluginSource interface {
	OpenBuild(ctx context.Context, name, version, os, arch string) (PluginBuild, io.ReadCloser, error)
}

// pluginChunk is the size of FetchPlugin's data messages: well under
// gRPC's 4 MiB message limit, large enough that a 20 MB binary is a few
// dozen sends.
const pluginChunk = 256 << 10

var errNoPlugins = problem.Unavailable("no_plugin_registry", "this controller has no plugin registry")

// FetchPlugin streams a registered plugin's binary to an authenticated
// agent: the first message carries the size, the sha256 and the exact
// version the request resolved to, which the agent checks the bytes
// against before it installs (or ever executes) them.
func (r *rpcServer) FetchPlugin(req *agentv1.FetchPluginRequest, stream agentv1.AgentService_FetchPluginServer) error {
	s := r.svc
	if s.plugins == nil {
		return grpcError(errNoPlugins)
	}
	ctx := stream.Context()
	b, rc, err := s.plugins.OpenBuild(ctx, req.GetName(), req.GetVersion(), req.GetOs(), req.GetArch())
	if err != nil {
		return grpcError(err)
	}
	defer rc.Close()
	log := s.log.With("agent_id", peerAgentID(ctx), "plugin", b.Name+"@"+b.Version, "os", req.GetOs(), "arch", req.GetArch())
	first := &agentv1.PluginChunk{Size: uint64(b.Size), Sha256: b.SHA256, Version: b.Version}
	buf := make([]byte, pluginChunk)
	var sent int64
	for {
		n, rerr := io.ReadFull(rc, buf)
		if n > 0 || first != nil {
			m := first
			if m == nil {
				m = &agentv1.PluginChunk{}
			}
			first = nil
			m.Data = buf[:n]
			if err := stream.Send(m); err != nil {
				return err
			}
			sent += int64(n)
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			log.Error("plugin binary unreadable", "error", rerr)
			return grpcError(fmt.Errorf("read plugin: %w", rerr))
		}
	}
	if sent != b.Size {
		log.Error("plugin binary changed size on disk", "want", b.Size, "sent", sent)
	}
	log.Info("sent a plugin binary", "bytes", sent)
	return nil
}
