//go:build !linux

package spool

// madviseDontNeed is a no-op where MADV_DONTNEED's semantics on a shared
// file map are not the ones relied on (pages.go): the pages stay mapped
// until the segment is closed, as before.
func madviseDontNeed(addr, n uintptr) error { return nil }
