//go:build unix

package apiclient

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive flock(2) on f, waiting for other holders.
// The kernel drops it when the process dies, so a crashed CLI never leaves
// the credentials locked.
func lockFile(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
}

func unlockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
