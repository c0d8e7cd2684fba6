//go:build unix

package stream

import (
	"fmt"
	"io/fs"
	"syscall"
)

// diskFree is the space an unprivileged writer can still use on the
// filesystem holding dir.
func diskFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

// fileID is the file's inode number: a block nats-server rewrote and renamed
// into place has a new one under the same name.
func fileID(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
