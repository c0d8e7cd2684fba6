package ingest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/stream"
)

// BenchmarkGrouper measures ingest's publish with and without the group
// publish: 64 goroutines (64 concurrent requests for one project, as
// relay-load drives) each publish 1 KiB envelopes through the Publisher
// ingest would use, into a real embedded JetStream with the relay's stream
// config. off is the stream itself (jetstream.publish_group_max: 1);
// inflight=N is the Grouper with N publishes in flight per project.
//
// ns/op is per envelope; cpu-µs/env is the process's user+system CPU (the
// embedded nats-server runs in it, as in the relay) divided by envelopes,
// the figure to compare on a shared machine; env/publish is the mean group.
//
//	go test -run '^$' -bench BenchmarkGrouper -count 6 ./ingest/ | tee grouper.txt
//	benchstat -col /pub grouper.txt
func BenchmarkGrouper(b *testing.B) {
	for _, syncMode := range []string{"default", "always"} {
		for _, pub := range []string{"off", "inflight=1", "inflight=2"} {
			b.Run(fmt.Sprintf("sync=%s/pub=%s", syncMode, pub), func(b *testing.B) {
				benchGrouper(b, syncMode, pub)
			})
		}
	}
}

func benchGrouper(b *testing.B, syncMode, pub string) {
	cfg := stream.Config{StoreDir: b.TempDir()}
	if syncMode == "always" {
		cfg.Sync = "always"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	conn, err := stream.Open(ctx, cfg, testLogger(b))
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	var p Publisher = conn
	switch pub {
	case "inflight=1":
		p = NewGrouper(conn, GroupConfig{MaxInFlight: 1})
	case "inflight=2":
		p = NewGrouper(conn, GroupConfig{MaxInFlight: 2})
	}
	publishes := func() uint64 {
		return publishesAlone.Get() + publishesSingle.Get() + publishesGroup.Get()
	}

	const workers = 64
	var (
		left  atomic.Int64
		wg    sync.WaitGroup
		first atomic.Pointer[error]
	)
	left.Store(int64(b.N))
	b.SetBytes(1024)
	b.ReportAllocs()
	p0 := publishes()
	cpu0 := rusageCPU(b)
	b.ResetTimer()
	for w := range workers {
		wg.Go(func() {
			m := member(w, 1024)
			m.ProjectID = 42
			m.UserAgent = "sentry.python/2.19.0"
			m.ForwardedFor = "10.0.0.1, 127.0.0.1"
			for left.Add(-1) >= 0 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := p.Publish(ctx, m, newRandomID())
				cancel()
				if err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err := first.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(rusageCPU(b)-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/env")
	if pub != "off" {
		b.ReportMetric(float64(b.N)/float64(max(1, publishes()-p0)), "env/publish")
	}
}

// rusageCPU is the process's user+system CPU time so far.
func rusageCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// nopPublisher acknowledges everything at once: it isolates the Grouper's
// own cost.
type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, *stream.Message, string) error { return nil }
func (nopPublisher) PublishBuilt(context.Context, *stream.GroupBuilder, string) error {
	return nil
}
func (nopPublisher) MaxPayload() int64 { return 1 << 20 }

// BenchmarkGrouperAlone is what the Grouper adds to a lone request (nothing
// in flight for its project: the one-connection case), against a publisher
// that costs nothing: the lock, the project's entry, the metrics.
//
//	go test -run '^$' -bench BenchmarkGrouperAlone ./ingest/
func BenchmarkGrouperAlone(b *testing.B) {
	g := NewGrouper(nopPublisher{}, GroupConfig{})
	m := member(1, 1024)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := g.Publish(ctx, m, "id"); err != nil {
			b.Fatal(err)
		}
	}
}
