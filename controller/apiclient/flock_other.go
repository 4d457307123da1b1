//go:build !unix

package apiclient

import "os"

// lockFile is a no-op where flock(2) does not exist: concurrent refreshes
// of one login may then make one of the processes log in again.
func lockFile(*os.File) error { return nil }

func unlockFile(*os.File) error { return nil }
