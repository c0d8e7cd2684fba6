package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	bolt "go.etcd.io/bbolt"
)

// ErrFull is returned (wrapped) by Put when the record would take the spool
// past Options.MaxDiskSize. Nothing was stored; the caller keeps the record
// (for the worker: it does not ack the JetStream message).
var ErrFull = errors.New("spool is full")

// ErrDeadFull is returned (wrapped) by Bury when the dead letters are at
// Options.MaxBuried records or Options.MaxBuriedBytes. Nothing was buried and
// nothing was evicted: a dead letter is an envelope some SDK got a 200 for,
// and only an operator may delete it. The caller keeps the message (for the
// worker: it stops taking from the stream, as for a full spool).
var ErrDeadFull = errors.New("spool dead letters are full")

// ErrClosed is returned (wrapped) by every method called after Close.
var ErrClosed = errors.New("spool is closed")

// Defaults applied by Open to zero Options fields.
const (
	DefaultMaxBatch       = 128
	DefaultSegmentSize    = 64 << 20
	DefaultLockTimeout    = time.Second
	DefaultMaxBuried      = 100000
	DefaultMaxBuriedBytes = 100 * 1000 * 1000
)

// recordOverhead is what a record costs beyond its payload in the MaxDiskSize
// accounting: the 8-byte key, the 5-byte value header and bbolt's 16-byte
// leaf element. It keeps a flood of tiny records from passing the cap unseen.
const recordOverhead = 8 + recordHeaderLen + 16

// maxBatchBytes bounds one group commit's payload so that a burst of large
// envelopes does not build one huge transaction (bbolt keeps a transaction's
// dirty pages in memory until commit).
const maxBatchBytes = 32 << 20

// resetThreshold: when the spool is fully drained and the active segment's
// used size has grown past this, it is replaced by a fresh file so that its
// disk space goes back to the system. Below it the file is kept to avoid
// churning files when the spool trickles around empty.
const resetThreshold = 1 << 20

// Options configure a Spool. Zero values take the defaults above.
type Options struct {
	// MaxDiskSize caps the live records (payload + recordOverhead each, committed
	// and pending); Put returns ErrFull beyond it. 0 means no cap.
	MaxDiskSize int64
	// MaxBatch is the most records one group commit holds (default 128).
	MaxBatch int
	// NoSync skips the fsync of each commit: records survive the death of the
	// process but not a power loss or kernel crash.
	NoSync bool
	// SegmentSize is the used size of the active segment file after which
	// writes move to a new file (default 64 MiB). Smaller segments give disk
	// back sooner while draining; larger ones mean fewer files.
	SegmentSize int64
	// LockTimeout bounds the wait for the directory and file locks (default 1s).
	LockTimeout time.Duration
	// MaxBuried and MaxBuriedBytes cap the dead letters: Bury fails with
	// ErrDeadFull once either is reached; nothing is ever evicted.
	// Defaults 100000 and 100 MB (the config's spool.max_dead_count and
	// spool.max_dead_size).
	MaxBuried      int
	MaxBuriedBytes int64
	// Logger receives recovery reports and housekeeping errors; nil means
	// slog.Default(). Payloads are never logged.
	Logger *slog.Logger

	// syncDir fsyncs a directory (tests record the calls); nil means
	// syncDir.
	syncDir func(dir string) error
}

func (o Options) withDefaults() Options {
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.SegmentSize <= 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.MaxBuried <= 0 {
		o.MaxBuried = DefaultMaxBuried
	}
	if o.MaxBuriedBytes <= 0 {
		o.MaxBuriedBytes = DefaultMaxBuriedBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.syncDir == nil {
		o.syncDir = syncDir
	}
	return o
}

// Record is one stored record. Reason and BuriedAt are set only for dead
// letters (Buried); Data is a copy the caller owns.
type Record struct {
	ID       uint64
	Data     []byte
	Reason   string
	BuriedAt time.Time
}

// Stats is a snapshot of the spool's size.
type Stats struct {
	Records     int64 // live records
	Bytes       int64 // live payload bytes
	Pending     int64 // accounted bytes of puts waiting for their commit
	DiskBytes   int64 // sizes of the spool's files (segments and dead letters)
	Segments    int
	Buried      int64 // dead letters kept
	BuriedBytes int64 // their payload bytes
	Commits     uint64
	Puts        uint64 // records committed by this Spool since Open
}

// Spool is a store of records in bbolt segment files; see the package doc.
// Its methods are safe for concurrent use.
type Spool struct {
	dir    string
	opts   Options
	log    *slog.Logger
	lock   *os.File
	report Report

	// ops feeds the committer goroutine, the only writer of segment files and
	// of the segment list. closeMu makes sending on ops and closing it
	// mutually exclusive: senders hold it for reading.
	ops       chan *op
	closeMu   sync.RWMutex
	closed    bool
	committed chan struct{} // closed when the committer has exited

	// segMu guards segs for readers (Oldest, Stats); the committer changes
	// segs only while holding it for writing. segs is ordered by floor; the
	// last one is active. nil after Close.
	segMu sync.RWMutex
	segs  []*segment

	// nextID is the next record ID; committer only (and load before it starts).
	nextID uint64

	// acctMu guards the MaxDiskSize accounting.
	acctMu  sync.Mutex
	used    int64 // accounted bytes of committed records
	pending int64 // accounted bytes of puts not yet committed
	// fullSticky is set when a Put is rejected and cleared when a delete frees
	// space, so that Full keeps reporting true while a worker would only see
	// rejections.
	fullSticky bool

	records atomic.Int64
	bytes   atomic.Int64
	commits atomic.Uint64
	puts    atomic.Uint64

	// mapped counts the bytes read or written through the segment maps since
	// their pages were last dropped; dropEvery is the threshold (pages.go;
	// tests change it before use, 0 disables the drops).
	mapped    atomic.Int64
	dropEvery int64

	dead *deadStore

	// ages dates commits for relay_spool_oldest_age_seconds; set is this
	// spool's gauges (metrics.go).
	ages ageMarks
	set  *metrics.Set
	// now is the clock of the age marks; tests replace it before the first Put.
	now func() time.Time

	// beforeCommit, when set (by tests, before the first op is submitted),
	// runs at the start of every commit on the committer goroutine.
	beforeCommit func()
	// afterUnburyPut, when set (by tests), runs in Unbury between the commit
	// of the live records and the delete of the dead letters.
	afterUnburyPut func()
	// exportHook, when set (by tests), runs between the steps of Export and
	// Import; an error stops it there, as a crash would.
	exportHook func(step string) error
}

// segment is one bbolt file of records with IDs in [floor, next segment's floor).
type segment struct {
	floor   uint64
	path    string
	db      *bolt.DB
	records atomic.Int64
	bytes   atomic.Int64 // payload bytes
	// used is the file's high-water mark after the last commit; committer only.
	used int64
}

var (
	putsTotal      = metrics.NewCounter(`relay_spool_puts_total`)
	deletesTotal   = metrics.NewCounter(`relay_spool_deletes_total`)
	rejectedFull   = metrics.NewCounter(`relay_spool_put_rejected_total{reason="full"}`)
	rejectedCancel = metrics.NewCounter(`relay_spool_put_rejected_total{reason="canceled"}`)
)

// Open opens (creating if needed) the spool directory at path, checks and if
// necessary recovers its files (see the package doc and Report), and starts
// the committer. It never waits more than about Options.LockTimeout for a
// lock held elsewhere.
func Open(path string, opts Options) (*Spool, error) {
	if path == "" {
		return nil, errors.New("spool: open: empty path")
	}
	opts = opts.withDefaults()
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		return nil, fmt.Errorf("spool: open: %s is a file, but the spool is a directory of segment files; move the file away or choose another spool.path", path)
	}
	if err := mkdirAllSynced(path, opts.syncDir); err != nil {
		return nil, fmt.Errorf("spool: open: create %s: %w", path, err)
	}
	lock, err := lockDir(path, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	s := &Spool{
		dir:       path,
		opts:      opts,
		log:       opts.Logger.With("spool", path),
		lock:      lock,
		ops:       make(chan *op, opts.MaxBatch),
		committed: make(chan struct{}),
		now:       time.Now,
		dropEvery: dropMappedEvery,
	}
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, errors.Join(err, unlockDir(lock))
	}
	s.markLoaded()
	s.set = s.newMetricsSet()
	go s.run()
	if err := s.resumeExport(); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

// Report describes what Open found and did about damaged or foreign files.
func (s *Spool) Report() Report { return s.report }

// Put stores data and returns once the group commit holding it is durable.
// It returns ErrFull (wrapped) when the spool is at MaxDiskSize and the ctx
// error when ctx ends first; in every error case the caller must treat the
// record as not stored (see the package doc: a ctx error may hide a commit,
// which costs a duplicate, never a loss).
func (s *Spool) Put(ctx context.Context, data []byte) error {
	return s.PutBatch(ctx, [][]byte{data})
}

// PutBatch stores all of datas atomically in one transaction (all or none),
// with the same guarantees as Put. The records get consecutive IDs in order.
func (s *Spool) PutBatch(ctx context.Context, datas [][]byte) error {
	return s.putBatch(ctx, datas, nil, nil)
}

// putBatch is PutBatch; a non-nil mark is written to the active segment's
// meta bucket in the records' transaction.
func (s *Spool) putBatch(ctx context.Context, datas [][]byte, mark, markVal []byte) error {
	if len(datas) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		rejectedCancel.Inc()
		return fmt.Errorf("spool: put: not stored: %w", err)
	}
	var cost, size int64
	for _, d := range datas {
		cost += recordCost(len(d))
		size += int64(len(d))
	}
	if err := s.reserve(cost); err != nil {
		return err
	}
	o := &op{kind: opPut, datas: datas, cost: cost, size: size, mark: mark, markVal: markVal, done: make(chan error, 1)}
	if err := s.submit(ctx, o); err != nil {
		s.unreserve(cost)
		return fmt.Errorf("spool: put: not stored: %w", err)
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		if o.state.CompareAndSwap(opQueued, opCanceled) {
			// The committer will skip it: certainly not stored.
			s.unreserve(cost)
			rejectedCancel.Inc()
			return fmt.Errorf("spool: put: not stored: %w", ctx.Err())
		}
		return fmt.Errorf("spool: put: gave up waiting for the commit, the record may or may not be stored: %w", ctx.Err())
	}
}

func recordCost(n int) int64 { return int64(n) + recordOverhead }

// reserve accounts cost as pending, or returns ErrFull.
func (s *Spool) reserve(cost int64) error {
	s.acctMu.Lock()
	defer s.acctMu.Unlock()
	if max := s.opts.MaxDiskSize; max > 0 && s.used+s.pending+cost > max {
		s.fullSticky = true
		rejectedFull.Inc()
		return fmt.Errorf("spool: put %d bytes (live %d, pending %d, max_disk_size %d): %w",
			cost, s.used, s.pending, max, ErrFull)
	}
	s.pending += cost
	return nil
}

func (s *Spool) unreserve(cost int64) {
	s.acctMu.Lock()
	s.pending -= cost
	s.acctMu.Unlock()
}

// Full reports whether the spool is at its MaxDiskSize: the live and pending
// records fill it, or a Put was rejected and no record has been deleted since.
// A worker should stop taking new messages while it is true.
func (s *Spool) Full() bool {
	s.acctMu.Lock()
	defer s.acctMu.Unlock()
	max := s.opts.MaxDiskSize
	return max > 0 && (s.fullSticky || s.used+s.pending >= max)
}

// submit hands o to the committer, or fails when the spool is closed or ctx
// ends first.
func (s *Spool) submit(ctx context.Context, o *op) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.ops <- o:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Delete removes the records with these IDs, waiting for the commit. IDs that
// are not in the spool are ignored. A delete lost to a crash only means the
// record is drained again (a duplicate), so callers need not retry hard.
func (s *Spool) Delete(ids ...uint64) error {
	if len(ids) == 0 {
		return nil
	}
	o := &op{kind: opDelete, ids: ids, done: make(chan error, 1)}
	if err := s.submit(context.Background(), o); err != nil {
		return fmt.Errorf("spool: delete: %w", err)
	}
	return <-o.done
}

// Oldest returns up to n records, lowest IDs first. It does not lease them:
// calling it again before Delete returns the same records, so one drainer
// should own the drain. A record whose checksum fails is moved to the dead
// letters on the way (see the package doc) and not returned.
func (s *Spool) Oldest(n int) ([]Record, error) {
	return s.OldestAfter(0, n)
}

// badRecord is a record Oldest cannot hand out: its value failed its
// checksum, or its key is not an ID its segment may hold. It is identified by
// its segment and raw key, not by ID: a damaged key's ID would point Delete at
// another segment (and another record), or at none.
type badRecord struct {
	seg *segment
	key []byte
	val []byte // the value as stored
	why string
}

// readOldest reads up to n records with IDs above after, lowest first, and
// how many bytes it read through the segment maps and left mapped. A read
// longer than dropEvery drops the segment's mapped pages as it goes (the
// records are copies by then): the first read of a drain pass takes 32
// records whatever their size, 29 MiB of 900 KB envelopes, which would
// otherwise all be mapped at once.
func (s *Spool) readOldest(after uint64, n int) (recs []Record, bad []badRecord, read int64, err error) {
	s.segMu.RLock()
	defer s.segMu.RUnlock()
	if s.segs == nil {
		return nil, nil, 0, fmt.Errorf("spool: oldest: %w", ErrClosed)
	}
	for i, seg := range s.segs {
		if len(recs) >= n || len(bad) >= n {
			break
		}
		if seg.records.Load() == 0 {
			continue
		}
		// IDs the segment may hold: from its floor to below the next
		// segment's floor and below the next ID it recorded.
		ceil := uint64(math.MaxUint64)
		if i+1 < len(s.segs) {
			ceil = s.segs[i+1].floor - 1
		}
		err := seg.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(recordsBucket)
			if b == nil {
				return nil
			}
			if m := tx.Bucket(metaBucket); m != nil {
				if v := m.Get(nextKey); len(v) == 8 && binary.BigEndian.Uint64(v) > seg.floor {
					ceil = min(ceil, binary.BigEndian.Uint64(v)-1)
				}
			}
			c := b.Cursor()
			var prev []byte
			for k, v := c.Seek(encodeKey(nil, after+1)); k != nil && len(recs) < n && len(bad) < n; k, v = c.Next() {
				var why string
				id := decodeKey(k)
				data, ok := decodeRecord(v)
				read += int64(len(k) + len(v))
				switch {
				case len(k) != 8 || id < seg.floor || id > ceil:
					why = fmt.Sprintf("its key %x is not an ID this segment holds (%d to %d): damaged on disk", k, seg.floor, ceil)
				case prev != nil && bytes.Compare(k, prev) <= 0:
					// Out of order: bbolt's lookups would not find it to delete.
					why = fmt.Sprintf("its key %x is out of order after %x: damaged on disk", k, prev)
				case !ok:
					why = fmt.Sprintf("record %d failed its checksum (damaged on disk)", id)
				}
				prev = k
				if why != "" {
					bad = append(bad, badRecord{seg: seg, key: slices.Clone(k), val: slices.Clone(v), why: why})
					continue
				}
				recs = append(recs, Record{ID: id, Data: slices.Clone(data)})
				if s.dropEvery > 0 && read >= s.dropEvery {
					// Inside the read transaction, as dropping needs. The
					// cursor and prev still point into the range: reading
					// them faults the same bytes back in (pages.go).
					s.dropSegPages(seg, tx)
					mappedDrops.Inc()
					read = 0
				}
			}
			return nil
		})
		if err != nil {
			return nil, nil, read, fmt.Errorf("spool: oldest: read %s: %w", seg.path, err)
		}
	}
	return recs, bad, read, nil
}

var corruptRecords = metrics.NewCounter(`relay_spool_corrupt_records_total`)

// quarantine moves damaged records to the dead letters, so they are kept for
// an operator but never forwarded as garbage, then deletes each by its raw
// key from the segment it was read from. Should that delete fail, the next
// read buries the record again: a duplicate dead letter, never a loss.
func (s *Spool) quarantine(bad []badRecord) error {
	keys := make([]segKey, 0, len(bad))
	for _, b := range bad {
		if err := s.buryDamaged(b.seg, b.val, b.why); err != nil {
			return fmt.Errorf("spool: oldest: set aside damaged record %x of %s: %w", b.key, b.seg.path, err)
		}
		keys = append(keys, segKey{seg: b.seg, key: b.key, val: b.val})
	}
	o := &op{kind: opDelete, keys: keys, done: make(chan error, 1)}
	if err := s.submit(context.Background(), o); err != nil {
		return fmt.Errorf("spool: oldest: delete damaged records: %w", err)
	}
	if err := <-o.done; err != nil {
		return fmt.Errorf("spool: oldest: %w", err)
	}
	return nil
}

// buryDamaged keeps a record damaged on disk (v is its stored value) as a
// dead letter: its payload when the checksum holds (only the key was
// damaged), so that an operator can send it again; else the value as found.
func (s *Spool) buryDamaged(seg *segment, v []byte, why string) error {
	s.log.Error("spool: damaged record moved to the dead letters", "segment", seg.path, "reason", why, "bytes", len(v))
	if data, ok := decodeRecord(v); ok {
		v = data
	}
	if err := s.dead.bury(v, fmt.Sprintf("spool: %s in %s", why, seg.path)); err != nil {
		return err
	}
	corruptRecords.Inc()
	return nil
}

// Stats returns the current sizes. DiskBytes costs one stat per file.
func (s *Spool) Stats() Stats {
	st := Stats{
		Records: s.records.Load(),
		Bytes:   s.bytes.Load(),
		Commits: s.commits.Load(),
		Puts:    s.puts.Load(),
	}
	s.acctMu.Lock()
	st.Pending = s.pending
	s.acctMu.Unlock()
	s.segMu.RLock()
	st.Segments = len(s.segs)
	for _, seg := range s.segs {
		if fi, err := os.Stat(seg.path); err == nil {
			st.DiskBytes += fi.Size()
		}
	}
	s.segMu.RUnlock()
	if s.dead != nil {
		st.Buried, st.BuriedBytes, st.DiskBytes = s.dead.stats(st.DiskBytes)
	}
	return st
}

// Close stops accepting work, lets the committer commit everything already
// handed to it, then closes the files and releases the directory lock.
// Calling it again returns nil.
func (s *Spool) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	close(s.ops)
	s.closeMu.Unlock()
	<-s.committed
	err := s.closeFiles()
	return errors.Join(err, unlockDir(s.lock))
}

// closeFiles closes every bbolt file; used by Close and by a failed Open.
func (s *Spool) closeFiles() error {
	var errs []error
	s.segMu.Lock()
	for _, seg := range s.segs {
		if err := seg.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("spool: close %s: %w", seg.path, err))
		}
	}
	s.segs = nil
	s.segMu.Unlock()
	if s.dead != nil {
		if err := s.dead.close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// segmentFor returns the segment that holds id, or nil. Committer only.
func (s *Spool) segmentFor(id uint64) *segment {
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].floor > id })
	if i == 0 {
		return nil
	}
	return s.segs[i-1]
}
