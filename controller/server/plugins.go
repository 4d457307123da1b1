package server

import (
	"context"
	"io"
	"strings"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/plugins"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/plugins/builtin"
	"github.com/opsconductor/opsconductor/plugins/sdk"
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

// builtinStep reports names the agent's built-in steps take, which no
// plugin may register.
func builtinStep(name string) bool {
	_, ok := builtin.Lookup(name)
	return ok || name == agentrpc.KindCommand
}

// stepCatalog describes a step reference from the built-ins or the
// registry, for agentrpc's early parameter check.
type stepCatalog struct{ reg *plugins.Service }

func (c stepCatalog) Describe(ctx context.Context, uses string) (sdk.Description, error) {
	name, version, _ := strings.Cut(uses, "@")
	if s, ok := builtin.Lookup(name); ok {
		d := s.Describe()
		if version != "" && version != d.Version && !strings.HasPrefix(d.Version, version+".") {
			return sdk.Description{}, problem.Invalid("uses", "the built-in step %s is version %s, which does not satisfy %q", name, d.Version, version)
		}
		return d, nil
	}
	p, err := c.reg.Resolve(ctx, name, version)
	if err != nil {
		if problem.Is(err, problem.KindNotFound) {
			return sdk.Description{}, problem.Invalid("uses", "%q is neither a built-in step nor a registered plugin; push it with `opsconductor plugin push`", uses)
		}
		return sdk.Description{}, err
	}
	return p.Description, nil
}
