// Package wire is what both ends of a plugin connection must agree on: the
// go-plugin handshake, the name the step is dispensed under and the chunk
// size. (Each side converts the sdk types in the direction it sends: sdk
// for the plugin, plugins/sdk/host for the agent.) It lives under
// plugins/sdk so that the plugin side (sdk.Serve) and the host side
// (plugins/sdk/host) cannot drift apart, and it is internal so that it is
// never part of the author-facing API.
//
// It must never hold policy (where plugins live, how long they stay warm):
// that is the agent's.
package wire

import "github.com/hashicorp/go-plugin"

// ProtocolVersion is the go-plugin protocol version of proto/plugin/v1. A
// change an old plugin or agent cannot ignore adds version 2 beside it in
// VersionedPlugins; it never changes what version 1 means.
const ProtocolVersion = 1

// PluginName is the name the step is dispensed under in the plugin set.
const PluginName = "step"

// MaxChunk bounds one Output message. Larger writes are split; the agent
// reassembles lines.
const MaxChunk = 32 * 1024

// Handshake keeps a plugin binary from being run by hand (go-plugin prints
// an explanation and exits when the cookie is missing) and keeps our agent
// from launching another product's go-plugin binaries by mistake. The
// cookie is not a secret.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "OPSCONDUCTOR_STEP_PLUGIN",
	MagicCookieValue: "c0a2d96e1b7f4f5aa3e1d8b4f6c27e90",
}
