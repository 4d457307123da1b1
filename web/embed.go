// Package web holds the browser console, built by Vite into web/dist, and
// embeds that build into the controller binary.
//
// A fresh clone has no build: dist then holds only .keep (committed; Vite
// copies it back from public/.keep on every build, since it empties dist
// first), which keeps the go:embed pattern valid so that `go build ./...`
// works without Node.js. The controller then answers "/" with a page that
// says how to build the UI. A build tag was the other choice; it was not
// taken because a binary built without the tag would silently lack the UI.
package web

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// Dist returns the built UI rooted at its index.html, and false when the
// UI has not been built (run `make web` before building the binary).
func Dist() (fs.FS, bool) {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, false
	}
	if _, err := fs.Stat(sub, "index.html"); err != nil {
		return sub, false
	}
	return sub, true
}
