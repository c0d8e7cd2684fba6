//go:build unix

package stream

import (
	"fmt"
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
