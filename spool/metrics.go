package spool

import (
	"math"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	bolt "go.etcd.io/bbolt"
)

// The gauges of one spool live in its own metrics.Set (Spool.Metrics), not
// in package globals: a process, or a test, that opens two spools must not
// see one spool's size under the other's name, and a closed spool must stop
// being reported. Whoever opens the spool registers the set
// (metrics.RegisterSet) and unregisters it when it closes the spool.

// ageMarkEvery is the resolution of relay_spool_oldest_age_seconds: at most
// one mark per interval, so that the marks of a week-long outage are some
// hundred thousand entries (a few MiB), not one per commit.
const ageMarkEvery = time.Second

// maxAgeMarks bounds the marks between trims; past it the committer trims
// the marks of records already deleted.
const maxAgeMarks = 1 << 16

// ageMark says that the records from id on were committed at or after at.
type ageMark struct {
	id uint64
	at time.Time
}

// ageMarks records when records were committed, coarsely: the age of the
// oldest live record is the time since the newest mark at or below its ID.
// Records found on disk at Open get one mark dated by the oldest segment
// file's last write: their own put times are not stored, and a file is
// written last when it fills (or a delete touches it), so the age reported
// for them is a lower bound.
type ageMarks struct {
	mu    sync.Mutex
	marks []ageMark // ascending id and at
}

// note records a commit of records from id on at now (committer only).
func (m *ageMarks) note(id uint64, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := len(m.marks); n > 0 && now.Sub(m.marks[n-1].at) < ageMarkEvery {
		return // the previous mark dates these records closely enough
	}
	m.marks = append(m.marks, ageMark{id: id, at: now})
}

// since returns the mark time for record id and drops the marks of records
// below id, which are gone (id is the oldest live record).
func (m *ageMarks) since(id uint64) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// The newest mark at or below id.
	i := sort.Search(len(m.marks), func(i int) bool { return m.marks[i].id > id }) - 1
	if i < 0 {
		return time.Time{}, false
	}
	if i > 0 {
		m.marks = append(m.marks[:0], m.marks[i:]...)
	}
	return m.marks[0].at, true
}

func (m *ageMarks) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.marks)
}

// Metrics returns the spool's gauges: relay_spool_records, _bytes,
// _disk_bytes, _capacity_bytes, _oldest_age_seconds, _dead_letters and
// _dead_letter_bytes. Register it with metrics.RegisterSet while the spool
// is open, and unregister it before or after Close.
func (s *Spool) Metrics() *metrics.Set { return s.set }

func (s *Spool) newMetricsSet() *metrics.Set {
	set := metrics.NewSet()
	set.NewGauge(`relay_spool_records`, func() float64 { return float64(s.records.Load()) })
	set.NewGauge(`relay_spool_bytes`, func() float64 { return float64(s.bytes.Load()) })
	set.NewGauge(`relay_spool_capacity_bytes`, func() float64 { return float64(s.opts.MaxDiskSize) })
	set.NewGauge(`relay_spool_disk_bytes`, func() float64 { return float64(s.Stats().DiskBytes) })
	set.NewGauge(`relay_spool_oldest_age_seconds`, func() float64 {
		age, err := s.OldestAge()
		if err != nil {
			return math.NaN()
		}
		return age.Seconds()
	})
	set.NewGauge(`relay_spool_dead_letters`, func() float64 {
		if s.dead == nil {
			return 0
		}
		n, _, _ := s.dead.stats(0)
		return float64(n)
	})
	set.NewGauge(`relay_spool_dead_letter_bytes`, func() float64 {
		if s.dead == nil {
			return 0
		}
		_, b, _ := s.dead.stats(0)
		return float64(b)
	})
	return set
}

// OldestAge returns how long the oldest live record has been in the spool
// (0 when the spool is empty), to the resolution of ageMarkEvery; for
// records that were already on disk when the spool was opened, a lower
// bound (see ageMarks).
func (s *Spool) OldestAge() (time.Duration, error) {
	id, ok, err := s.oldestID()
	if err != nil || !ok {
		return 0, err
	}
	at, ok := s.ages.since(id)
	if !ok {
		return 0, nil
	}
	return max(0, s.now().Sub(at)), nil
}

// oldestID returns the ID of the oldest live record: the first key of the
// first segment that holds any. One read transaction, no payload copied.
func (s *Spool) oldestID() (id uint64, ok bool, err error) {
	s.segMu.RLock()
	defer s.segMu.RUnlock()
	for _, seg := range s.segs {
		if seg.records.Load() <= 0 {
			continue
		}
		err = seg.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(recordsBucket)
			if b == nil {
				return nil
			}
			if k, _ := b.Cursor().First(); k != nil {
				id, ok = decodeKey(k), true
			}
			return nil
		})
		if err != nil || ok {
			return id, ok, err
		}
	}
	return 0, false, nil
}

// markLoaded dates the records Open found on disk (see ageMarks).
func (s *Spool) markLoaded() {
	var oldest time.Time
	for _, seg := range s.segs {
		if seg.records.Load() <= 0 {
			continue
		}
		if fi, err := os.Stat(seg.path); err == nil && (oldest.IsZero() || fi.ModTime().Before(oldest)) {
			oldest = fi.ModTime()
		}
	}
	if !oldest.IsZero() {
		s.ages.marks = append(s.ages.marks, ageMark{id: 0, at: oldest})
	}
}

// trimAges drops the marks of deleted records once there are many
// (committer only, so it may read the segments).
func (s *Spool) trimAges() {
	if s.ages.len() < maxAgeMarks {
		return
	}
	if id, ok, err := s.oldestID(); err == nil && ok {
		s.ages.since(id)
	}
}
