package server

import (
	"context"
	"io"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/plugins"
)

// pluginBuilds serves the registry's binaries to agentrpc's FetchPlugin.
type pluginBuilds struct{ reg *plugins.Service }

func (p pluginBuilds) OpenBuild(ctx context.Context, name, version, os, arch string) (agentrpc.PluginBuild, io.ReadCloser, error) {
	pl, b, f, err := p.reg.Open(ctx, name, version, os, arch)
	if err != nil {
		return agentrpc.PluginBuild{}, nil, err
	}
	return agentrpc.PluginBuild{Name: pl.Name, Version: pl.Version, SHA256: b.SHA256, Size: b.Size}, f, nil
}
