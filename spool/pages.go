package spool

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
	bolt "go.etcd.io/bbolt"
)

// Mapped pages of the segment files.
//
// bbolt reads a segment through a read-only shared memory map of the file
// (writes go through pwrite). Every page a reader touches — a drain pass
// reading records, a delete's transaction walking leaves, a commit's
// B-tree path — stays mapped in this process until the map is dropped,
// which for a segment happens only when it is closed (removed after its
// last record was deleted) or remapped (grown). Those pages are clean page
// cache that the kernel could reclaim under pressure, but they count in
// the relay's VmRSS: a drain of large envelopes kept ~160 MB of them
// mapped (README, "Memory through a long outage"). So the spool advises
// the kernel to drop them (MADV_DONTNEED, Linux) after every
// dropMappedEvery bytes read or written through the maps.
//
// Why this is safe: MADV_DONTNEED on a shared, read-only file mapping only
// removes this process's page-table entries for the range. The data stays
// in the page cache and in the file; the next access faults the same bytes
// back in (a minor fault when still cached, a read from disk otherwise).
// Nothing is dirty in the map (bbolt never writes through it), so nothing
// can be lost, and a pointer into the map that outlives the advice still
// reads the same bytes.
//
// Why inside a read transaction: the map's address (bolt.DB.Info().Data)
// is stable only while bbolt's mmaplock is held, which every read
// transaction holds for reading; a write transaction that grows the file
// remaps it under the lock for writing. Outside a transaction a remap could
// unmap the range and hand the address to something else — the Go heap —
// and MADV_DONTNEED on anonymous memory zeroes it. tx.Size() (the high-
// water mark) is never beyond the map.
//
// Cost: one madvise per segment per dropMappedEvery bytes (a page-table
// walk of the segment's mapped range), and the page faults of the pages
// read again afterwards — at the default 8 MiB, a dozen per hundred MiB
// drained.

// dropMappedEvery is how many bytes read or written through the segment
// maps trigger a drop of every segment's mapped pages.
// 8 MiB, not 16, since the drain runs ~3× faster (270 MB/s of 200 KB
// envelopes): memory.sh's drain peaked at 183–199 MB of VmRSS at 16 MiB and
// at 171–182 MB at 8 MiB, the same anonymous memory; BenchmarkDrain saw no
// difference in cost within its noise.
const dropMappedEvery = 8 << 20

var (
	mappedDrops        = metrics.NewCounter(`relay_spool_mapped_drops_total`)
	mappedDroppedBytes = metrics.NewCounter(`relay_spool_mapped_dropped_bytes_total`)
	mappedDropErrors   = metrics.NewCounter(`relay_spool_mapped_drop_errors_total`)
)

// touchedMapped records n bytes read or written through the segment maps
// and, once dropEvery bytes have gathered, drops every segment's mapped
// pages. It must not be called with segMu held (dropMapped takes it).
func (s *Spool) touchedMapped(n int64) {
	if n <= 0 || s.dropEvery <= 0 {
		return
	}
	if s.mapped.Add(n) < s.dropEvery {
		return
	}
	// One caller wins the reset; concurrent callers go on without waiting.
	if cur := s.mapped.Load(); cur < s.dropEvery || !s.mapped.CompareAndSwap(cur, 0) {
		return
	}
	s.dropMapped()
}

// dropMapped advises the kernel to drop this process's mapped pages of
// every open segment. Failures are counted and logged: they cost RSS,
// never data.
func (s *Spool) dropMapped() {
	s.segMu.RLock()
	defer s.segMu.RUnlock()
	for _, seg := range s.segs {
		err := seg.db.View(func(tx *bolt.Tx) error {
			s.dropSegPages(seg, tx)
			return nil
		})
		if err != nil {
			s.dropFailed(seg, err)
		}
	}
	mappedDrops.Inc()
}

// dropSegPages drops seg's mapped pages from inside tx, a transaction of
// seg's database (see above).
func (s *Spool) dropSegPages(seg *segment, tx *bolt.Tx) {
	size := tx.Size()
	if err := dropPages(seg.db, size); err != nil {
		s.dropFailed(seg, err)
		return
	}
	mappedDroppedBytes.Add(int(size))
}

func (s *Spool) dropFailed(seg *segment, err error) {
	mappedDropErrors.Inc()
	s.log.Debug("spool: could not drop the mapped pages of a segment", "segment", seg.path, "err", err)
}

// dropPages drops db's mapped pages, the first size bytes of its map.
// It must run inside a transaction of db (see above).
func dropPages(db *bolt.DB, size int64) error {
	if size <= 0 {
		return nil
	}
	if err := madviseDontNeed(db.Info().Data, uintptr(size)); err != nil {
		return fmt.Errorf("madvise %d bytes: %w", size, err)
	}
	return nil
}
