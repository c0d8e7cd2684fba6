package worker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/testfixture"
	"github.com/relayhq/relay/internal/upstream"
	"github.com/relayhq/relay/spool"
)

// BenchmarkForward prices the worker's hot path on real parts: b.N
// envelopes (a real SDK error event) are published to an embedded
// JetStream before the timer starts, then a Worker with the relay's
// defaults (64 consumers, batches of 8, zstd) moves them to a fake Sentry
// on 127.0.0.1 until all arrived (forward), or — the upstream down, the
// outage grace 1 ms — into the spool until all are there (spool, with a
// 20 KB transaction: the outage path that moves a backlog out of the
// stream). ns/op is per envelope; cpu-µs/env is the
// process's user+system CPU per envelope over the run (the embedded
// nats-server and the fake Sentry run in it too, the same for either side
// of an A/B), the figure to compare — wall-clock rates move with whatever
// else the machine runs.
//
//	go test -run '^$' -bench BenchmarkForward -benchtime 5000x -count 6 ./worker/ | tee fwd.txt
func BenchmarkForward(b *testing.B) {
	b.Run("path=forward", func(b *testing.B) { benchForward(b, false) })
	b.Run("path=spool", func(b *testing.B) { benchForward(b, true) })
}

func benchForward(b *testing.B, toSpool bool) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	conn, err := stream.Open(ctx, stream.Config{StoreDir: b.TempDir(), AckWait: 30 * time.Second,
		FetchWait: 100 * time.Millisecond, Listen: "127.0.0.1:0"}, log)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	sp, err := spool.Open(filepath.Join(b.TempDir(), "spool.db"), spool.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sp.Close() }()
	up := fakesentry.New(fakesentry.Options{Logger: log, DropPayloads: true})
	defer up.Close()
	client, err := upstream.New(upstream.Config{URL: up.URL(), Encoding: upstream.EncodingZstd})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	env := testfixture.SDKFile(b, "go-event-exception.envelope")
	cfg := Config{AckWait: 30 * time.Second}
	if toSpool {
		env = testfixture.SDKFile(b, "browser-span-stream-pageload.envelope")
		cfg.OutageGracePeriod = time.Millisecond
		up.Down()
	}

	// Publish b.N envelopes, 64 at a time, outside the measurement.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < b.N; i += 64 {
				id := fmt.Sprintf("%032x", i+1)
				m := &stream.Message{ProjectID: testProject, PublicKey: keyA, Client: "sentry.go/0.50.0", Version: 7,
					UserAgent: "sentry-go/0.50.0", RemoteAddr: "127.0.0.1", ForwardedFor: "127.0.0.1",
					ReceivedAt: time.Now(), EventID: id, Envelope: env}
				if err := conn.Publish(ctx, m, id); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	cons, err := conn.Consumer(ctx, durable)
	if err != nil {
		b.Fatal(err)
	}
	w, err := New(cfg, cons, client, sp, log)
	if err != nil {
		b.Fatal(err)
	}

	b.ReportAllocs()
	ru0 := rusageCPU(b)
	b.ResetTimer()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	waitCtx, waitCancel := context.WithTimeout(ctx, 5*time.Minute)
	if toSpool {
		err = waitSpooled(waitCtx, sp, b.N)
	} else {
		_, err = up.WaitFor(waitCtx, b.N)
	}
	waitCancel()
	b.StopTimer()
	cpu := rusageCPU(b) - ru0
	cancel()
	if rerr := <-done; rerr != nil {
		b.Error(rerr)
	}
	if err != nil {
		b.Fatalf("%d of %d envelopes forwarded, %d spooled: %v", up.Count(), b.N, sp.Stats().Records, err)
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/env")
}

// waitSpooled waits until the spool holds n records.
func waitSpooled(ctx context.Context, sp *spool.Spool, n int) error {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for sp.Stats().Records < int64(n) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// rusageCPU is the user+system CPU this process has used so far.
func rusageCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
