//go:build unix

package stream

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mapRecord maps the first size bytes of f shared and writable: a store
// into the mapping is in the page cache at once, as a write(2) would put
// it, so it outlives a kill of this process.
func mapRecord(f *os.File, size int) ([]byte, error) {
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", f.Name(), err)
	}
	return m, nil
}

func unmapRecord(m []byte) error {
	if err := unix.Munmap(m); err != nil {
		return fmt.Errorf("munmap: %w", err)
	}
	return nil
}
