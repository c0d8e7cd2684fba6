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
