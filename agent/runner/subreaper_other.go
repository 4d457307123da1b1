//go:build !linux

package runner

// BecomeSubreaper is a no-op where the kernel has no child subreaper.
func BecomeSubreaper() error { return nil }
