package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// quietLog keeps expected recovery errors out of the test output; tests
// that care about the log pass their own.
var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func openT(t testing.TB, dir string, opts Options) *Spool {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLog
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func payload(i int, size int) []byte {
	p := fmt.Appendf(nil, "record-%08d|", i)
	for len(p) < size {
		p = append(p, byte('a'+i%26))
	}
	return p
}

func seqOf(t testing.TB, data []byte) int {
	t.Helper()
	var i int
	if _, err := fmt.Sscanf(string(data), "record-%08d|", &i); err != nil {
		t.Fatalf("record %.30q is not one the test wrote: %v", data, err)
	}
	return i
}

func putN(t testing.TB, s *Spool, from, n, size int) {
	t.Helper()
	ctx := context.Background()
	for i := from; i < from+n; i++ {
		if err := s.Put(ctx, payload(i, size)); err != nil {
			t.Fatalf("Put(%d): %v", i, err)
		}
	}
}

// all returns every record, oldest first, checking IDs strictly increase.
func all(t testing.TB, s *Spool) []Record {
	t.Helper()
	recs, err := s.Oldest(1 << 30)
	if err != nil {
		t.Fatalf("Oldest: %v", err)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].ID <= recs[i-1].ID {
			t.Fatalf("IDs not increasing: %d after %d", recs[i].ID, recs[i-1].ID)
		}
	}
	return recs
}

// drain deletes everything in batches, as the drainer will.
func drain(t testing.TB, s *Spool, batch int) int {
	t.Helper()
	n := 0
	for {
		recs, err := s.Oldest(batch)
		if err != nil {
			t.Fatalf("Oldest: %v", err)
		}
		if len(recs) == 0 {
			return n
		}
		ids := make([]uint64, len(recs))
		for i, r := range recs {
			ids[i] = r.ID
		}
		if err := s.Delete(ids...); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		n += len(recs)
	}
}

func TestFIFOAcrossReopen(t *testing.T) {
	for _, tc := range []struct {
		name    string
		segment int64
	}{
		{"one segment", 0},
		{"many segments", 64 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spool.db")
			opts := Options{SegmentSize: tc.segment, NoSync: true}
			s := openT(t, dir, opts)
			putN(t, s, 0, 600, 300)
			first := all(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s = openT(t, dir, opts)
			if st := s.Stats(); st.Records != 600 || st.Bytes != 600*300 {
				t.Fatalf("after reopen: %+v, want 600 records of 300 bytes", st)
			}
			if tc.segment > 0 && s.Stats().Segments < 3 {
				t.Fatalf("want several segments, got %d", s.Stats().Segments)
			}
			again := all(t, s)
			if len(again) != len(first) {
				t.Fatalf("got %d records after reopen, want %d", len(again), len(first))
			}
			for i := range again {
				if again[i].ID != first[i].ID || !bytes.Equal(again[i].Data, first[i].Data) || seqOf(t, again[i].Data) != i {
					t.Fatalf("record %d changed across reopen: %d %.20q vs %d %.20q", i, again[i].ID, again[i].Data, first[i].ID, first[i].Data)
				}
			}
			// Delete the first half, add more, reopen: still FIFO, new IDs above old ones.
			ids := make([]uint64, 300)
			for i := range ids {
				ids[i] = first[i].ID
			}
			if err := s.Delete(ids...); err != nil {
				t.Fatal(err)
			}
			putN(t, s, 600, 100, 300)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openT(t, dir, opts)
			recs := all(t, s)
			if len(recs) != 400 {
				t.Fatalf("got %d records, want 400", len(recs))
			}
			for i, r := range recs {
				if seqOf(t, r.Data) != 300+i {
					t.Fatalf("record %d is seq %d, want %d", i, seqOf(t, r.Data), 300+i)
				}
			}
			if recs[300].ID <= first[599].ID {
				t.Fatalf("new ID %d not above old %d", recs[300].ID, first[599].ID)
			}
		})
	}
}

func TestIDsNeverReusedAfterDrain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool.db")
	s := openT(t, dir, Options{NoSync: true})
	putN(t, s, 0, 10, 10)
	last := all(t, s)[9].ID
	drain(t, s, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{NoSync: true})
	putN(t, s, 10, 1, 10)
	if id := all(t, s)[0].ID; id <= last {
		t.Fatalf("ID %d reused (last before drain %d)", id, last)
	}
}

func TestGroupCommit(t *testing.T) {
	const putters, each = 64, 40
	s := openT(t, filepath.Join(t.TempDir(), "spool.db"), Options{}) // fsync on
	var wg sync.WaitGroup
	errs := make(chan error, putters*each)
	for g := 0; g < putters; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := s.Put(context.Background(), payload(g*each+i, 200)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Put: %v", err)
	}
	st := s.Stats()
	if st.Records != putters*each || st.Puts != putters*each {
		t.Fatalf("stats %+v, want %d records", st, putters*each)
	}
	if st.Commits*4 > st.Puts {
		t.Errorf("%d commits for %d puts: concurrent puts were not coalesced", st.Commits, st.Puts)
	}
	seen := make(map[int]bool)
	for _, r := range all(t, s) {
		i := seqOf(t, r.Data)
		if seen[i] {
			t.Fatalf("record %d stored twice", i)
		}
		seen[i] = true
	}
	if len(seen) != putters*each {
		t.Fatalf("found %d distinct records, want %d", len(seen), putters*each)
	}
	t.Logf("%d puts in %d commits (%.1f per commit)", st.Puts, st.Commits, float64(st.Puts)/float64(st.Commits))
}

func TestMaxBatchBoundsACommit(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "spool.db"), Options{MaxBatch: 4, NoSync: true})
	release := make(chan struct{})
	var once, releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	s.beforeCommit = func() { once.Do(func() { <-release }) }
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Put(context.Background(), payload(i, 10)); err != nil {
				t.Errorf("Put: %v", err)
			}
		}()
	}
	// Let the 19 others queue behind the held first commit.
	time.Sleep(100 * time.Millisecond)
	releaseOnce.Do(func() { close(release) })
	wg.Wait()
	if st := s.Stats(); st.Commits < 5 || st.Records != 20 {
		t.Fatalf("stats %+v: want ≥5 commits of ≤4 records for 20 puts", st)
	}
}

func TestPutBatchIsAtomic(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "spool.db"), Options{NoSync: true, MaxDiskSize: 1000})
	batch := [][]byte{payload(0, 100), payload(1, 100), payload(2, 100)}
	if err := s.PutBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	recs := all(t, s)
	if len(recs) != 3 || recs[1].ID != recs[0].ID+1 || recs[2].ID != recs[1].ID+1 {
		t.Fatalf("batch not stored with consecutive IDs: %+v", recs)
	}
	big := make([][]byte, 10)
	for i := range big {
		big[i] = payload(10+i, 100)
	}
	if err := s.PutBatch(context.Background(), big); !errors.Is(err, ErrFull) {
		t.Fatalf("oversized batch: %v, want ErrFull", err)
	}
	if n := len(all(t, s)); n != 3 {
		t.Fatalf("a rejected batch stored records: %d", n)
	}
}

func TestErrFull(t *testing.T) {
	const size = 1000
	cost := recordCost(size)
	for _, tc := range []struct {
		name    string
		max     int64
		fits    int // puts of `size` bytes that succeed
		oneSize int // a single record that must be rejected, 0 = none
	}{
		{"room for three", 3*cost + cost/2, 3, 0},
		{"exactly three", 3 * cost, 3, 0},
		{"record larger than the cap", 2 * cost, 2, 3 * size},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openT(t, filepath.Join(t.TempDir(), "spool.db"), Options{MaxDiskSize: tc.max, NoSync: true})
			ctx := context.Background()
			if tc.oneSize > 0 {
				if err := s.Put(ctx, make([]byte, tc.oneSize)); !errors.Is(err, ErrFull) {
					t.Fatalf("oversized record: %v, want ErrFull", err)
				}
			}
			for i := 0; i < tc.fits; i++ {
				if err := s.Put(ctx, payload(i, size)); err != nil {
					t.Fatalf("Put %d: %v", i, err)
				}
			}
			before := rejectedFull.Get()
			err := s.Put(ctx, payload(99, size))
			if got := rejectedFull.Get() - before; got != 1 {
				t.Errorf("full-rejection counter +%d, want +1", got)
			}
			if !errors.Is(err, ErrFull) {
				t.Fatalf("Put past the cap: %v, want ErrFull", err)
			}
			if !strings.Contains(err.Error(), "max_disk_size") {
				t.Errorf("error %q does not say which limit", err)
			}
			if !s.Full() {
				t.Fatal("Full() = false after a rejection")
			}
			if st := s.Stats(); st.Records != int64(tc.fits) {
				t.Fatalf("%d records stored, want %d", st.Records, tc.fits)
			}
			// Deleting one frees room for one.
			recs := all(t, s)
			if err := s.Delete(recs[0].ID); err != nil {
				t.Fatal(err)
			}
			if s.Full() && tc.max-int64(tc.fits-1)*cost >= cost {
				t.Fatal("Full() still true after a delete made room")
			}
			if err := s.Put(ctx, payload(100, size)); err != nil {
				t.Fatalf("Put after delete: %v", err)
			}
			// Reopening keeps the accounting.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := openT(t, s.dir, Options{MaxDiskSize: tc.max, NoSync: true})
			if err := s2.Put(ctx, payload(101, size)); !errors.Is(err, ErrFull) {
				t.Fatalf("after reopen: Put past the cap: %v, want ErrFull", err)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "spool.db"), Options{NoSync: true, SegmentSize: 32 << 10})
	putN(t, s, 0, 300, 500)
	recs := all(t, s)
	if s.Stats().Segments < 3 {
		t.Fatalf("want several segments, got %d", s.Stats().Segments)
	}
	// Every third record, spread over all segments, plus unknown IDs.
	var ids []uint64
	want := make(map[int]bool)
	for i, r := range recs {
		if i%3 == 0 {
			ids = append(ids, r.ID)
		} else {
			want[i] = true
		}
	}
	ids = append(ids, 0, recs[len(recs)-1].ID+1000)
	if err := s.Delete(ids...); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ids...); err != nil { // again: idempotent
		t.Fatal(err)
	}
	if err := s.Delete(); err != nil {
		t.Fatal(err)
	}
	left := all(t, s)
	if len(left) != len(want) {
		t.Fatalf("%d records left, want %d", len(left), len(want))
	}
	for _, r := range left {
		if !want[seqOf(t, r.Data)] {
			t.Fatalf("deleted record %d still there", seqOf(t, r.Data))
		}
	}
	if st := s.Stats(); st.Records != int64(len(want)) || st.Bytes != int64(len(want))*500 {
		t.Fatalf("stats %+v after delete, want %d records", st, len(want))
	}
}

func dirBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

func TestDiskReclaimedAfterDrain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool.db")
	const segSize = 2 << 20
	s := openT(t, dir, Options{NoSync: true, SegmentSize: segSize})
	const n, size = 5000, 10 << 10 // ~50 MiB
	batch := make([][]byte, 0, 50)
	for i := 0; i < n; i++ {
		batch = append(batch, payload(i, size))
		if len(batch) == cap(batch) {
			if err := s.PutBatch(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	full := s.Stats()
	if full.DiskBytes < n*size || dirBytes(t, dir) < n*size {
		t.Fatalf("after writing %d MiB: %+v, directory %d bytes", n*size>>20, full, dirBytes(t, dir))
	}
	if full.Segments < 20 {
		t.Fatalf("want ≥20 segments of %d bytes, got %d", segSize, full.Segments)
	}

	// Half drained: roughly half the disk is back.
	recs, err := s.Oldest(n / 2)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]uint64, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	if err := s.Delete(ids...); err != nil {
		t.Fatal(err)
	}
	half := s.Stats()
	if half.DiskBytes > full.DiskBytes*6/10 {
		t.Fatalf("half drained: disk %d bytes, was %d", half.DiskBytes, full.DiskBytes)
	}

	drain(t, s, 100)
	empty := s.Stats()
	if empty.Records != 0 || empty.Bytes != 0 {
		t.Fatalf("drained spool reports %+v", empty)
	}
	if empty.Segments != 1 || empty.DiskBytes > 1<<20 || dirBytes(t, dir) > 1<<20 {
		t.Fatalf("drained: %+v, directory %d bytes; want one small segment", empty, dirBytes(t, dir))
	}
	t.Logf("disk: %d MiB full, %d MiB half drained, %d KiB drained", full.DiskBytes>>20, half.DiskBytes>>20, empty.DiskBytes>>10)

	// It still works, and a reopen agrees.
	putN(t, s, n, 10, 100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{NoSync: true, SegmentSize: segSize})
	if got := len(all(t, s)); got != 10 {
		t.Fatalf("after reopen %d records, want 10", got)
	}
}

func TestPutCanceled(t *testing.T) {
	t.Run("before the call", func(t *testing.T) {
		s := openT(t, filepath.Join(t.TempDir(), "spool.db"), Options{NoSync: true})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Put(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
			t.Fatalf("Put: %v, want context.Canceled", err)
		}
		if n := s.Stats().Records; n != 0 {
			t.Fatalf("%d records stored", n)
		}
	})
	t.Run("while queued", func(t *testing.T) {
		s := openT(t, filepath.Join(t.TempDir(), "spool.db"), Options{NoSync: true})
		entered, release := make(chan struct{}), make(chan struct{})
		var once, releaseOnce sync.Once
		// Registered after openT's cleanup, so it runs first: a failing test
		// must not leave Close waiting for a held committer.
		t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
		s.beforeCommit = func() {
			once.Do(func() {
				close(entered)
				<-release
			})
		}
		first := make(chan error, 1)
		go func() { first <- s.Put(context.Background(), payload(1, 10)) }()
		<-entered // the committer holds the first put
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := s.Put(ctx, payload(2, 10))
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not stored") {
			t.Fatalf("queued Put: %v, want a 'not stored' deadline error", err)
		}
		if st, want := s.Stats(), recordCost(len(payload(1, 10))); st.Pending != want {
			t.Fatalf("pending %d after the cancel, want only the first put's %d", st.Pending, want)
		}
		releaseOnce.Do(func() { close(release) })
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		// A later put flushes the queue past the canceled one.
		putN(t, s, 3, 1, 10)
		recs := all(t, s)
		if len(recs) != 2 || seqOf(t, recs[0].Data) != 1 || seqOf(t, recs[1].Data) != 3 {
			t.Fatalf("records %v: the canceled put must not be stored", recs)
		}
		if st := s.Stats(); st.Pending != 0 {
			t.Fatalf("pending %d, want 0", st.Pending)
		}
	})
}

func TestClosed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool.db")
	s, err := Open(dir, Options{NoSync: true, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	putN(t, s, 0, 3, 10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for name, err := range map[string]error{
		"Put":          s.Put(context.Background(), []byte("x")),
		"Delete":       s.Delete(1),
		"Bury":         s.Bury(context.Background(), []byte("x"), "r"),
		"DeleteBuried": s.DeleteBuried(1),
		"Oldest":       func() error { _, err := s.Oldest(1); return err }(),
		"Buried":       func() error { _, err := s.Buried(1); return err }(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	// Close released the lock.
	s2 := openT(t, dir, Options{NoSync: true})
	if n := s2.Stats().Records; n != 3 {
		t.Fatalf("%d records after reopen, want 3", n)
	}
}

func TestCloseCommitsQueuedPuts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool.db")
	s, err := Open(dir, Options{NoSync: true, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Put(context.Background(), payload(i, 50)); err == nil {
				mu.Lock()
				acked++
				mu.Unlock()
			} else if !errors.Is(err, ErrClosed) {
				t.Errorf("Put: %v", err)
			}
		}()
	}
	time.Sleep(time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	s = openT(t, dir, Options{NoSync: true})
	if n := s.Stats().Records; n != int64(acked) {
		t.Fatalf("%d records after reopen, %d puts acknowledged", n, acked)
	}
}

func TestBury(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool.db")
	opts := Options{NoSync: true, MaxBuried: 3, MaxBuriedBytes: 1 << 20}
	s := openT(t, dir, opts)
	before := deadRefused.Get()
	for i := 0; i < 5; i++ {
		err := s.Bury(context.Background(), payload(i, 100), fmt.Sprintf("upstream answered 400 (%d)", i))
		switch {
		case i < 3 && err != nil:
			t.Fatal(err)
		case i >= 3 && !errors.Is(err, ErrDeadFull):
			t.Fatalf("bury %d past the cap: err = %v, want ErrDeadFull", i, err)
		}
	}
	if got := deadRefused.Get() - before; got != 2 {
		t.Errorf("refused counter +%d, want +2", got)
	}
	if !s.DeadFull() {
		t.Error("DeadFull() = false at the cap")
	}
	check := func(s *Spool) {
		t.Helper()
		if st := s.Stats(); st.Buried != 3 || st.BuriedBytes != 300 || st.Records != 0 {
			t.Fatalf("stats %+v, want 3 buried and no live records", st)
		}
		recs, err := s.Buried(10)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 3 {
			t.Fatalf("Buried: %d records, want 3", len(recs))
		}
		// Nothing was evicted: the first three are kept.
		for i, r := range recs {
			if seqOf(t, r.Data) != i || r.Reason != fmt.Sprintf("upstream answered 400 (%d)", i) ||
				time.Since(r.BuriedAt) > time.Minute {
				t.Fatalf("dead letter %d: %+v", i, r)
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, opts)
	check(s)
	recs, _ := s.Buried(1)
	if err := s.DeleteBuried(recs[0].ID, 12345); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Buried != 2 || s.DeadFull() {
		t.Fatalf("after DeleteBuried: %+v, full %v", st, s.DeadFull())
	}

	// The byte cap refuses too, but empty dead letters take even an
	// envelope larger than the cap (else it would be held forever).
	s2 := openT(t, filepath.Join(t.TempDir(), "spool.db"), Options{NoSync: true, MaxBuriedBytes: 250})
	if err := s2.Bury(context.Background(), payload(0, 400), "r"); err != nil {
		t.Fatalf("oversized bury into empty dead letters: %v", err)
	}
	if err := s2.Bury(context.Background(), payload(1, 10), "r"); !errors.Is(err, ErrDeadFull) {
		t.Fatalf("bury past the byte cap: %v", err)
	}
	if recs, _ := s2.Buried(10); len(recs) != 1 || seqOf(t, recs[0].Data) != 0 {
		t.Fatalf("after refusals: %d dead letters", len(recs))
	}
}

func TestLockTimeout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool.db")
	s := openT(t, dir, Options{NoSync: true})
	putN(t, s, 0, 5, 10)

	start := time.Now()
	_, err := Open(dir, Options{LockTimeout: 200 * time.Millisecond, Logger: quietLog})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "spool: "+dir+" is locked by another process") {
		t.Fatalf("second Open: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("second Open took %s", d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A segment locked by some other bbolt user (the directory lock is free).
	seg := filepath.Join(dir, segName(1))
	other, err := openBolt(seg, &boltOptionsForTest)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	start = time.Now()
	_, err = Open(dir, Options{LockTimeout: 200 * time.Millisecond, Logger: quietLog})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "spool: "+seg+" is locked by another process") {
		t.Fatalf("Open with a locked segment: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Open took %s", d)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{})
	if n := s.Stats().Records; n != 5 {
		t.Fatalf("%d records, want 5", n)
	}
}

func TestOpenRejectsAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{Logger: quietLog}); err == nil || !strings.Contains(err.Error(), "is a file") {
		t.Fatalf("Open on a file: %v", err)
	}
}

var boltOptionsForTest = bolt.Options{Timeout: time.Second}
