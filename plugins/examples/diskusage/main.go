// Command diskusage is an example OpsConductor step plugin: it reports how
// full the file system holding a path is, sets the figures as outputs, and
// fails the step when usage passes a threshold. It imports nothing of
// OpsConductor but plugins/sdk; docs/plugins.md walks through it.
//
// Build it with `make plugins` (into bin/plugins/) and push it with
// `opsconductor plugin push bin/plugins/diskusage --os linux --arch amd64`.
package main

import "github.com/opsconductor/opsconductor/plugins/sdk"

func main() { sdk.Serve(step{statfs: statfs}) }
