//go:build !unix

package stream

import "errors"

// diskFree cannot tell free space here; the store watch then reloads a
// broken store without waiting for space (a reload into a full disk only
// fails again, and is tried again at the next check).
func diskFree(string) (uint64, error) {
	return 0, errors.New("free space unknown on this platform")
}
