package ingest

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"
)

// Admission: what bounds ingest's memory.
//
// Invariants:
//   - At most Config.MaxConcurrentRequests requests are inside the ingest
//     handler at once; one more is answered 503 (Retry-After) at once, before
//     a byte of its body is read.
//   - The body buffers of the requests inside the handler, each byte charged
//     twice (once for the body, once for the stream message encoded from it
//     while it is published), never total more than Config.MaxInFlightBytes.
//     A request charges its buffer before reading into it: all of it up
//     front when the body is plain with a Content-Length, else the pooled
//     buffer it starts with and then the growth of each larger buffer it
//     moves to (the smaller one is garbage then: the charge follows the live
//     buffer). It holds the charge until its answer is written. A request that
//     cannot be charged within Config.AdmissionTimeout (or whose client goes
//     away, or when shutdown starts) is answered 503 with Retry-After: the SDK
//     keeps the envelope and sends it again; nothing was promised.
//   - A single body larger than the whole budget is charged the whole budget,
//     so it is admitted alone rather than never.
//
// Not charged, and bounded otherwise: the pooled decoders (windows bounded by
// zstd's maximum), the GET store endpoint's event (in the URL, bounded by the
// header limit), and the stream connection's own buffers (one connection,
// written one message at a time).
//
// Waiters are served first come, first served, so a large body is not starved
// by a stream of small ones.

// byteBudget is a FIFO weighted semaphore of bytes.
type byteBudget struct {
	size int64

	mu      sync.Mutex
	used    int64
	waiters list.List // of *budgetWaiter, oldest first
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed once n is granted
}

// errBudgetClosed: the wait was given up because shutdown started.
var errBudgetClosed = errors.New("relay is shutting down")

// errBudgetTimeout: the bytes did not become free within the wait.
var errBudgetTimeout = errors.New("ingest memory budget exhausted")

// acquire takes n bytes of the budget (n is clamped to its size and the
// amount taken is returned), waiting until they are free, wait has passed,
// ctx ends or stop is closed. On error nothing is taken. The fast path (bytes
// free, nobody queued) allocates nothing.
func (b *byteBudget) acquire(ctx context.Context, stop <-chan struct{}, wait time.Duration, n int64) (int64, error) {
	n = min(max(n, 0), b.size)
	b.mu.Lock()
	if b.waiters.Len() == 0 && b.used+n <= b.size {
		b.used += n
		b.mu.Unlock()
		return n, nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	elem := b.waiters.PushBack(w)
	b.mu.Unlock()

	t := time.NewTimer(wait)
	defer t.Stop()
	var err error
	select {
	case <-w.ready:
		return n, nil
	case <-t.C:
		err = errBudgetTimeout
	case <-ctx.Done():
		err = ctx.Err()
	case <-stop:
		err = errBudgetClosed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted while giving up: hand it back
		b.used -= n
	default:
		b.waiters.Remove(elem)
	}
	b.grantLocked() // the head may have left, letting the next ones in
	return 0, err
}

// release returns n bytes taken by acquire.
func (b *byteBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.grantLocked()
	b.mu.Unlock()
}

// grantLocked admits waiters in order while the oldest fits.
func (b *byteBudget) grantLocked() {
	for e := b.waiters.Front(); e != nil; e = b.waiters.Front() {
		w := e.Value.(*budgetWaiter)
		if b.used+w.n > b.size {
			return
		}
		b.used += w.n
		b.waiters.Remove(e)
		close(w.ready)
	}
}

// inUse reports the bytes currently taken (metrics and tests).
func (b *byteBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// budgetError is a charge that failed: the request is answered 503.
type budgetError struct{ err error }

func (e *budgetError) Error() string { return e.err.Error() }
func (e *budgetError) Unwrap() error { return e.err }

// charger is what readLimited charges a buffer to before allocating it.
type charger interface {
	charge(n int64) error
}

// charge takes 2n bytes of the server's budget for an n-byte buffer (the
// body, and the stream message that will be encoded from it), recording what
// it took so the request can give it back.
func (st *reqState) charge(n int64) error {
	b := st.srv.budget
	got, err := b.acquire(st.ctx, st.srv.stop, st.srv.cfg.AdmissionTimeout, 2*n)
	st.charged += got
	if err != nil {
		return &budgetError{err}
	}
	return nil
}

// errAdmission maps a failed charge to its answer.
func errAdmission(be *budgetError) *apiError {
	if errors.Is(be.err, errBudgetClosed) {
		return errShuttingDown
	}
	return errMemoryBudget
}
