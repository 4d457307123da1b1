// Package buildinfo reports what binary this is. The version, commit and
// build date are stamped by the Makefile with -ldflags "-X
// …buildinfo.version=…" (and commit, date); a plain `go build` falls back
// to the module's VCS information.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Set at link time only; nothing writes them at run time.
var (
	version = ""
	// commit is the full revision the binary was built from.
	commit = ""
	// date is when the source was committed (RFC 3339, UTC): `make
	// release` stamps the commit's time rather than the clock's, so that
	// building the same commit twice gives the same bytes.
	date = ""
)

// Version returns the release version, or a development description.
func Version() string {
	if version != "" {
		return version
	}
	v := vcs()
	if v.revision == "" {
		return "dev"
	}
	rev := v.revision[:min(len(v.revision), 12)]
	if v.modified {
		rev += "-dirty"
	}
	return "dev-" + rev
}

// Commit returns the revision the binary was built from, or "" when
// neither the linker nor the Go toolchain recorded one.
func Commit() string {
	if commit != "" {
		return commit
	}
	return vcs().revision
}

// Date returns when the built revision was committed (RFC 3339), or "".
func Date() string {
	if date != "" {
		return date
	}
	return vcs().time
}

// String is the one-line description `version` commands print, e.g.
// "opsconductor v1.4.0 (commit 3f2a…, 2026-11-28T02:00:00Z; go1.26.8 linux/amd64)".
func String(program string) string {
	var b strings.Builder
	b.WriteString(program + " " + Version() + " (")
	if c := Commit(); c != "" {
		b.WriteString("commit " + c[:min(len(c), 12)])
		if d := Date(); d != "" {
			b.WriteString(", " + d)
		}
		b.WriteString("; ")
	}
	b.WriteString(runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")")
	return b.String()
}

type vcsInfo struct {
	revision, time string
	modified       bool
}

// vcs reads what the Go toolchain recorded about the source tree (only
// when it was built inside a Git checkout without -buildvcs=false).
func vcs() vcsInfo {
	var v vcsInfo
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.revision = s.Value
		case "vcs.time":
			v.time = s.Value
		case "vcs.modified":
			v.modified = s.Value == "true"
		}
	}
	return v
}
