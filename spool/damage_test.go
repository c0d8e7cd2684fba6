package spool

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

const damageRecSize = 1000

// damageFixture is a closed spool of several segments with known contents.
type damageFixture struct {
	dir   string
	opts  Options
	ids   map[uint64]int // ID → seq of every record written
	segs  []string       // segment paths, oldest first
	maxID uint64
}

func newDamageFixture(t *testing.T) *damageFixture {
	t.Helper()
	f := &damageFixture{
		dir:  filepath.Join(t.TempDir(), "spool.db"),
		opts: Options{NoSync: true, SegmentSize: 256 << 10},
		ids:  make(map[uint64]int),
	}
	s, err := Open(f.dir, withQuietLog(f.opts))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2000; i += 20 {
		batch := make([][]byte, 20)
		for j := range batch {
			batch[j] = payload(i+j, damageRecSize)
		}
		if err := s.PutBatch(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range all(t, s) {
		f.ids[r.ID] = seqOf(t, r.Data)
		f.maxID = max(f.maxID, r.ID)
	}
	for i := 0; i < 20; i++ {
		if err := s.Bury(context.Background(), payload(10000+i, damageRecSize), "rejected"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f.segs, _ = filepath.Glob(filepath.Join(f.dir, "*.seg"))
	slices.Sort(f.segs)
	if len(f.segs) < 5 {
		t.Fatalf("fixture has %d segments, want ≥5", len(f.segs))
	}
	return f
}

func withQuietLog(o Options) Options {
	o.Logger = quietLog
	return o
}

// segmentOf returns the path of the segment holding id.
func (f *damageFixture) segmentOf(id uint64) string {
	var seg string
	for _, p := range f.segs {
		var floor uint64
		for _, c := range strings.TrimSuffix(filepath.Base(p), segSuffix) {
			floor = floor*10 + uint64(c-'0')
		}
		if floor <= id {
			seg = p
		}
	}
	return seg
}

// openWithin opens the spool, failing the test if Open hangs.
func openWithin(t *testing.T, dir string, opts Options, d time.Duration) (*Spool, error) {
	t.Helper()
	type res struct {
		s   *Spool
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := Open(dir, opts)
		ch <- res{s, err}
	}()
	select {
	case r := <-ch:
		if r.s != nil {
			t.Cleanup(func() { _ = r.s.Close() })
		}
		return r.s, r.err
	case <-time.After(d):
		t.Fatalf("Open did not return within %s", d)
		return nil, nil
	}
}

func junk(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestDamagedFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		// damage changes the fixture's files and returns the damaged file
		// ("" when Open must find nothing wrong).
		damage func(t *testing.T, f *damageFixture) string
		// mustSalvage: the damaged segment's readable records must come back.
		mustSalvage bool
		// estimate: how the report's count of unreadable records (of a
		// damaged segment) must have been arrived at.
		estimate LostEstimate
	}{
		{
			name: "truncated segment",
			damage: func(t *testing.T, f *damageFixture) string {
				// Files grow ahead of their contents: cut into the contents.
				p := f.segs[len(f.segs)/2]
				if err := os.Truncate(p, usedSize(t, p)*6/10); err != nil {
					t.Fatal(err)
				}
				return p
			},
			mustSalvage: true,
			estimate:    LostAtMost,
		},
		{
			name: "truncated active segment",
			damage: func(t *testing.T, f *damageFixture) string {
				// The active segment holds a few dozen records: 5 pages keep
				// the meta pages and some leaves, and lose the rest.
				p := f.segs[len(f.segs)-1]
				if err := os.Truncate(p, 5*int64(os.Getpagesize())); err != nil {
					t.Fatal(err)
				}
				return p
			},
			estimate: LostUnknown,
		},
		{
			name: "segment truncated inside its meta pages",
			damage: func(t *testing.T, f *damageFixture) string {
				p := f.segs[1]
				if err := os.Truncate(p, 100); err != nil {
					t.Fatal(err)
				}
				return p
			},
			estimate: LostAtMost,
		},
		{
			name: "segment truncated to zero bytes",
			damage: func(t *testing.T, f *damageFixture) string {
				p := f.segs[2]
				if err := os.Truncate(p, 0); err != nil {
					t.Fatal(err)
				}
				return p
			},
			estimate: LostAtMost,
		},
		{
			name: "junk over the second half of a segment",
			damage: func(t *testing.T, f *damageFixture) string {
				p := f.segs[len(f.segs)/2]
				used := usedSize(t, p)
				writeAt(t, p, junk(int(used/2), 1), used/2)
				return p
			},
			mustSalvage: true,
			estimate:    LostAtMost,
		},
		{
			name: "junk over the meta pages",
			damage: func(t *testing.T, f *damageFixture) string {
				p := f.segs[len(f.segs)/2]
				writeAt(t, p, junk(2*os.Getpagesize(), 2), 0)
				return p
			},
			mustSalvage: true,
			estimate:    LostCounted,
		},
		{
			name: "junk file named like a segment",
			damage: func(t *testing.T, f *damageFixture) string {
				p := filepath.Join(f.dir, segName(f.maxID+1_000_000))
				if err := os.WriteFile(p, junk(300<<10, 3), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			},
			estimate: LostUnknown,
		},
		{
			name: "truncated dead letters",
			damage: func(t *testing.T, f *damageFixture) string {
				p := filepath.Join(f.dir, deadName)
				if err := os.Truncate(p, usedSize(t, p)/2); err != nil {
					t.Fatal(err)
				}
				return p
			},
		},
		{
			name: "junk dead letters",
			damage: func(t *testing.T, f *damageFixture) string {
				p := filepath.Join(f.dir, deadName)
				if err := os.WriteFile(p, junk(64<<10, 4), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			},
		},
		{
			name: "foreign files in the directory",
			damage: func(t *testing.T, f *damageFixture) string {
				if err := os.WriteFile(filepath.Join(f.dir, "notes.txt"), []byte("hello"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(filepath.Join(f.dir, "backup"), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(f.dir, "123.seg"), junk(5000, 5), 0o600); err != nil {
					t.Fatal(err)
				}
				return ""
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newDamageFixture(t)
			damaged := tc.damage(t, f)
			var damagedSize int64 = -1
			if fi, err := os.Stat(damaged); err == nil {
				damagedSize = fi.Size()
			}
			unreadableBefore := unreadableRecords.Get()
			var logBuf syncBuffer
			opts := f.opts
			opts.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
			s, err := openWithin(t, f.dir, opts, 20*time.Second)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			rep := s.Report()

			// The damage is reported, and the damaged file kept, byte for byte.
			if damaged == "" {
				if len(rep.Damaged) != 0 {
					t.Fatalf("nothing was damaged, but Report says %+v", rep.Damaged)
				}
				if len(rep.Ignored) != 3 {
					t.Fatalf("Report.Ignored = %v, want the 3 foreign entries", rep.Ignored)
				}
				if b, err := os.ReadFile(filepath.Join(f.dir, "notes.txt")); err != nil || string(b) != "hello" {
					t.Fatalf("a foreign file was touched: %q %v", b, err)
				}
			} else {
				if len(rep.Damaged) != 1 || rep.Damaged[0].File != damaged {
					t.Fatalf("Report.Damaged = %+v, want one entry for %s", rep.Damaged, damaged)
				}
				d := rep.Damaged[0]
				if d.Reason == "" || !strings.Contains(d.MovedTo, corruptMarker) {
					t.Fatalf("damage report %+v", d)
				}
				if fi, err := os.Stat(d.MovedTo); err != nil || fi.Size() != damagedSize {
					t.Fatalf("damaged file not kept at %s: %v (size %v, was %d)", d.MovedTo, err, fi, damagedSize)
				}
				if tc.mustSalvage && d.Salvaged == 0 {
					t.Fatalf("nothing salvaged from %s: %+v", damaged, d)
				}
				t.Logf("%s: %s; salvaged %d records, skipped %d", filepath.Base(d.File), d.Reason, d.Salvaged, d.Skipped)
			}

			// Every record outside the damaged file is there, and every record
			// returned is one that was written, intact, in FIFO order.
			recs := all(t, s)
			got := make(map[uint64]bool, len(recs))
			for _, r := range recs {
				seq, ok := f.ids[r.ID]
				if !ok || !bytes.Equal(r.Data, payload(seq, damageRecSize)) {
					t.Fatalf("record %d (%.20q) was not written as such", r.ID, r.Data)
				}
				got[r.ID] = true
			}
			salvagedHere := 0
			for id := range f.ids {
				seg := f.segmentOf(id)
				if seg == damaged {
					if got[id] {
						salvagedHere++
					}
					continue
				}
				if !got[id] {
					t.Fatalf("record %d of undamaged %s is missing", id, filepath.Base(seg))
				}
			}
			if damaged != "" && strings.HasSuffix(damaged, segSuffix) {
				d := rep.Damaged[0]
				if int64(salvagedHere) != d.Salvaged {
					t.Fatalf("%d records of the damaged segment readable, report says %d salvaged", salvagedHere, d.Salvaged)
				}
				// How many could not be read: the fixture deleted nothing,
				// so every figure but "unknown" must be exact here.
				held := 0
				for id := range f.ids {
					if f.segmentOf(id) == damaged {
						held++
					}
				}
				if tc.estimate != d.Estimate {
					t.Fatalf("lost records estimated %v, want %v (%+v)", d.Estimate, tc.estimate, d)
				}
				switch {
				case d.Estimate == LostUnknown && d.Lost != -1:
					t.Fatalf("unknown loss reported as %d", d.Lost)
				case d.Estimate != LostUnknown && d.Lost != int64(held)-d.Salvaged:
					t.Fatalf("the segment held %d records, %d salvaged, report says %d lost (%v)", held, d.Salvaged, d.Lost, d.Estimate)
				}
				if got := unreadableRecords.Get() - unreadableBefore; d.Lost > 0 && got != uint64(d.Lost) {
					t.Fatalf("relay_spool_unreadable_records_total +%d, want +%d", got, d.Lost)
				}
				// The ERROR line says it too.
				want := fmt.Sprintf("unreadable_records=%d unreadable_estimate=%v", d.Lost, d.Estimate)
				if line := logBuf.String(); !strings.Contains(line, "level=ERROR") || !strings.Contains(line, want) {
					t.Fatalf("the log lacks an ERROR line with %q:\n%s", want, line)
				}
			}
			// Dead letters: all there unless their file was the damaged one;
			// what is there is intact.
			buried, err := s.Buried(100)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(damaged, deadName) && len(buried) != 20 {
				t.Fatalf("%d dead letters, want 20", len(buried))
			}
			for _, r := range buried {
				if r.Reason != "rejected" || !bytes.Equal(r.Data, payload(seqOf(t, r.Data), damageRecSize)) {
					t.Fatalf("dead letter %d damaged: %q", r.ID, r.Reason)
				}
			}

			// The spool works on: new records get IDs above everything seen.
			if err := s.Put(context.Background(), payload(5000, 10)); err != nil {
				t.Fatal(err)
			}
			recs = all(t, s)
			last := recs[len(recs)-1]
			if last.ID <= f.maxID || seqOf(t, last.Data) != 5000 {
				t.Fatalf("new record got ID %d, want above %d", last.ID, f.maxID)
			}
			// Not below a set-aside segment's floor either: its records keep
			// their IDs should an operator bring them back.
			if damaged != "" && strings.HasSuffix(damaged, segSuffix) && last.ID < parseFloor(t, damaged) {
				t.Fatalf("new record got ID %d, below the set-aside segment's floor %d", last.ID, parseFloor(t, damaged))
			}

			// A second Open finds nothing new to recover, and mentions what was
			// set aside before.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2, err := openWithin(t, f.dir, withQuietLog(f.opts), 20*time.Second)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			rep2 := s2.Report()
			if len(rep2.Damaged) != 0 || len(rep2.SetAsideEarlier) != len(rep.Damaged) {
				t.Fatalf("reopen report %+v", rep2)
			}
			if n := s2.Stats().Records; n != int64(len(recs)) {
				t.Fatalf("reopen: %d records, want %d", n, len(recs))
			}
		})
	}
}

// usedSize is the size of a bbolt file's contents as of its last commit.
func usedSize(t *testing.T, path string) int64 {
	t.Helper()
	db, err := bolt.Open(path, 0, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func parseFloor(t *testing.T, path string) uint64 {
	t.Helper()
	var floor uint64
	for _, c := range strings.TrimSuffix(filepath.Base(path), segSuffix) {
		floor = floor*10 + uint64(c-'0')
	}
	return floor
}

func writeAt(t *testing.T, path string, b []byte, off int64) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
}

// A flipped byte inside a payload is invisible to bbolt; the record's CRC
// catches it and the record goes to the dead letters instead of upstream.
func TestDamagedPayloadIsQuarantined(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool.db")
	s := openT(t, dir, Options{NoSync: true})
	putN(t, s, 0, 50, 3000) // > page/4: stored on overflow pages
	putN(t, s, 50, 50, 200) // stored inline in leaf pages
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, segName(1))
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []int{7, 77} {
		i := bytes.Index(data, []byte(payload(seq, 10)[:16]))
		if i < 0 {
			t.Fatalf("payload %d not found in the file", seq)
		}
		writeAt(t, seg, []byte("X"), int64(i+20))
	}
	before := corruptRecords.Get()
	s = openT(t, dir, Options{NoSync: true})
	recs := all(t, s)
	if len(recs) != 98 {
		t.Fatalf("%d records returned, want 98", len(recs))
	}
	for _, r := range recs {
		seq := seqOf(t, r.Data)
		size := 3000
		if seq >= 50 {
			size = 200
		}
		if seq == 7 || seq == 77 || !bytes.Equal(r.Data, payload(seq, size)) {
			t.Fatalf("damaged record %d returned", seq)
		}
	}
	buried, err := s.Buried(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(buried) != 2 || !strings.Contains(buried[0].Reason, "checksum") {
		t.Fatalf("dead letters %+v, want the 2 damaged records", buried)
	}
	if got := corruptRecords.Get() - before; got != 2 {
		t.Fatalf("corrupt counter +%d, want +2", got)
	}
	if st := s.Stats(); st.Records != 98 || st.Buried != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// A crash in the middle of a salvage leaves <name>.salvage beside either the
// damaged file (salvage redone) or its set-aside copy (salvage completed).
func TestInterruptedSalvage(t *testing.T) {
	f := newDamageFixture(t)
	victim := f.segs[1]
	copyFile(t, victim, victim+salvageSuffix) // a "finished" salvage of an intact file
	if err := os.Rename(victim, victim+corruptMarker+"20250101T000000Z"); err != nil {
		t.Fatal(err)
	}
	other := f.segs[2]
	if err := os.WriteFile(other+salvageSuffix, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := openWithin(t, f.dir, withQuietLog(f.opts), 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Stats().Records; n != int64(len(f.ids)) {
		t.Fatalf("%d records, want %d", n, len(f.ids))
	}
	if _, err := os.Stat(other + salvageSuffix); !os.IsNotExist(err) {
		t.Fatalf("stale partial salvage left: %v", err)
	}
	if rep := s.Report(); len(rep.Damaged) != 0 || len(rep.SetAsideEarlier) != 1 {
		t.Fatalf("report %+v", rep)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// The newest copy of a segment's meta bucket is the one with the highest
// next ID and, among those, the lowest count; without one, the ID range
// bounds the loss.
func TestLostEstimate(t *testing.T) {
	type copyOf struct {
		next  uint64
		count int64
	}
	for _, tc := range []struct {
		name       string
		copies     []copyOf
		headerSeq  uint64
		nextSeen   uint64
		records    int64
		floor, end uint64
		want       int64
		how        LostEstimate
	}{
		{"newest copy: highest next", []copyOf{{110, 10}, {150, 40}, {130, 30}}, 0, 0, 25, 100, 0, 15, LostCounted},
		{"same next: deletes came last", []copyOf{{150, 40}, {150, 12}, {150, 20}}, 0, 0, 10, 100, 0, 2, LostCounted},
		{"salvage found deleted records too", []copyOf{{150, 5}}, 0, 0, 9, 100, 200, 0, LostCounted},
		{"no count: the next segment's floor", nil, 0, 0, 30, 100, 180, 50, LostAtMost},
		{"no count: dead letters' sequence", nil, 70, 0, 30, 0, 0, 40, LostAtMost},
		{"nothing known", nil, 0, 0, 3, 100, 0, -1, LostUnknown},
		{"no count: a copy of the next ID", nil, 0, 110, 3, 100, 0, 7, LostAtMost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := salvageResult{records: tc.records, headerSeq: tc.headerSeq, nextSeen: tc.nextSeen}
			for _, c := range tc.copies {
				r.noteMeta(c.next, c.count)
			}
			got, how := r.lost(tc.floor, tc.end)
			if got != tc.want || how != tc.how {
				t.Fatalf("lost = %d (%v), want %d (%v)", got, how, tc.want, tc.how)
			}
		})
	}
}

// syncBuffer is a log sink safe for the spool's goroutines and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
