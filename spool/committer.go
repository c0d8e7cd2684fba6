package spool

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	bolt "go.etcd.io/bbolt"
)

type opKind uint8

const (
	opPut opKind = iota
	opDelete
)

// op states for puts: the committer moves queued → taken when it puts the
// records into a transaction; Put moves queued → canceled when its ctx ends
// first. Whoever wins decides whether the record can still be stored.
const (
	opQueued int32 = iota
	opTaken
	opCanceled
)

// op is one request to the committer.
type op struct {
	kind  opKind
	datas [][]byte // put
	cost  int64    // put: accounted bytes (reserved as pending)
	size  int64    // put: payload bytes
	ids   []uint64 // delete: by ID, from the segment its range falls in
	keys  []segKey // delete: by raw key, from the segment it was read in
	state atomic.Int32
	done  chan error // buffered 1: the committer never blocks on a reply

	// mark, for an import's put: a meta key and value written in the same
	// transaction as the records (see import.go).
	mark, markVal []byte
}

// segKey names a record by where it was read and what it holds, for
// records whose key may be damaged (see quarantine).
type segKey struct {
	seg *segment
	key []byte
	val []byte
}

var (
	commitsTotal       = metrics.NewCounter(`relay_spool_commits_total`)
	commitErrors       = metrics.NewCounter(`relay_spool_commit_errors_total`)
	batchSize          = metrics.NewPrometheusHistogramExt(`relay_spool_commit_batch_records`, metrics.ExponentialBuckets(1, 4, 7))
	commitSeconds      = metrics.NewPrometheusHistogram(`relay_spool_commit_duration_seconds`)
	segmentsCreated    = metrics.NewCounter(`relay_spool_segments_created_total`)
	segmentsRemoved    = metrics.NewCounter(`relay_spool_segments_removed_total`)
	housekeepingErrors = metrics.NewCounter(`relay_spool_housekeeping_errors_total`)
)

// maxLinger bounds how long the committer waits for more callers before a
// commit (see run).
const maxLinger = 2 * time.Millisecond

// run is the committer: it takes whatever is queued (up to MaxBatch records or
// maxBatchBytes) and commits it in one transaction. While one commit waits
// for its fsync the next callers queue up, so the batch size follows the
// load. One refinement: the callers answered by a commit come back a few
// microseconds after the next commit has started, which would split N
// callers into alternating batches of about N/2. So when fewer ops are queued
// than the last commit served, the committer waits for more — at most a
// quarter of the last commit's duration (and maxLinger): with fsync that is a
// small price for twice the batch; without fsync, or with a single caller,
// it is (next to) nothing. It exits once ops is closed and drained;
// everything handed to it gets an answer.
func (s *Spool) run() {
	defer close(s.committed)
	batch := make([]*op, 0, s.opts.MaxBatch)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	lastOps, lastDur := 0, time.Duration(0)
	for {
		o, ok := <-s.ops
		if !ok {
			return
		}
		batch = append(batch[:0], o)
		recs, size := len(o.datas), o.size
		open := true
		full := func() bool { return recs >= s.opts.MaxBatch || size >= maxBatchBytes }
		add := func(o *op) {
			batch = append(batch, o)
			recs += len(o.datas)
			size += o.size
		}
	fill:
		for !full() {
			select {
			case o, ok := <-s.ops:
				if !ok {
					open = false
					break fill
				}
				add(o)
			default:
				break fill
			}
		}
		if wait := min(lastDur/4, maxLinger); open && !full() && len(batch) < lastOps && wait > 0 {
			linger.Reset(wait)
		wait:
			for !full() && len(batch) < lastOps {
				select {
				case o, ok := <-s.ops:
					if !ok {
						open = false
						break wait
					}
					add(o)
				case <-linger.C:
					break wait
				}
			}
			linger.Stop()
		}
		start := time.Now()
		s.commit(batch)
		lastOps, lastDur = len(batch), time.Since(start)
		clear(batch)
		if !open {
			return
		}
	}
}

// deleted is what a delete transaction removed from one segment.
type deleted struct {
	records int64
	bytes   int64
}

// commit writes one batch: the puts and the deletes that fall in the active
// segment in one transaction, deletes in older segments in one transaction
// per segment. Then it answers every op and does the housekeeping (rotate,
// remove drained segments).
func (s *Spool) commit(batch []*op) {
	if s.beforeCommit != nil {
		s.beforeCommit()
	}
	active := s.segs[len(s.segs)-1]
	var puts, dels []*op
	nrec := 0
	var cost, size int64
	for _, o := range batch {
		switch o.kind {
		case opPut:
			if o.state.CompareAndSwap(opQueued, opTaken) {
				puts = append(puts, o)
				nrec += len(o.datas)
				cost += o.cost
				size += o.size
			}
		case opDelete:
			dels = append(dels, o)
		}
	}
	// The keys to delete per segment, and the segments each delete touches.
	bySeg := make(map[*segment][][]byte)
	damagedBySeg := make(map[*segment][]segKey)
	delSegs := make([][]*segment, len(dels))
	for i, o := range dels {
		for _, id := range o.ids {
			if seg := s.segmentFor(id); seg != nil {
				bySeg[seg] = append(bySeg[seg], encodeKey(nil, id))
				delSegs[i] = append(delSegs[i], seg)
			}
		}
		for _, sk := range o.keys {
			// The segment may have been removed since the key was read.
			if slices.Contains(s.segs, sk.seg) {
				damagedBySeg[sk.seg] = append(damagedBySeg[sk.seg], sk)
				delSegs[i] = append(delSegs[i], sk.seg)
			}
		}
	}

	start := time.Now()
	firstID := s.nextID
	// IDs are never reused, even when this commit fails: a failed fsync may
	// still have left the records on disk.
	s.nextID += uint64(nrec)
	segErr := make(map[*segment]error)
	var delBytes int64 // payload bytes deleted, for touchedMapped
	// Damaged records first, each segment in its own transaction, so that a
	// failure here does not fail the puts.
	damagedErr := make(map[*segment]error)
	for seg, keys := range damagedBySeg {
		var d deleted
		err := seg.db.Update(func(tx *bolt.Tx) error {
			var err error
			if d, err = deleteDamaged(tx, keys, func(v []byte, why string) error {
				return s.buryDamaged(seg, v, why)
			}); err != nil {
				return err
			}
			return putCount(tx, seg.records.Load()-d.records)
		})
		if err != nil {
			damagedErr[seg] = err
		} else {
			s.applyDeleted(seg, d)
			delBytes += d.bytes
		}
	}
	wroteActive := false
	if nrec > 0 || len(bySeg[active]) > 0 {
		wroteActive = true
		var d deleted
		err := active.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(recordsBucket)
			if err != nil {
				return err
			}
			// Keys only ever grow, so full pages waste nothing on later inserts.
			b.FillPercent = 1.0
			if nrec > 0 {
				// bbolt keeps references to keys and values until the commit:
				// one arena per batch instead of an allocation per record.
				keys := make([]byte, 0, 8*nrec)
				vals := make([]byte, 0, int(size)+recordHeaderLen*nrec)
				id := firstID
				for _, o := range puts {
					for _, data := range o.datas {
						k0, v0 := len(keys), len(vals)
						keys = encodeKey(keys, id)
						vals = appendRecord(vals, data)
						if err := b.Put(keys[k0:], vals[v0:]); err != nil {
							return fmt.Errorf("put record %d: %w", id, err)
						}
						id++
					}
				}
				if err := putNext(tx, s.nextID); err != nil {
					return err
				}
				if err := putMarks(tx, puts); err != nil {
					return err
				}
			}
			if d, err = deleteKeys(b, bySeg[active]); err != nil {
				return err
			}
			return putCount(tx, active.records.Load()+int64(nrec)-d.records)
		})
		if err != nil {
			segErr[active] = err
		} else {
			s.applyDeleted(active, d)
			delBytes += d.bytes
		}
		delete(bySeg, active)
	}
	for seg, keys := range bySeg {
		var d deleted
		err := seg.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(recordsBucket)
			if b == nil {
				return nil
			}
			var err error
			if d, err = deleteKeys(b, keys); err != nil {
				return err
			}
			return putCount(tx, seg.records.Load()-d.records)
		})
		if err != nil {
			segErr[seg] = err
		} else {
			s.applyDeleted(seg, d)
			delBytes += d.bytes
		}
	}
	if wroteActive || len(segErr) > 0 || len(damagedErr) > 0 || len(dels) > 0 {
		commitsTotal.Inc()
		s.commits.Add(1)
		batchSize.Update(float64(nrec))
		commitSeconds.UpdateDuration(start)
	}

	// Answer the puts.
	putErr := segErr[active]
	s.acctMu.Lock()
	s.pending -= cost
	if putErr == nil {
		s.used += cost
	}
	s.acctMu.Unlock()
	if putErr == nil && nrec > 0 {
		active.records.Add(int64(nrec))
		active.bytes.Add(size)
		s.records.Add(int64(nrec))
		s.bytes.Add(size)
		s.puts.Add(uint64(nrec))
		putsTotal.Add(nrec)
		s.ages.note(firstID, s.now())
		s.trimAges()
	}
	if putErr != nil && nrec > 0 {
		commitErrors.Inc()
		putErr = fmt.Errorf("spool: put: commit to %s: %w", active.path, putErr)
	}
	// Work out the deletes' answers before housekeeping removes segments: an
	// op fails if any segment it touched failed.
	delErrs := make([]error, len(dels))
	for i := range dels {
		for _, seg := range delSegs[i] {
			if err := cmp.Or(segErr[seg], damagedErr[seg]); err != nil {
				delErrs[i] = fmt.Errorf("spool: delete from %s: %w", seg.path, err)
				commitErrors.Inc()
				break
			}
		}
	}
	// Housekeeping before the answers, so that a caller sees its effect in
	// Stats; it costs a file creation or removal once per segment.
	s.housekeep(wroteActive)
	for _, o := range puts {
		o.done <- putErr
	}
	for i, o := range dels {
		o.done <- delErrs[i]
	}
	// Canceled puts got their answer from Put itself.
	// The pages this commit wrote and the leaves its deletes walked are mapped
	// (pages.go); after the answers, so that no caller waits for the drop.
	s.touchedMapped(size + delBytes)
}

// deleteKeys removes keys from b, returning what was actually there.
func deleteKeys(b *bolt.Bucket, keys [][]byte) (deleted, error) {
	var d deleted
	for _, k := range keys {
		v := b.Get(k)
		if v == nil {
			continue
		}
		n := int64(max(len(v)-recordHeaderLen, 0))
		if err := b.Delete(k); err != nil {
			return d, fmt.Errorf("delete record %x: %w", k, err)
		}
		d.records++
		d.bytes += n
	}
	return d, nil
}

// deleteDamaged removes damaged records, each matched by its raw key and
// value. bbolt finds a key by binary search, which misses a key that damage
// moved out of order; then the records bucket is rebuilt without the damaged
// records, in this one transaction (it costs memory and writes in proportion
// to the segment, once, for damage that is rare). bury keeps a record the
// rebuild cannot (see below) as a dead letter.
func deleteDamaged(tx *bolt.Tx, keys []segKey, bury func(v []byte, why string) error) (deleted, error) {
	var d deleted
	b := tx.Bucket(recordsBucket)
	if b == nil {
		return d, nil
	}
	rebuild := false
	for _, sk := range keys {
		v := b.Get(sk.key)
		if v == nil || !bytes.Equal(v, sk.val) {
			rebuild = true
			continue
		}
		if err := b.Delete(sk.key); err != nil {
			return d, fmt.Errorf("delete damaged record %x: %w", sk.key, err)
		}
		d.records++
		d.bytes += int64(max(len(sk.val)-recordHeaderLen, 0))
	}
	if !rebuild {
		return d, nil
	}
	type kv struct{ k, v []byte }
	var keep []kv
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if slices.ContainsFunc(keys, func(sk segKey) bool { return bytes.Equal(k, sk.key) && bytes.Equal(v, sk.val) }) {
			d.records++
			d.bytes += int64(max(len(v)-recordHeaderLen, 0))
			continue
		}
		keep = append(keep, kv{slices.Clone(k), slices.Clone(v)})
	}
	slices.SortStableFunc(keep, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	// Damage can also make two records share a key; a rebuild would keep
	// only one of them. Identical copies are one record; different ones stop
	// the rebuild (and roll it back) rather than lose either.
	keep = slices.CompactFunc(keep, func(a, b kv) bool { return bytes.Equal(a.k, b.k) && bytes.Equal(a.v, b.v) })
	for i := 0; i+1 < len(keep); {
		if !bytes.Equal(keep[i].k, keep[i+1].k) {
			i++
			continue
		}
		// The later one in file order stays (damage more likely raised an
		// earlier key); the other goes to the dead letters before this
		// transaction commits. Should the commit fail, it is there twice.
		if err := bury(keep[i].v, fmt.Sprintf("its key %x was also another record's after damage on disk", keep[i].k)); err != nil {
			return d, fmt.Errorf("rebuild without damaged records: set aside a second record with key %x: %w", keep[i].k, err)
		}
		d.records++
		d.bytes += int64(max(len(keep[i].v)-recordHeaderLen, 0))
		keep = slices.Delete(keep, i, i+1)
	}
	if err := tx.DeleteBucket(recordsBucket); err != nil {
		return d, fmt.Errorf("rebuild without damaged records: %w", err)
	}
	nb, err := tx.CreateBucket(recordsBucket)
	if err != nil {
		return d, fmt.Errorf("rebuild without damaged records: %w", err)
	}
	nb.FillPercent = 1.0
	for _, e := range keep {
		if err := nb.Put(e.k, e.v); err != nil {
			return d, fmt.Errorf("rebuild without damaged records: put %x: %w", e.k, err)
		}
	}
	return d, nil
}

func (s *Spool) applyDeleted(seg *segment, d deleted) {
	if d.records == 0 {
		return
	}
	seg.records.Add(-d.records)
	seg.bytes.Add(-d.bytes)
	s.records.Add(-d.records)
	s.bytes.Add(-d.bytes)
	deletesTotal.Add(int(d.records))
	s.acctMu.Lock()
	s.used -= d.bytes + d.records*recordOverhead
	s.fullSticky = false
	s.acctMu.Unlock()
}

// housekeep rotates the active segment when it has grown past SegmentSize,
// removes drained older segments, and replaces a drained, grown active
// segment with a fresh one: the only ways a bbolt spool gives disk back.
// Failures are logged and retried after the next commit; they cost disk,
// never records.
func (s *Spool) housekeep(wroteActive bool) {
	active := s.segs[len(s.segs)-1]
	if wroteActive {
		if err := active.db.View(func(tx *bolt.Tx) error {
			active.used = tx.Size()
			return nil
		}); err != nil {
			s.housekeepingFailed("read the active segment's size", active.path, err)
		}
	}
	if active.used >= s.opts.SegmentSize {
		if _, err := s.addSegment(); err != nil {
			s.housekeepingFailed("start a new segment", s.dir, err)
		}
	}
	for _, seg := range slices.Clone(s.segs[:len(s.segs)-1]) {
		if seg.records.Load() == 0 {
			s.removeSegment(seg)
		}
	}
	active = s.segs[len(s.segs)-1]
	if s.records.Load() == 0 && active.records.Load() == 0 && active.used >= resetThreshold {
		if _, err := s.addSegment(); err != nil {
			s.housekeepingFailed("replace the drained active segment", s.dir, err)
			return
		}
		s.removeSegment(active)
	}
}

func (s *Spool) housekeepingFailed(what, path string, err error) {
	housekeepingErrors.Inc()
	s.log.Error("spool: housekeeping failed; disk is not reclaimed until it succeeds", "action", what, "path", path, "err", err)
}

// addSegment creates a new active segment whose floor is the next ID.
// Committer (or load) only.
func (s *Spool) addSegment() (*segment, error) {
	floor := s.nextID
	if n := len(s.segs); n > 0 && floor <= s.segs[n-1].floor {
		// Nothing was written since the last segment started; skip an ID so
		// that names stay unique.
		floor = s.segs[n-1].floor + 1
	}
	s.nextID = floor
	seg, err := s.createSegment(floor)
	if err != nil {
		return nil, err
	}
	s.segMu.Lock()
	s.segs = append(s.segs, seg)
	s.segMu.Unlock()
	segmentsCreated.Inc()
	return seg, nil
}

// removeSegment closes and deletes a segment with no records.
func (s *Spool) removeSegment(seg *segment) {
	if err := s.keepImportProgress(seg); err != nil {
		s.housekeepingFailed("keep the import progress of a drained segment", seg.path, err)
		return
	}
	s.segMu.Lock()
	s.segs = slices.DeleteFunc(s.segs, func(x *segment) bool { return x == seg })
	s.segMu.Unlock()
	// Readers took segMu for reading, so none is inside seg now.
	if err := seg.db.Close(); err != nil {
		s.housekeepingFailed("close a drained segment", seg.path, err)
	}
	if err := os.Remove(seg.path); err != nil {
		s.housekeepingFailed("remove a drained segment", seg.path, err)
		return
	}
	if err := s.opts.syncDir(s.dir); err != nil {
		s.housekeepingFailed("sync the spool directory", s.dir, err)
	}
	segmentsRemoved.Inc()
}
