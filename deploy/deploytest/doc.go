// Package deploytest checks the deployment files under deploy/ (systemd
// units, Dockerfiles, the compose file) against the real binaries and the
// parsers their tools use, without a Docker engine or a running systemd:
// units pass `systemd-analyze verify`, Dockerfiles parse and lint with
// BuildKit's own frontend, the compose file loads with compose-go, and
// every command line in them names subcommands and flags that the built
// binaries have.
//
// It is a module of its own so that those parsers' dependencies stay out
// of the main module. It imports nothing from the main module: it runs the
// binaries that `make build` produced (OPSCONDUCTOR_BIN and
// OPSCONDUCTOR_AGENT_BIN, default bin/ at the repository root).
package deploytest
