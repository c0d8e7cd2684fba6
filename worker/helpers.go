package worker

import (
	"context"
	"sync"
	"sync/atomic"
)

// helpers runs the deliveries of a batch beyond the first on goroutines
// that outlive one envelope. A goroutine started per delivery begins with
// a small stack and grows it (a copy each time it doubles) on every
// envelope, because the send's zstd encoder and the HTTP transport need
// tens of KB of stack; that copying was ~4 % of the whole relay's CPU
// under load. A helper keeps its grown stack from one envelope to the next
// (until a GC shrinks an idle one), and handing it a task is one channel
// send to a parked goroutine instead of a goroutine start.
//
// Invariants: a task is run exactly once, either by an idle helper that
// received it or by a helper started for it; helpers exist only while
// some task needed one (at most the number of deliveries handled at once,
// Concurrency × FetchBatch), and all of them have returned once stop
// returned. Run owns them: it calls stop after the consumers, whose
// batches wait for their tasks, have exited.
type helpers struct {
	work    chan func() // unbuffered: a send succeeds only when a helper is idle
	quit    chan struct{}
	wg      sync.WaitGroup
	started atomic.Int64 // helper goroutines started so far (shows the reuse)
}

func newHelpers() *helpers {
	return &helpers{work: make(chan func()), quit: make(chan struct{})}
}

// run has f run on a helper: an idle one, or a new one when none is idle.
// It never waits for f.
func (h *helpers) run(f func()) {
	select {
	case h.work <- f:
	default:
		h.wg.Add(1)
		h.started.Add(1)
		go h.loop(f)
	}
}

// loop runs f and then whatever task it is handed, until stop.
func (h *helpers) loop(f func()) {
	defer h.wg.Done()
	for {
		f()
		select {
		case f = <-h.work:
		case <-h.quit:
			return
		}
	}
}

// stop makes idle helpers return and waits for all of them; no run may be
// called after it (a task handed to run after stop would still run, on a
// new goroutine nobody waits for).
func (h *helpers) stop() {
	close(h.quit)
	h.wg.Wait()
}

// runBatch runs fn for every element of items, the last on the calling
// goroutine and the others on helpers, and returns once every call has
// returned.
func runBatch[T any](ctx context.Context, h *helpers, items []T, fn func(context.Context, T)) {
	if len(items) == 0 {
		return
	}
	var wg sync.WaitGroup
	wg.Add(len(items) - 1)
	for _, it := range items[:len(items)-1] {
		h.run(func() {
			defer wg.Done()
			fn(ctx, it)
		})
	}
	fn(ctx, items[len(items)-1])
	wg.Wait()
}
