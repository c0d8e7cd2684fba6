package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunBatch: every item of every batch is handled exactly once, batches
// run concurrently, a batch returns only after all of its items, and stop
// leaves no helper running.
func TestRunBatch(t *testing.T) {
	for _, tt := range []struct {
		name             string
		batches, perSize int
	}{
		{"one item, no helper", 1, 1},
		{"one batch", 1, 8},
		{"many concurrent batches", 32, 8},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHelpers()
			var counts sync.Map // item -> *atomic.Int64
			var wg sync.WaitGroup
			for b := range tt.batches {
				wg.Add(1)
				go func() {
					defer wg.Done()
					items := make([]int, tt.perSize)
					for i := range items {
						items[i] = b*tt.perSize + i
					}
					var done atomic.Int64
					runBatch(context.Background(), h, items, func(_ context.Context, it int) {
						c, _ := counts.LoadOrStore(it, new(atomic.Int64))
						c.(*atomic.Int64).Add(1)
						done.Add(1)
					})
					if n := done.Load(); n != int64(len(items)) {
						t.Errorf("batch %d returned after %d of %d items", b, n, len(items))
					}
				}()
			}
			wg.Wait()
			h.stop()
			for i := range tt.batches * tt.perSize {
				c, ok := counts.Load(i)
				if !ok || c.(*atomic.Int64).Load() != 1 {
					t.Errorf("item %d handled %v times", i, c)
				}
			}
			if tt.perSize == 1 && h.started.Load() != 0 {
				t.Errorf("a one-item batch started %d helpers", h.started.Load())
			}
		})
	}
}

// TestHelpersAreReused: once a batch is done its helpers wait for the next
// one instead of exiting, so a worker under steady load starts no
// goroutine per envelope.
func TestHelpersAreReused(t *testing.T) {
	h := newHelpers()
	defer h.stop()
	const size = 8
	items := make([]int, size)
	// The first batch needs size-1 helpers at once: each item waits until
	// all of them have started.
	var arrived sync.WaitGroup
	arrived.Add(size)
	runBatch(context.Background(), h, items, func(context.Context, int) {
		arrived.Done()
		arrived.Wait()
	})
	first := h.started.Load()
	if first != size-1 {
		t.Fatalf("first batch started %d helpers, want %d", first, size-1)
	}
	for range 100 {
		runBatch(context.Background(), h, items, func(context.Context, int) {})
	}
	// A helper goes back to waiting a moment after its task's Done, so a
	// following batch may occasionally find one still on its way back; it
	// never needs a helper per item.
	if more := h.started.Load() - first; more > 100 {
		t.Fatalf("100 more batches of %d started %d more helpers: not reused", size, more)
	}
}

// TestBatchesOnHelpersCutAndRestarted: a worker whose batches run on
// helpers is cut off from the upstream mid-run (connections closed, sends
// failing), stopped while its helpers hold deliveries, and replaced by a
// new worker: every acknowledged envelope reaches the upstream, nothing is
// acked without a 2xx, and Run returns only when no helper is left.
func TestBatchesOnHelpersCutAndRestarted(t *testing.T) {
	h := newHarness(t, harnessOpts{ackWait: 30 * time.Second})
	h.up.SetDelay(5 * time.Millisecond) // sends overlap: batches really run on helpers
	ids := h.publish(240, keyA)
	r := h.start(fastCfg(Config{Concurrency: 8, FetchBatch: 8, OutageGracePeriod: time.Minute}))
	eventually(t, 30*time.Second, "some envelopes forwarded", func() bool { return len(h.acceptedIDs()) >= 40 })

	h.up.Down() // cut: in-flight sends fail, the rest retry
	time.Sleep(50 * time.Millisecond)
	r.stop(t)
	if r.w.helpers.started.Load() == 0 {
		t.Fatal("no batch ran on a helper: the test does not test them")
	}
	if got := inFlightGauge.Get(); got != 0 {
		t.Errorf("relay_worker_in_flight = %v after Run returned, want 0", got)
	}
	accepted := len(h.acceptedIDs())
	if n := h.streamMsgs(); n+uint64(accepted) < uint64(len(ids)) {
		t.Fatalf("stream holds %d, upstream accepted %d of %d: a message was acked without a 2xx", n, accepted, len(ids))
	}

	upAgain(t, h)
	h.start(fastCfg(Config{Concurrency: 8, FetchBatch: 8}))
	eventually(t, 60*time.Second, "every envelope accepted", func() bool { return len(h.acceptedIDs()) >= len(ids) })
	eventually(t, 10*time.Second, "the stream to be empty", func() bool { return h.streamMsgs() == 0 })
	// A cut can lose the upstream's 2xx after it counted the envelope:
	// that envelope is sent again (at most the sends in flight then).
	h.checkLedger(ids, 8)
}
