//go:build !unix

package stream

import (
	"errors"
	"os"
)

// Without mmap the record is appended with write(2) (seqRecord.writeLocked).
func mapRecord(*os.File, int) ([]byte, error) { return nil, errors.ErrUnsupported }

func unmapRecord([]byte) error { return nil }
