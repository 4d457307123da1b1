package graph

import "github.com/opsconductor/opsconductor/controller/state"

// Domain returns the graph's table and commands for the state registry.
func Domain() state.Domain {
	return state.Domain{
		Name:     "assets.graph",
		Tables:   []state.Table{edgesTable()},
		Commands: map[string]state.Handler{},
	}
}
