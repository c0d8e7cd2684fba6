//go:build linux

package spool

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// mappedRss returns the resident bytes of this process's mappings of the
// files at paths, from /proc/self/smaps: the pages the kernel counts in
// VmRSS for them (not whether they are in the page cache, which mincore
// would answer).
func mappedRss(t testing.TB, paths ...string) int64 {
	t.Helper()
	want := make(map[string]bool, len(paths))
	for _, p := range paths {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		want[p] = true
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatalf("open smaps: %v", err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		// A mapping's header: "start-end perms offset dev inode [path]".
		if strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && want[fields[5]]
			continue
		}
		if in && fields[0] == "Rss:" && len(fields) >= 2 {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				t.Fatalf("smaps Rss %q: %v", sc.Text(), err)
			}
			total += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read smaps: %v", err)
	}
	return total
}

func segPaths(s *Spool) []string {
	s.segMu.RLock()
	defer s.segMu.RUnlock()
	var ps []string
	for _, seg := range s.segs {
		ps = append(ps, seg.path)
	}
	return ps
}

func putBatches(t testing.TB, s *Spool, n, size int) {
	t.Helper()
	for i := 0; i < n; i += 64 {
		var datas [][]byte
		for j := i; j < min(i+64, n); j++ {
			datas = append(datas, payload(j, size))
		}
		if err := s.PutBatch(context.Background(), datas); err != nil {
			t.Fatalf("PutBatch at %d: %v", i, err)
		}
	}
}

// checkAll reads every record and checks it is the test's record i.
func checkAll(t *testing.T, s *Spool, n, size int) {
	t.Helper()
	recs := all(t, s)
	if len(recs) != n {
		t.Fatalf("read %d records, want %d", len(recs), n)
	}
	for i, r := range recs {
		if !bytes.Equal(r.Data, payload(i, size)) {
			t.Fatalf("record %d (ID %d) reads back different: %.30q", i, r.ID, r.Data)
		}
	}
}

// TestDropMappedPages: after a read of a large segment its pages are mapped
// (counted in the process's RSS); dropMapped unmaps them, and the data
// still reads back identical (it stayed in the page cache and the file).
func TestDropMappedPages(t *testing.T) {
	const n, size = 1024, 32 << 10 // 32 MiB in one segment
	s := openT(t, filepath.Join(t.TempDir(), "spool"), Options{NoSync: true, SegmentSize: 256 << 20})
	s.dropEvery = 0 // only the explicit drops below
	putBatches(t, s, n, size)
	paths := segPaths(s)
	if len(paths) != 1 {
		t.Fatalf("%d segments, want 1", len(paths))
	}

	checkAll(t, s, n, size)
	before := mappedRss(t, paths...)
	if before < 24<<20 {
		t.Fatalf("after reading 32 MiB the segment's mapped RSS is %d KiB; the test cannot see a drop", before>>10)
	}
	drops := mappedDrops.Get()
	s.dropMapped()
	after := mappedRss(t, paths...)
	t.Logf("segment mapped RSS: %d KiB after the read, %d KiB after the drop", before>>10, after>>10)
	if after > 1<<20 {
		t.Fatalf("mapped RSS after the drop is %d KiB, want under 1 MiB (was %d KiB)", after>>10, before>>10)
	}
	if got := mappedDrops.Get(); got != drops+1 {
		t.Errorf("relay_spool_mapped_drops_total went from %d to %d, want +1", drops, got)
	}
	// The same bytes come back from the page cache (or the file).
	checkAll(t, s, n, size)
	if again := mappedRss(t, paths...); again < 24<<20 {
		t.Errorf("reading again mapped only %d KiB: did the read happen?", again>>10)
	}
}

// TestDrainMappedPagesBounded drains a spool of several segments oldest
// first (read, delete) and samples the mapped RSS of its segment files
// after every batch: with the drops on, it stays near dropEvery; with them
// off (dropEvery 0, the previous behaviour), the whole segment being
// drained stays mapped. Every record is read once, in order, identical.
func TestDrainMappedPagesBounded(t *testing.T) {
	const n, size, batch = 1536, 32 << 10, 64 // 48 MiB, 2 MiB per batch
	for _, tc := range []struct {
		name      string
		dropEvery int64
		wantMax   func(peak int64) bool
		want      string
	}{
		{"drops off", 0, func(peak int64) bool { return peak >= 24<<20 }, "at least 24 MiB (a segment's worth)"},
		{"drops every 4 MiB", 4 << 20, func(peak int64) bool { return peak <= 12<<20 }, "at most 12 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spool")
			s := openT(t, dir, Options{NoSync: true, SegmentSize: 32 << 20})
			s.dropEvery = tc.dropEvery
			putBatches(t, s, n, size)
			// The puts' own pages are not the subject here.
			s.dropMapped()
			var peak int64
			next := 0
			for {
				recs, err := s.Oldest(batch)
				if err != nil {
					t.Fatalf("Oldest: %v", err)
				}
				if len(recs) == 0 {
					break
				}
				ids := make([]uint64, 0, len(recs))
				for _, r := range recs {
					if !bytes.Equal(r.Data, payload(next, size)) {
						t.Fatalf("record %d (ID %d) reads back different: %.30q", next, r.ID, r.Data)
					}
					next++
					ids = append(ids, r.ID)
				}
				// Sample before the delete: a segment emptied by it is closed.
				peak = max(peak, mappedRss(t, segPaths(s)...))
				if err := s.Delete(ids...); err != nil {
					t.Fatalf("Delete: %v", err)
				}
			}
			if next != n {
				t.Fatalf("drained %d records, want %d", next, n)
			}
			t.Logf("peak mapped RSS of the segments while draining: %d KiB", peak>>10)
			if !tc.wantMax(peak) {
				t.Fatalf("peak mapped RSS %d KiB, want %s", peak>>10, tc.want)
			}
		})
	}
}

// One long read — a drain pass's first, which takes 32 records whatever
// their size — drops its pages as it goes: when it returns, about
// dropEvery of what it read is mapped, not all of it.
func TestLongReadDropsAsItGoes(t *testing.T) {
	const n, size = 768, 32 << 10 // 24 MiB in one read
	for _, tc := range []struct {
		name      string
		dropEvery int64
		ok        func(mapped int64) bool
		want      string
	}{
		{"drops off", 0, func(m int64) bool { return m >= 20<<20 }, "at least 20 MiB"},
		{"drops every 4 MiB", 4 << 20, func(m int64) bool { return m <= 8<<20 }, "at most 8 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openT(t, filepath.Join(t.TempDir(), "spool"), Options{NoSync: true, SegmentSize: 64 << 20})
			s.dropEvery = tc.dropEvery
			putBatches(t, s, n, size)
			s.dropMapped() // the puts' own pages are not the subject here
			recs, bad, _, err := s.readOldest(0, n)
			if err != nil || len(bad) > 0 || len(recs) != n {
				t.Fatalf("readOldest: %d records, %d bad, %v; want %d records", len(recs), len(bad), err, n)
			}
			for i, r := range recs {
				if !bytes.Equal(r.Data, payload(i, size)) {
					t.Fatalf("record %d reads back different: %.30q", i, r.Data)
				}
			}
			mapped := mappedRss(t, segPaths(s)...)
			t.Logf("mapped RSS of the segments after one %d MiB read: %d KiB", n*size>>20, mapped>>10)
			if !tc.ok(mapped) {
				t.Fatalf("mapped RSS %d KiB after the read, want %s", mapped>>10, tc.want)
			}
		})
	}
}
