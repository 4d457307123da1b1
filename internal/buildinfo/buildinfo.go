// Package buildinfo reports what binary this is. The version is stamped by
// the Makefile with -ldflags "-X …buildinfo.version=…"; a plain `go build`
// falls back to the module's VCS information.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// version is set at link time only; nothing writes it at run time.
var version = ""

// Version returns the release version, or a development description.
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return "dev-" + rev
		}
	}
	return "dev"
}

// String is the one-line description `version` commands print.
func String(program string) string {
	return program + " " + Version() + " (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")"
}
