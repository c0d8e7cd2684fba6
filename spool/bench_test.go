package spool

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
)

// BenchmarkPut measures Put throughput with one caller (one commit per put)
// and with 64 concurrent callers (group commit), with and without fsync.
// Durability: "fsync" survives power loss, "nosync" only the death of the
// process (see shared/docs/durability.md).
//
//	go test -run '^$' -bench BenchmarkPut -benchtime 3s ./spool
func BenchmarkPut(b *testing.B) {
	data := make([]byte, 1024)
	for i := range data {
		data[i] = byte(i)
	}
	for _, sync := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"nosync", true}} {
		for _, mode := range []struct {
			name     string
			parallel bool
		}{{"serial", false}, {"parallel64", true}} {
			b.Run(mode.name+"/"+sync.name, func(b *testing.B) {
				s := openT(b, filepath.Join(b.TempDir(), "spool.db"), Options{NoSync: sync.noSync})
				ctx := context.Background()
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				b.ResetTimer()
				if mode.parallel {
					// 64 callers whatever GOMAXPROCS is: the worker pool's size.
					b.SetParallelism(max(1, 64/runtimeProcs()))
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := s.Put(ctx, data); err != nil {
								b.Error(err)
								return
							}
						}
					})
				} else {
					for i := 0; i < b.N; i++ {
						if err := s.Put(ctx, data); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StopTimer()
				st := s.Stats()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
				if st.Commits > 0 {
					b.ReportMetric(float64(st.Puts)/float64(st.Commits), "puts/commit")
				}
			})
		}
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkDrain measures a drain's spool side — Oldest(100) then Delete of
// those, as the worker's pass does — on 1.4 KB records (nosync), with the
// segment maps' pages dropped at the default cadence (pages.go) and never:
// the cost of the drops is the difference, within one run.
//
//	go test -run '^$' -bench BenchmarkDrain -benchtime 200000x ./spool
func BenchmarkDrain(b *testing.B) {
	data := make([]byte, 1400)
	for i := range data {
		data[i] = byte(i)
	}
	for _, tc := range []struct {
		name      string
		dropEvery int64
	}{{"drops-off", 0}, {"drops-default", dropMappedEvery}} {
		b.Run(tc.name, func(b *testing.B) {
			s := openT(b, filepath.Join(b.TempDir(), "spool.db"), Options{NoSync: true})
			s.dropEvery = tc.dropEvery
			ctx := context.Background()
			batch := make([][]byte, 0, 128)
			for i := 0; i < b.N; i++ {
				if batch = append(batch, data); len(batch) == cap(batch) || i == b.N-1 {
					if err := s.PutBatch(ctx, batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			drops := mappedDrops.Get()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			drained := 0
			for drained < b.N {
				recs, err := s.Oldest(100)
				if err != nil {
					b.Fatal(err)
				}
				if len(recs) == 0 {
					b.Fatalf("drained %d of %d", drained, b.N)
				}
				ids := make([]uint64, len(recs))
				for i, r := range recs {
					ids[i] = r.ID
				}
				if err := s.Delete(ids...); err != nil {
					b.Fatal(err)
				}
				drained += len(recs)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(mappedDrops.Get()-drops), "drops")
		})
	}
}

// BenchmarkPutLarge: 16 concurrent Puts of 200 KB records (nosync), the
// worker moving a backlog of large envelopes into the spool. B/op is the
// garbage a large record costs: the commit's values arena (a copy of the
// record) and bbolt's page buffers (another). Puts only — reading records
// back copies them — so run it with a bounded count: every put stays on
// disk until the benchmark ends.
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
