package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/VictoriaMetrics/metrics"
	bolt "go.etcd.io/bbolt"
)

// Import stores a transfer file's records exactly once, however often it is
// run and wherever it is interrupted. The spool remembers, per file ID, how
// many of the file's records it has stored (the import's progress):
//
//   - each batch of records is committed together with the progress after
//     it, as a key in the active segment's meta bucket, in one bbolt
//     transaction: the records and the progress are stored together or not
//     at all;
//   - after the commit the progress is copied to the imports ledger (bucket
//     "imports" in dead.db), which outlives the segment: a segment is removed
//     once drained, and the ledger is what then still remembers the import.
//     Open copies any progress found in a segment to the ledger before it
//     removes drained segments, which covers a crash between the two;
//   - an import starts after the records its file's progress counts: a
//     second run of an interrupted import stores the rest, and a second run
//     of a finished one stores nothing.
//
// The whole file is read and checked before anything is stored, so a
// damaged or incomplete file stores nothing. One limit: a salvage of a
// damaged dead.db (see the package doc) copies dead letters only, not the
// ledger, so a file imported before that, and drained since, could be
// imported again (Open logs and reports every salvage).

var importsBucket = []byte("imports")

// importMarkPrefix starts an import's progress key in a segment's meta
// bucket; the file ID follows.
const importMarkPrefix = "import/"

var importedTotal = metrics.NewCounter(`relay_spool_imported_records_total`)

// ImportResult describes what an Import did.
type ImportResult struct {
	Info TransferInfo
	// Before is how many of the file's records were already stored by an
	// earlier (interrupted or finished) import of the same file.
	Before uint64
	// Stored is how many this import stored.
	Stored uint64
}

// AlreadyImported reports whether the file had been imported in full before:
// this run stored nothing.
func (r ImportResult) AlreadyImported() bool {
	return r.Stored == 0 && r.Before == r.Info.Records
}

// importBatchBytes bounds one import commit's payload.
const importBatchBytes = 8 << 20

// Import stores the records of the transfer file at path in the spool,
// exactly once (see above), oldest first so that they drain in their
// original order. Spool limits apply: at MaxDiskSize it stops with ErrFull,
// and a later run goes on where it stopped. progress, when not nil, is called
// with the number of the file's records stored so far (counting earlier
// runs). check, when not nil, sees every record's data during the
// verification pass; an error from it refuses the whole file.
func (s *Spool) Import(ctx context.Context, path string, check func(data []byte) error, progress func(done uint64)) (ImportResult, error) {
	info, err := VerifyTransfer(path, check)
	if err != nil {
		return ImportResult{}, fmt.Errorf("spool: import: nothing was stored: %w", err)
	}
	res := ImportResult{Info: info}
	if res.Before, err = s.importProgress(info.ID); err != nil {
		return res, err
	}
	if res.Before > info.Records {
		return res, fmt.Errorf("spool: import: the spool recorded %d records stored from file %s, but it holds %d: not the same file", res.Before, info.ID, info.Records)
	}
	if res.Before == info.Records {
		return res, nil
	}
	tr, err := openTransfer(path)
	if err != nil {
		return res, fmt.Errorf("spool: import: %w", err)
	}
	defer tr.close()
	for range res.Before {
		if _, err := tr.next(); err != nil {
			return res, fmt.Errorf("spool: import: skip the records stored before: %w", err)
		}
	}
	done := res.Before
	var batch [][]byte
	var size int
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		upto := done + uint64(len(batch))
		if err := s.importBatch(ctx, info, upto, batch); err != nil {
			return fmt.Errorf("spool: import: %d of %d records of %s are stored (a new import of the same file goes on from there): %w",
				done, info.Records, path, err)
		}
		res.Stored += uint64(len(batch))
		done = upto
		batch, size = batch[:0], 0
		if progress != nil {
			progress(done)
		}
		return s.exportStep("imported")
	}
	for {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("spool: import: %d of %d records stored: %w", done, info.Records, err)
		}
		data, err := tr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("spool: import: %w", err)
		}
		batch = append(batch, data)
		size += len(data)
		if len(batch) >= s.opts.MaxBatch || size >= importBatchBytes {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if err := flush(); err != nil {
		return res, err
	}
	return res, nil
}

func importMarkKey(id FileID) []byte { return append([]byte(importMarkPrefix), id[:]...) }

// progressValue is an import's progress as stored: records stored, then the
// file's record count.
func progressValue(done, total uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, done), total)
}

func parseProgress(v []byte) (done uint64, ok bool) {
	if len(v) != 16 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v[:8]), true
}

// importBatch commits datas with the import's progress upto, then records
// upto in the ledger.
func (s *Spool) importBatch(ctx context.Context, info TransferInfo, upto uint64, datas [][]byte) error {
	val := progressValue(upto, info.Records)
	if err := s.putBatch(ctx, datas, importMarkKey(info.ID), val); err != nil {
		return err
	}
	importedTotal.Add(len(datas))
	if err := s.exportStep("committed"); err != nil {
		return err
	}
	return s.dead.setImport(info.ID[:], val)
}

// putMarks writes the import marks of a commit's puts. Committer only.
func putMarks(tx *bolt.Tx, puts []*op) error {
	for _, o := range puts {
		if o.mark == nil {
			continue
		}
		b, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		if err := b.Put(o.mark, o.markVal); err != nil {
			return err
		}
	}
	return nil
}

// importProgress is how many of file id's records the spool has stored: the
// most that the ledger or any segment says.
func (s *Spool) importProgress(id FileID) (uint64, error) {
	done, err := s.dead.importDone(id[:])
	if err != nil {
		return 0, err
	}
	key := importMarkKey(id)
	s.segMu.RLock()
	defer s.segMu.RUnlock()
	for _, seg := range s.segs {
		err := seg.db.View(func(tx *bolt.Tx) error {
			if m := tx.Bucket(metaBucket); m != nil {
				if n, ok := parseProgress(m.Get(key)); ok {
					done = max(done, n)
				}
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("spool: import: read %s: %w", seg.path, err)
		}
	}
	return done, nil
}

// reconcileImports copies the import progress kept in segments to the
// ledger; load runs it before drained segments are removed.
func (s *Spool) reconcileImports() error {
	for _, seg := range s.segs {
		if err := s.keepImportProgress(seg); err != nil {
			return fmt.Errorf("spool: open: %w", err)
		}
	}
	return nil
}

// keepImportProgress copies the import progress in seg's meta bucket to the
// ledger; removeSegment runs it first, so that a removed segment takes no
// progress with it.
func (s *Spool) keepImportProgress(seg *segment) error {
	prefix := []byte(importMarkPrefix)
	var marks [][2][]byte
	err := seg.db.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(metaBucket)
		if m == nil {
			return nil
		}
		c := m.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			marks = append(marks, [2][]byte{bytes.Clone(k[len(prefix):]), bytes.Clone(v)})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read import progress in %s: %w", seg.path, err)
	}
	for _, m := range marks {
		if err := s.dead.setImport(m[0], m[1]); err != nil {
			return err
		}
	}
	return nil
}

// setImport raises the ledger's progress for a file to val (never lowers it).
func (d *deadStore) setImport(id, val []byte) error {
	newDone, ok := parseProgress(val)
	if !ok {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.db == nil {
		return ErrClosed
	}
	err := d.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(importsBucket)
		if err != nil {
			return err
		}
		if old, ok := parseProgress(b.Get(id)); ok && old >= newDone {
			return nil
		}
		return b.Put(id, val)
	})
	if err != nil {
		return fmt.Errorf("record import progress in %s: %w", d.path, err)
	}
	return nil
}

// importDone is the ledger's progress for a file.
func (d *deadStore) importDone(id []byte) (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.db == nil {
		return 0, ErrClosed
	}
	var done uint64
	err := d.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(importsBucket); b != nil {
			done, _ = parseProgress(b.Get(id))
		}
		return nil
	})
	return done, err
}
