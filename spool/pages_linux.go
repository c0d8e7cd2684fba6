//go:build linux

package spool

import "golang.org/x/sys/unix"

// madviseDontNeed drops this process's page-table entries for [addr,
// addr+n). The address stays a plain uintptr (never converted to a Go
// pointer): it is the start of bbolt's page-aligned file map, valid while
// the caller's bbolt transaction holds the mmaplock.
func madviseDontNeed(addr, n uintptr) error {
	if _, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, n, unix.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}
