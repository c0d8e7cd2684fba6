package spool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var errCut = errors.New("cut here (injected)")

// seqs returns the test sequence numbers of recs, in order.
func seqs(t testing.TB, recs []Record) []int {
	t.Helper()
	out := make([]int, len(recs))
	for i, r := range recs {
		out[i] = seqOf(t, r.Data)
	}
	return out
}

// fileSeqs returns the sequence numbers in a transfer file, or nil when there
// is no complete file at path.
func fileSeqs(t testing.TB, path string) []int {
	t.Helper()
	var out []int
	_, err := VerifyTransfer(path, func(d []byte) error {
		out = append(out, seqOf(t, d))
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("VerifyTransfer(%s): %v", path, err)
	}
	return out
}

func upTo(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// exactlyOnce fails unless got holds every number below n exactly once.
func exactlyOnce(t testing.TB, got []int, n int) {
	t.Helper()
	s := slices.Clone(got)
	slices.Sort(s)
	if !slices.Equal(s, upTo(n)) {
		seen := map[int]int{}
		for _, v := range got {
			seen[v]++
		}
		var lost, dup []int
		for i := range n {
			switch seen[i] {
			case 0:
				lost = append(lost, i)
			case 1:
			default:
				dup = append(dup, i)
			}
		}
		t.Fatalf("not exactly once: %d records, lost %v, duplicated %v", len(got), lost, dup)
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	const n = 700
	a := openT(t, t.TempDir(), Options{SegmentSize: 32 << 10, MaxBatch: 16, NoSync: true})
	putN(t, a, 0, n, 300)
	if a.Stats().Segments < 3 {
		t.Fatalf("want records over several segments, got %d", a.Stats().Segments)
	}
	file := filepath.Join(t.TempDir(), "carry.spool")
	var lastProgress uint64
	res, err := a.Export(ctx, file, func(w uint64) { lastProgress = w })
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if res.Records != n || lastProgress != n {
		t.Fatalf("exported %d records (progress %d), want %d", res.Records, lastProgress, n)
	}
	if st := a.Stats(); st.Records != 0 {
		t.Fatalf("the spool still holds %d records after the export", st.Records)
	}
	if _, err := os.Stat(file + partialSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the .partial file is still there: %v", err)
	}
	if _, err := a.Export(ctx, filepath.Join(t.TempDir(), "empty.spool"), nil); !errors.Is(err, ErrNothingToExport) {
		t.Fatalf("export of an empty spool: %v, want ErrNothingToExport", err)
	}
	if _, err := a.Export(ctx, file, nil); err == nil {
		t.Fatal("an export over an existing file was not refused")
	}

	bdir := t.TempDir()
	b := openT(t, bdir, Options{SegmentSize: 32 << 10, MaxBatch: 16, NoSync: true})
	putN(t, b, n, 5, 300) // the importing relay has its own backlog
	ir, err := b.Import(ctx, file, nil, nil)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if ir.Stored != n || ir.Before != 0 || ir.AlreadyImported() {
		t.Fatalf("Import = %+v, want %d stored", ir, n)
	}
	got := seqs(t, all(t, b))
	want := append(upTo(n + 5)[n:], upTo(n)...) // its own first, then the file's in order
	if !slices.Equal(got, want) {
		t.Fatalf("records after import not in order: %v...", got[:10])
	}

	// A second import of the same file stores nothing.
	ir, err = b.Import(ctx, file, nil, nil)
	if err != nil || !ir.AlreadyImported() {
		t.Fatalf("second Import = %+v, %v; want already imported", ir, err)
	}
	// Still nothing once the records were sent on (the segments holding the
	// import's progress removed) and the spool reopened.
	for _, r := range all(t, b) {
		if err := b.Delete(r.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openT(t, bdir, Options{SegmentSize: 32 << 10, MaxBatch: 16, NoSync: true})
	ir, err = b.Import(ctx, file, nil, nil)
	if err != nil || !ir.AlreadyImported() {
		t.Fatalf("Import after drain and reopen = %+v, %v; want already imported", ir, err)
	}
	if st := b.Stats(); st.Records != 0 {
		t.Fatalf("a repeated import stored %d records", st.Records)
	}
}

// TestExportInterrupted cuts an export at each of its steps, as a crash
// would, then reopens the spool (which finishes a committed export): every
// record is then in the spool or in the finished file, exactly once.
func TestExportInterrupted(t *testing.T) {
	const n = 300
	for _, tc := range []struct {
		step      string
		at        int  // cut at the at-th time the step is reached
		committed bool // the marker was written: the records belong to the file
	}{
		{"record", 150, false},
		{"written", 1, false},
		{"marked", 1, true},
		{"renamed", 1, true},
		{"deleted", 1, true},
	} {
		t.Run(tc.step, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(t.TempDir(), "carry.spool")
			opts := Options{SegmentSize: 32 << 10, MaxBatch: 16, NoSync: true, Logger: quietLog}
			a, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			putN(t, a, 0, n, 300)
			seen := 0
			a.exportHook = func(step string) error {
				if step == tc.step {
					if seen++; seen == tc.at {
						return errCut
					}
				}
				return nil
			}
			if _, err := a.Export(context.Background(), file, nil); !errors.Is(err, errCut) {
				t.Fatalf("Export: %v, want the injected cut", err)
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			a = openT(t, dir, opts) // finishes a committed export
			inSpool := seqs(t, all(t, a))
			inFile := fileSeqs(t, file)
			exactlyOnce(t, append(inSpool, inFile...), n)
			if tc.committed && len(inFile) != n {
				t.Fatalf("a committed export was not finished: %d records in the file", len(inFile))
			}
			if _, err := os.Stat(filepath.Join(dir, exportMarkerName)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the export marker is still there: %v", err)
			}
			if !tc.committed {
				// Run again, it completes.
				if _, err := a.Export(context.Background(), file, nil); err != nil {
					t.Fatalf("Export after the cut: %v", err)
				}
				exactlyOnce(t, append(seqs(t, all(t, a)), fileSeqs(t, file)...), n)
			}
		})
	}
}

// TestExportFileGone: a committed export whose file disappeared before the
// spool was reopened keeps its records (a duplicate later, never a loss).
func TestExportFileGone(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(t.TempDir(), "carry.spool")
	opts := Options{MaxBatch: 16, Logger: quietLog}
	a, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	putN(t, a, 0, 50, 100)
	a.exportHook = func(step string) error {
		if step == "renamed" {
			return errCut
		}
		return nil
	}
	if _, err := a.Export(context.Background(), file, nil); !errors.Is(err, errCut) {
		t.Fatalf("Export: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	a = openT(t, dir, opts)
	exactlyOnce(t, seqs(t, all(t, a)), 50)
}

// TestImportInterrupted cuts an import after a batch was committed but
// before the ledger has it, and after the ledger has it; the spool is then
// drained (its segments removed) and reopened, and the import run again:
// every record is stored exactly once.
func TestImportInterrupted(t *testing.T) {
	const n = 200
	for _, step := range []string{"committed", "imported"} {
		t.Run(step, func(t *testing.T) {
			ctx := context.Background()
			a := openT(t, t.TempDir(), Options{MaxBatch: 16, NoSync: true})
			putN(t, a, 0, n, 200)
			file := filepath.Join(t.TempDir(), "carry.spool")
			if _, err := a.Export(ctx, file, nil); err != nil {
				t.Fatal(err)
			}

			dir := t.TempDir()
			opts := Options{MaxBatch: 16, SegmentSize: 16 << 10, NoSync: true, Logger: quietLog}
			b, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			seen := 0
			b.exportHook = func(s string) error {
				if s == step {
					if seen++; seen == 5 {
						return errCut
					}
				}
				return nil
			}
			if _, err := b.Import(ctx, file, nil, nil); !errors.Is(err, errCut) {
				t.Fatalf("Import: %v, want the injected cut", err)
			}
			var sent []int // what "the upstream" got from b before the restart
			for _, r := range all(t, b) {
				sent = append(sent, seqOf(t, r.Data))
				if err := b.Delete(r.ID); err != nil {
					t.Fatal(err)
				}
			}
			if len(sent) != 5*16 {
				t.Fatalf("%d records stored before the cut, want %d", len(sent), 5*16)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			b = openT(t, dir, opts)
			res, err := b.Import(ctx, file, nil, nil)
			if err != nil {
				t.Fatalf("Import again: %v", err)
			}
			if res.Before != uint64(len(sent)) {
				t.Fatalf("Import again found %d stored before, want %d", res.Before, len(sent))
			}
			exactlyOnce(t, append(sent, seqs(t, all(t, b))...), n)
		})
	}
}

func TestImportRefusesDamage(t *testing.T) {
	ctx := context.Background()
	a := openT(t, t.TempDir(), Options{NoSync: true})
	putN(t, a, 0, 20, 100)
	file := filepath.Join(t.TempDir(), "carry.spool")
	if _, err := a.Export(ctx, file, nil); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func([]byte) []byte
	}{
		{"flipped payload byte", func(b []byte) []byte { b[transferHeaderLen+frameHeaderLen+5] ^= 1; return b }},
		{"no trailer", func(b []byte) []byte { return b[:len(b)-trailerLen] }},
		{"cut mid-record", func(b []byte) []byte { return append(b[:transferHeaderLen+50], b[len(b)-trailerLen:]...) }},
		{"record count", func(b []byte) []byte { b[len(b)-trailerLen+8]++; return b }},
		{"huge length", func(b []byte) []byte { b[transferHeaderLen+1] = 0xff; return b }},
		{"not a transfer file", func([]byte) []byte { return []byte("hello\n") }},
		{"empty", func([]byte) []byte { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.spool")
			if err := os.WriteFile(bad, tc.mod(slices.Clone(good)), 0o600); err != nil {
				t.Fatal(err)
			}
			b := openT(t, t.TempDir(), Options{})
			if _, err := b.Import(ctx, bad, nil, nil); !errors.Is(err, ErrBadTransfer) {
				t.Fatalf("Import of a damaged file: %v, want ErrBadTransfer", err)
			}
			if st := b.Stats(); st.Records != 0 {
				t.Fatalf("a damaged file stored %d records", st.Records)
			}
		})
	}
}

// TestImportFullResumes: an import stopped by max_disk_size goes on, without
// duplicates, once there is room.
func TestImportFullResumes(t *testing.T) {
	ctx := context.Background()
	a := openT(t, t.TempDir(), Options{NoSync: true})
	putN(t, a, 0, 100, 1000)
	file := filepath.Join(t.TempDir(), "carry.spool")
	if _, err := a.Export(ctx, file, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b, err := Open(dir, Options{MaxBatch: 10, MaxDiskSize: 50 * recordCost(1000), Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Import(ctx, file, nil, nil); !errors.Is(err, ErrFull) {
		t.Fatalf("Import into a small spool: %v, want ErrFull", err)
	}
	first := seqs(t, all(t, b))
	if len(first) != 50 {
		t.Fatalf("%d records stored before the spool was full, want 50", len(first))
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openT(t, dir, Options{MaxBatch: 10})
	res, err := b.Import(ctx, file, nil, nil)
	if err != nil || res.Before != 50 || res.Stored != 50 {
		t.Fatalf("Import with room = %+v, %v", res, err)
	}
	exactlyOnce(t, seqs(t, all(t, b)), 100)
}

// BenchmarkExportImport moves 20000 records of 1 KiB from one spool to a
// file and into another spool, with fsync (the defaults), and reports
// records per second for each half.
func BenchmarkExportImport(b *testing.B) {
	const n = 20000
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		a := openT(b, b.TempDir(), Options{})
		batch := make([][]byte, 0, 128)
		for i := range n {
			batch = append(batch, payload(i, 1024))
			if len(batch) == cap(batch) {
				if err := a.PutBatch(ctx, batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		if err := a.PutBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
		dst := openT(b, b.TempDir(), Options{})
		file := filepath.Join(b.TempDir(), "carry.spool")
		b.StartTimer()
		start := time.Now()
		if _, err := a.Export(ctx, file, nil); err != nil {
			b.Fatal(err)
		}
		exp := time.Since(start)
		start = time.Now()
		if _, err := dst.Import(ctx, file, nil, nil); err != nil {
			b.Fatal(err)
		}
		imp := time.Since(start)
		b.ReportMetric(n/exp.Seconds(), "exported/s")
		b.ReportMetric(n/imp.Seconds(), "imported/s")
	}
}
