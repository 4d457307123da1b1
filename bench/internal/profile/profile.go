// Package profile starts a load driver's own CPU profile, the same way in
// every driver under bench/.
package profile

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// StartCPU writes a CPU profile to path until the returned stop is
// called; an empty path profiles nothing. prog names the driver in the
// error.
func StartCPU(prog, path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: -cpuprofile: %w", prog, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
