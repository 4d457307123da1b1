//go:build unix

package main

import "golang.org/x/sys/unix"

func statfs(path string) (usage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return usage{}, err
	}
	// The field types differ by OS (int64 Bsize on Linux, uint32 on the
	// BSDs); the conversions make one expression serve them all.
	bs := uint64(st.Bsize)
	return usage{
		Total: uint64(st.Blocks) * bs,
		Used:  (uint64(st.Blocks) - uint64(st.Bfree)) * bs,
		Avail: uint64(st.Bavail) * bs,
	}, nil
}
