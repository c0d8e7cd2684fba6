package stream

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkPublish: many goroutines (like concurrent HTTP handlers) each
// publishing 1 KiB envelopes and waiting for the PubAck, on an embedded
// server with the default sync interval and with sync "always". "inprocess"
// is what Publish does with the embedded server (the store on the
// publisher's goroutine, pubinproc.go); "boxed" what it does with an
// external one (over the connection, a reply box per publish, pubreply.go);
// "async" is the library's async publish (one shared reply subscription and
// its dispatcher) and "sync" its request/reply publish, for comparison.
// Reports msgs/s.
//
//	go test -run '^$' -bench BenchmarkPublish -benchtime 5s ./internal/stream/
func BenchmarkPublish(b *testing.B) {
	for _, sync := range []string{"default", "always", "native-always"} {
		for _, mode := range []string{"inprocess", "boxed", "async", "sync"} {
			for _, par := range []int{1, 64} {
				b.Run(fmt.Sprintf("sync=%s/mode=%s/conc=%d", sync, mode, par), func(b *testing.B) {
					benchPublish(b, sync, mode, par)
				})
			}
		}
	}
}

func benchPublish(b *testing.B, sync, mode string, conc int) {
	cfg := Config{StoreDir: b.TempDir()}
	switch sync {
	case "always":
		cfg.Sync = "always"
	case "native-always":
		cfg.Sync, cfg.nativeSyncAlways = "always", true
	}
	c, err := Open(context.Background(), cfg, testLog(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.inProcess = mode == "inprocess"
	c.syncPublish = mode == "sync"
	c.libAsyncPublish = mode == "async"
	m := msgN(0)
	m.Envelope = bytes.Repeat([]byte("x"), 1024)
	var seq atomic.Int64
	rounds0, waiters0 := syncRounds.Get(), syncWaiters.Get()
	ctx := context.Background()
	b.SetBytes(1024)
	b.ResetTimer()
	// RunParallel starts SetParallelism × GOMAXPROCS goroutines; spread
	// conc over them (rounded up).
	b.SetParallelism(max(1, (conc+runtimeProcs()-1)/runtimeProcs()))
	if conc == 1 {
		for b.Loop() {
			if err := c.Publish(ctx, m, fmt.Sprintf("m-%d", seq.Add(1))); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := c.Publish(ctx, m, fmt.Sprintf("m-%d", seq.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if n := syncRounds.Get() - rounds0; n > 0 {
		b.ReportMetric(float64(syncWaiters.Get()-waiters0)/float64(n), "msgs/fsync")
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkPublishLarge: concurrent publishes of 200 KB envelopes (the
// cmd/relay-load/memory.sh load). B/op is the garbage each large envelope
// costs on its way into the stream in this process: the encoding
// (MarshalBinary, ~200 KB), and over the connection ("boxed", what an
// external server gets; measured here against the embedded one) also the
// embedded nats-server's two copies of the payload (client.parse and the
// stream's copyBytes, ~400 KB), which the in-process store does not make.
//
//	go test -run '^$' -bench PublishLarge -benchmem ./internal/stream/
func BenchmarkPublishLarge(b *testing.B) {
	for _, mode := range []string{"inprocess", "boxed"} {
		b.Run("mode="+mode, func(b *testing.B) { benchPublishLarge(b, mode == "inprocess") })
	}
}

func benchPublishLarge(b *testing.B, inProcess bool) {
	c, err := Open(context.Background(), Config{StoreDir: b.TempDir()}, testLog(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.inProcess = inProcess
	m := msgN(0)
	m.Envelope = bytes.Repeat([]byte("x"), 200_000)
	var seq atomic.Int64
	ctx := context.Background()
	b.SetBytes(int64(len(m.Envelope)))
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			if err := c.Publish(ctx, m, fmt.Sprintf("l-%d", n)); err != nil {
				b.Error(err)
				return
			}
			if n%256 == 0 { // keep the store small: the stream is a work queue
				if err := c.stream.Purge(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		}
	})
}
