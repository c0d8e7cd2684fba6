//go:build !unix

package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// lockDir without flock: the bbolt file locks (taken with the same timeout)
// still keep a second process off every segment.
func lockDir(dir string, _ time.Duration) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: lock: %w", err)
	}
	return f, nil
}

func unlockDir(f *os.File) error {
	if f == nil {
		return nil
	}
	return f.Close()
}
