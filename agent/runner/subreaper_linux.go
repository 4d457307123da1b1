package runner

import "golang.org/x/sys/unix"

// BecomeSubreaper makes this process the parent of every orphan its
// commands leave behind, so that Run can reap a killed group's processes
// instead of leaving zombies to an init that may never collect them (as in
// many containers). The agent calls it once at start.
func BecomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}
