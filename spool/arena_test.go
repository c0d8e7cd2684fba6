package spool

import (
	"context"
	"path/filepath"
	"testing"
)

// TestCommitArenaReuseKeepsRecords: consecutive put commits reuse one values'
// arena (committer.go), each overwriting what the previous commit wrote into
// it, large batches after small ones and the other way round. Every record
// must read back as it was put, before and after the spool is closed and
// reopened: bbolt must hold no reference to a committed value.
func TestCommitArenaReuseKeepsRecords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool.db")
	opts := Options{SegmentSize: 4 << 20, NoSync: true, Logger: quietLog}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[int]int{} // seq -> size
	seq := 0
	for _, batch := range []struct{ n, size int }{
		{4, 200_000}, {20, 300}, {1, 900_000}, {8, 50_000}, {3, 10}, {2, 200_001}, {30, 4000}, {1, 17 << 20},
	} {
		datas := make([][]byte, batch.n)
		for i := range datas {
			datas[i] = payload(seq, batch.size)
			sizes[seq] = batch.size
			seq++
		}
		if err := s.PutBatch(context.Background(), datas); err != nil {
			t.Fatalf("PutBatch of %d × %d bytes: %v", batch.n, batch.size, err)
		}
	}
	check := func(when string, s *Spool) {
		t.Helper()
		recs := all(t, s)
		if len(recs) != len(sizes) {
			t.Fatalf("%s: %d records, want %d", when, len(recs), len(sizes))
		}
		for _, r := range recs {
			i := seqOf(t, r.Data)
			if string(r.Data) != string(payload(i, sizes[i])) {
				t.Fatalf("%s: record %d (%d bytes) differs from what was put", when, i, sizes[i])
			}
		}
	}
	check("before the restart", s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, opts)
	check("after the restart", s)
}

// BenchmarkPutLarge: 16 concurrent Puts of 200 KB records (nosync), the
// worker moving a backlog of large envelopes into the spool; B/op shows the
// commit's values' arena (reused across commits) and bbolt's page buffers.
// Puts only (reading records back copies them): run it with a bounded count,
// every put stays on disk until the benchmark ends.
//
//	go test -run '^$' -bench PutLarge -benchmem -benchtime 2000x ./spool
func BenchmarkPutLarge(b *testing.B) {
	s := openT(b, filepath.Join(b.TempDir(), "spool.db"), Options{NoSync: true})
	data := payload(1, 200_000)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.SetParallelism(max(1, 16/runtimeProcs()))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Put(ctx, data); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
