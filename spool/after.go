package spool

import "math"

// OldestAfter returns up to n records with IDs above after, lowest IDs
// first: Oldest is OldestAfter(0, n). It lets a reader walk past the head
// of the spool — the drainer skips the records of a rate-limited key and
// reads on, instead of re-reading the same head batch. Like Oldest it
// leases nothing, and a record whose checksum fails is moved to the dead
// letters on the way and not returned.
func (s *Spool) OldestAfter(after uint64, n int) ([]Record, error) {
	if n <= 0 || after == math.MaxUint64 {
		return nil, nil
	}
	for {
		recs, bad, read, err := s.readOldest(after, n)
		// After readOldest let go of segMu: dropping the pages takes it.
		s.touchedMapped(read)
		if err != nil {
			return nil, err
		}
		if len(bad) == 0 {
			return recs, nil
		}
		// Each round removes at least one bad record, so this ends.
		if err := s.quarantine(bad); err != nil {
			return nil, err
		}
	}
}
