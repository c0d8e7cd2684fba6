package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	bolt "go.etcd.io/bbolt"
)

// File names inside the spool directory.
const (
	lockName      = "LOCK"
	deadName      = "dead.db"
	segSuffix     = ".seg"
	salvageSuffix = ".salvage"
	corruptMarker = ".corrupt-"
)

// damageIDGap is how far IDs jump past a damaged segment's floor: more
// records than a segment file can hold.
const damageIDGap = 1 << 40

var segNameRE = regexp.MustCompile(`^[0-9]{20}\.seg$`)

func segName(floor uint64) string { return fmt.Sprintf("%020d%s", floor, segSuffix) }

// metaBucket holds, in each segment, the next ID as of the segment's last
// commit, so IDs keep growing across restarts even after every record was
// deleted; and the number of records after that commit, so that a salvage can
// tell how many records damage took (see DamagedFile.Lost). dead.db keeps the
// same two for its dead letters. Both are big-endian uint64s.
var (
	metaBucket = []byte("meta")
	nextKey    = []byte("next")
	countKey   = []byte("count")
)

func putNext(tx *bolt.Tx, next uint64) error {
	b, err := tx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return err
	}
	return b.Put(nextKey, binary.BigEndian.AppendUint64(nil, next))
}

func putCount(tx *bolt.Tx, count int64) error {
	b, err := tx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return err
	}
	return b.Put(countKey, binary.BigEndian.AppendUint64(nil, uint64(max(count, 0))))
}

// ErrLocked is wrapped by Open's error when the spool is in use by another
// process (or another Spool in this one).
var ErrLocked = errors.New("locked by another process")

func lockedError(path string, waited time.Duration, holder string) error {
	return fmt.Errorf("spool: %s is %w%s (waited %s); is another relay running with the same spool.path?", path, ErrLocked, holder, waited)
}

// Report is what Open found wrong in the spool directory and what it did.
// Everything it lists is also logged.
type Report struct {
	// Damaged lists files that could not be used as they were; each was moved
	// aside (kept, never deleted) and what could be read was salvaged.
	Damaged []DamagedFile
	// SetAsideEarlier lists damaged files moved aside by an earlier Open that
	// are still in the directory, waiting for an operator.
	SetAsideEarlier []string
	// Ignored lists files in the directory that are not the spool's; they are
	// left untouched.
	Ignored []string
}

// DamagedFile describes one damaged spool file found by Open.
type DamagedFile struct {
	File          string // the file's path as found
	MovedTo       string // where the damaged file is kept now
	Reason        string // what was wrong
	Salvaged      int64  // records copied into a fresh file at File
	SalvagedBytes int64  // their payload bytes
	Skipped       int64  // readable entries dropped from the copy because they failed their checks
	// Lost is how many records the file held that could not be salvaged:
	// they are at best in the set-aside file, on pages too damaged to read.
	// How exact it is, Estimate says: the damage can take the very pages
	// that told how many records there were.
	Lost     int64
	Estimate LostEstimate
}

// LostEstimate says what DamagedFile.Lost is based on.
type LostEstimate uint8

const (
	// LostUnknown: nothing left tells how many records the file held (the
	// active segment or dead.db lost whole); Lost is -1.
	LostUnknown LostEstimate = iota
	// LostCounted: the record count the spool stores with every commit, from
	// the newest copy the salvage found, minus the records salvaged. Exact
	// when that copy is the last commit's; a count from an older commit
	// (when the newest copy was damaged) can be off by what that commit and
	// later ones added or deleted. Records deleted before the damage but
	// salvaged from stale pages make it smaller, never below 0.
	LostCounted
	// LostAtMost: no count survived; Lost is the width of the file's ID
	// range (its floor up to the next segment's floor or the highest
	// next-ID found, for dead.db its ID sequence) minus the records
	// salvaged — an upper bound, since IDs of records drained before the
	// damage are counted too.
	LostAtMost
)

func (e LostEstimate) String() string {
	switch e {
	case LostCounted:
		return "counted"
	case LostAtMost:
		return "at_most"
	default:
		return "unknown"
	}
}

var (
	damagedFiles = metrics.NewCounter(`relay_spool_damaged_files_total`)
	// unreadableRecords adds up DamagedFile.Lost (when known): records that
	// damage took and a salvage could not copy.
	unreadableRecords = metrics.NewCounter(`relay_spool_unreadable_records_total`)
)

func (s *Spool) boltOptions(readOnly, preload bool) *bolt.Options {
	return &bolt.Options{
		Timeout:         s.opts.LockTimeout,
		ReadOnly:        readOnly,
		PreLoadFreelist: preload,
		NoSync:          s.opts.NoSync,
		FreelistType:    bolt.FreelistMapType,
	}
}

// tune sets a segment's growth step. bbolt grows a file to its whole memory
// map (which doubles from 32 KiB) while the map is at most AllocSize, then by
// AllocSize at a time. bbolt's default of 16 MiB would make every segment
// at least that big once past it; 1/8 segment keeps files close to their
// contents (each step costs one extra fsync). A fresh segment stays at
// 32 KiB.
func (s *Spool) tune(db *bolt.DB) {
	db.AllocSize = int(min(max(s.opts.SegmentSize/8, 256<<10), 16<<20))
}

// openBolt opens a bbolt file with memory faults turned into errors and a lock
// timeout turned into ErrLocked.
func openBolt(path string, o *bolt.Options) (db *bolt.DB, err error) {
	err = protect(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, o)
		return err
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, lockedError(path, o.Timeout, "")
	}
	if err != nil {
		return nil, err
	}
	return db, nil
}

// protect runs fn with memory faults (SIGBUS on a page past the end of a
// truncated, memory-mapped file; SIGSEGV on a junk page number) turned into
// panics, and turns any panic into an error. It must run fn on the calling
// goroutine: debug.SetPanicOnFault is per goroutine. bbolt's View and Update
// roll back their transaction when fn panics, so the file can still be
// closed; a panic inside bolt.Open leaks that file's descriptor, which is why
// Open checks sizes before letting bbolt read anything but the meta pages.
func protect(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable data: %v", r)
		}
	}()
	return fn()
}

// fileInfo is what checkFile learned about a healthy file.
type fileInfo struct {
	records int64
	bytes   int64  // payload bytes
	next    uint64 // an ID above every key ever used in the file
	used    int64  // bbolt's high-water mark
}

// payloadFunc returns the payload size of a value, or false when the value's
// shape is wrong.
type payloadFunc func(v []byte) (int64, bool)

func recordPayload(v []byte) (int64, bool) {
	if !recordShapeOK(v) {
		return 0, false
	}
	return int64(len(v) - recordHeaderLen), true
}

// checkFile decides whether the bbolt file at path can be used as it is. A
// non-empty damage means it cannot (the file is damaged); err is for problems
// that are not the file's fault (a lock held elsewhere, an I/O error).
func (s *Spool) checkFile(path string, bucket []byte, floor uint64, payload payloadFunc) (fi fileInfo, damage string, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return fi, "", fmt.Errorf("spool: open: %w", err)
	}
	size := st.Size()
	if size == 0 {
		return fi, "the file is empty (0 bytes)", nil
	}
	// Pass 1: read only the meta pages, and compare the last commit's
	// high-water mark with the file: a truncated file would make bbolt touch
	// pages past its end.
	db, err := openBolt(path, s.boltOptions(true, false))
	if errors.Is(err, ErrLocked) {
		return fi, "", err
	}
	if err != nil {
		return fi, fmt.Sprintf("not a readable bbolt file: %v", err), nil
	}
	var hwm int64
	err = protect(func() error {
		return db.View(func(tx *bolt.Tx) error { hwm = tx.Size(); return nil })
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fi, fmt.Sprintf("unreadable meta pages: %v", err), nil
	}
	if hwm > size {
		return fi, fmt.Sprintf("truncated: the file has %d bytes but its last commit uses %d", size, hwm), nil
	}
	// Pass 2: every page of the last commit lies inside the file; let bbolt
	// load its freelist, then walk every key.
	db, err = openBolt(path, s.boltOptions(true, true))
	if errors.Is(err, ErrLocked) {
		return fi, "", err
	}
	if err != nil {
		return fi, fmt.Sprintf("bbolt cannot load it: %v", err), nil
	}
	defer db.Close()
	err = protect(func() error {
		return db.View(func(tx *bolt.Tx) error {
			fi.used = tx.Size()
			if m := tx.Bucket(metaBucket); m != nil {
				if v := m.Get(nextKey); len(v) == 8 {
					fi.next = binary.BigEndian.Uint64(v)
				}
			}
			b := tx.Bucket(bucket)
			if b == nil {
				return nil
			}
			c := b.Cursor()
			var prev uint64
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if len(k) != 8 || v == nil {
					return fmt.Errorf("entry %x is not a record", k)
				}
				id := binary.BigEndian.Uint64(k)
				if id < floor || (fi.records > 0 && id <= prev) {
					return fmt.Errorf("record %d is out of order (floor %d, previous %d)", id, floor, prev)
				}
				n, ok := payload(v)
				if !ok {
					return fmt.Errorf("record %d has an unknown format", id)
				}
				fi.records++
				fi.bytes += n
				prev = id
			}
			if fi.records > 0 && prev < math.MaxUint64 {
				fi.next = max(fi.next, prev+1)
			}
			return nil
		})
	})
	if err != nil {
		return fileInfo{}, err.Error(), nil
	}
	return fi, "", nil
}

// load lists the directory, finishes interrupted salvages, checks (and if
// needed recovers) every file, and prepares the active segment. It runs
// before the committer starts.
func (s *Spool) load() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: open: %w", err)
	}
	// A salvage writes <name>.salvage, then moves <name> aside, then renames
	// the salvage to <name>. A crash in between leaves one of two states.
	changed := false
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, salvageSuffix) {
			continue
		}
		tmp := filepath.Join(s.dir, name)
		target := strings.TrimSuffix(tmp, salvageSuffix)
		if _, err := os.Stat(target); err == nil {
			// The damaged file was not moved yet: the salvage is redone.
			err = os.Remove(tmp)
		} else if errors.Is(err, os.ErrNotExist) {
			err = os.Rename(tmp, target)
		}
		if err != nil {
			return fmt.Errorf("spool: open: finish an interrupted salvage of %s: %w", target, err)
		}
		changed = true
	}
	if changed {
		if err := s.opts.syncDir(s.dir); err != nil {
			return fmt.Errorf("spool: open: %w", err)
		}
		if entries, err = os.ReadDir(s.dir); err != nil {
			return fmt.Errorf("spool: open: %w", err)
		}
	}

	var floors []uint64
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == lockName || name == deadName || name == exportMarkerName || name == exportMarkerName+".tmp":
		case segNameRE.MatchString(name) && e.Type().IsRegular():
			floor, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
			if err != nil {
				s.report.Ignored = append(s.report.Ignored, filepath.Join(s.dir, name))
				continue
			}
			floors = append(floors, floor)
		case strings.Contains(name, corruptMarker):
			s.report.SetAsideEarlier = append(s.report.SetAsideEarlier, filepath.Join(s.dir, name))
		default:
			s.report.Ignored = append(s.report.Ignored, filepath.Join(s.dir, name))
		}
	}
	slices.Sort(floors)

	next := uint64(1)
	for i, floor := range floors {
		var end uint64 // the next segment's floor bounds this one's IDs
		if i+1 < len(floors) {
			end = floors[i+1]
		}
		seg, segNext, err := s.openSegment(floor, end)
		if err != nil {
			return err
		}
		next = max(next, floor, segNext)
		if seg != nil {
			s.segs = append(s.segs, seg)
		}
	}
	s.nextID = next
	if s.dead, err = s.openDead(); err != nil {
		return err
	}
	if len(s.segs) == 0 {
		if _, err := s.addSegment(); err != nil {
			return fmt.Errorf("spool: open: %w", err)
		}
	}
	for _, seg := range s.segs {
		s.records.Add(seg.records.Load())
		s.bytes.Add(seg.bytes.Load())
		s.used += seg.bytes.Load() + seg.records.Load()*recordOverhead
	}
	// Before a drained segment is removed: the import progress it may hold.
	if err := s.reconcileImports(); err != nil {
		return err
	}
	// Drop drained older segments and shrink a drained active one now rather
	// than after the first commit.
	s.housekeep(false)

	for _, f := range s.report.SetAsideEarlier {
		s.log.Warn("spool: a damaged file set aside earlier is still here; inspect it, then delete it", "file", f)
	}
	for _, f := range s.report.Ignored {
		s.log.Warn("spool: a file that is not the spool's is in its directory; left untouched", "file", f)
	}
	return nil
}

// openSegment checks the segment with this floor and opens it read-write. A
// damaged segment is set aside and replaced by what could be salvaged; the
// result is nil when nothing could. next is an ID above every ID the segment
// used, as far as is known. end is the next segment's floor (0 for the last
// segment): its IDs are below it.
func (s *Spool) openSegment(floor, end uint64) (seg *segment, next uint64, err error) {
	path := filepath.Join(s.dir, segName(floor))
	fi, damage, err := s.checkFile(path, recordsBucket, floor, recordPayload)
	if err != nil {
		return nil, 0, err
	}
	if damage == "" {
		seg, err := s.openSegmentFile(path, floor, fi)
		if err == nil {
			return seg, fi.next, nil
		}
		if errors.Is(err, ErrLocked) {
			return nil, 0, err
		}
		damage = fmt.Sprintf("bbolt cannot open it for writing: %v", err)
	}
	res, err := s.recoverFile(path, recordsBucket, floor, end, salvageRecord, damage)
	if err != nil {
		return nil, 0, err
	}
	// The damage may have taken the highest IDs the segment used (and its
	// record of the next one) with it. Skip far ahead so that new records
	// never share an ID with one left in the set-aside file.
	if floor <= math.MaxUint64-2*damageIDGap {
		res.next = max(res.next, floor+damageIDGap)
	}
	if res.records == 0 {
		return nil, res.next, nil
	}
	seg, err = s.openSegmentFile(path, floor, fileInfo{records: res.records, bytes: res.bytes, next: res.next, used: res.used})
	if err != nil {
		return nil, 0, fmt.Errorf("spool: open the salvaged copy of %s: %w", path, err)
	}
	return seg, res.next, nil
}

func (s *Spool) openSegmentFile(path string, floor uint64, fi fileInfo) (*segment, error) {
	db, err := openBolt(path, s.boltOptions(false, true))
	if err != nil {
		return nil, err
	}
	s.tune(db)
	seg := &segment{floor: floor, path: path, db: db, used: fi.used}
	seg.records.Store(fi.records)
	seg.bytes.Store(fi.bytes)
	return seg, nil
}

// createSegment creates an empty segment file with its buckets, durably.
func (s *Spool) createSegment(floor uint64) (*segment, error) {
	path := filepath.Join(s.dir, segName(floor))
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("spool: create segment %s: already exists", path)
	}
	db, err := openBolt(path, s.boltOptions(false, true))
	if err != nil {
		return nil, fmt.Errorf("spool: create segment: %w", err)
	}
	s.tune(db)
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(recordsBucket); err != nil {
			return err
		}
		if err := putCount(tx, 0); err != nil {
			return err
		}
		return putNext(tx, floor)
	})
	if err == nil {
		err = s.opts.syncDir(s.dir)
	}
	if err != nil {
		_ = db.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("spool: create segment %s: %w", path, err)
	}
	seg := &segment{floor: floor, path: path, db: db}
	_ = db.View(func(tx *bolt.Tx) error { seg.used = tx.Size(); return nil })
	return seg, nil
}

// salvageResult is what recoverFile copied out of a damaged file.
type salvageResult struct {
	records, bytes, skipped int64
	next                    uint64
	// seq is the bucket's sequence (bbolt's NextSequence counter, which
	// numbers the dead letters): the highest copy found, and at least the
	// highest key salvaged.
	seq  uint64
	used int64

	// What the scan learned about the file before the damage (for lost):
	// the newest copy of its meta bucket that holds a record count, the
	// highest next ID in any copy, and the highest copy of the bucket's
	// sequence.
	metaFound bool
	metaNext  uint64
	metaCount int64
	nextSeen  uint64
	headerSeq uint64
}

// salvageFunc validates a value for the salvaged copy, returning its payload
// size; ok=false leaves the value out (it stays in the damaged file).
type salvageFunc func(v []byte) (payload int64, ok bool)

func salvageRecord(v []byte) (int64, bool) {
	data, ok := decodeRecord(v)
	return int64(len(data)), ok
}

// recoverFile sets a damaged file aside and puts in its place a fresh file
// holding every entry of bucket that can still be read and passes valid. It
// fails (and Open with it) only when it cannot write: then the relay refuses
// to start rather than run without the damaged file's records.
func (s *Spool) recoverFile(path string, bucket []byte, floor, end uint64, valid salvageFunc, damage string) (salvageResult, error) {
	tmp := path + salvageSuffix
	res, err := s.salvage(path, tmp, bucket, floor, valid)
	if err != nil {
		_ = os.Remove(tmp)
		return res, fmt.Errorf("spool: %s is damaged (%s) and copying out its readable records failed: %w; "+
			"free disk space and restart, or move the file out of the spool directory to start without it", path, damage, err)
	}
	aside := path + corruptMarker + time.Now().UTC().Format("20060102T150405Z")
	for i := 2; ; i++ {
		if _, err := os.Lstat(aside); errors.Is(err, os.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s%s%s-%d", path, corruptMarker, time.Now().UTC().Format("20060102T150405Z"), i)
	}
	if err := os.Rename(path, aside); err != nil {
		_ = os.Remove(tmp)
		return res, fmt.Errorf("spool: %s is damaged (%s) and moving it aside failed: %w; move it out of the spool directory to start", path, damage, err)
	}
	if res.records > 0 {
		err = os.Rename(tmp, path)
	} else {
		err = os.Remove(tmp)
	}
	if err == nil {
		err = s.opts.syncDir(s.dir)
	}
	if err != nil {
		return res, fmt.Errorf("spool: put the salvaged copy of damaged %s in place: %w", path, err)
	}
	lost, how := res.lost(floor, end)
	damagedFiles.Inc()
	if lost > 0 {
		unreadableRecords.AddInt64(lost)
	}
	s.report.Damaged = append(s.report.Damaged, DamagedFile{
		File: path, MovedTo: aside, Reason: damage,
		Salvaged: res.records, SalvagedBytes: res.bytes, Skipped: res.skipped,
		Lost: lost, Estimate: how,
	})
	s.log.Error("spool: damaged file set aside; what could be read was kept, the rest stays only in the set-aside file: inspect it (e.g. with the bbolt CLI), then delete it",
		"file", path, "moved_to", aside, "reason", damage,
		"salvaged_records", res.records, "salvaged_bytes", res.bytes, "skipped_records", res.skipped,
		"unreadable_records", lost, "unreadable_estimate", how.String())
	return res, nil
}

// mkdirAllSynced creates path and any missing parents, as os.MkdirAll does,
// and fsyncs the parent of each directory it creates, top down, before going
// on: otherwise a power loss could take back the directory entry of a spool
// whose records were acknowledged as durable (their files' fsyncs do not
// cover the directories above them).
func mkdirAllSynced(path string, sync func(string) error) error {
	path = filepath.Clean(path)
	var missing []string
	for p := path; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if err := sync(filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
