package worker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/relayhq/relay/internal/stream"
)

// heldSet is every delivery a consumer holds: fetched and neither acked nor
// Nak'd yet. One heartbeat goroutine sends InProgress for each of them every
// AckWait/3, so JetStream does not redeliver a message a consumer is still
// retrying, waiting out a rate limit for, or holding while the spool is full:
// duplicates come only from real failures.
//
// Invariant: InProgress is never sent for a released delivery. Each entry has
// its own lock, taken by the heartbeat around InProgress and by release
// around marking it released, so releasing one delivery waits at most for
// that delivery's InProgress, never for the whole round.
type heldSet struct {
	mu sync.Mutex
	m  map[*stream.Delivery]*heldEntry
}

type heldEntry struct {
	mu       sync.Mutex
	released bool
}

func newHeldSet() *heldSet { return &heldSet{m: make(map[*stream.Delivery]*heldEntry)} }

func (h *heldSet) add(d *stream.Delivery) {
	h.mu.Lock()
	h.m[d] = &heldEntry{}
	h.mu.Unlock()
	inFlightGauge.Inc()
}

// release removes d; after it returns, the heartbeat will not touch d again.
func (h *heldSet) release(d *stream.Delivery) {
	h.mu.Lock()
	e := h.m[d]
	delete(h.m, d)
	h.mu.Unlock()
	if e == nil {
		return
	}
	e.mu.Lock()
	e.released = true
	e.mu.Unlock()
	inFlightGauge.Dec()
}

// holds reports whether d is held (neither acked nor Nak'd yet).
func (h *heldSet) holds(d *stream.Delivery) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.m[d]
	return ok
}

func (h *heldSet) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.m)
}

// beat sends one InProgress to every held delivery.
func (h *heldSet) beat(log *slog.Logger) {
	h.mu.Lock()
	type pair struct {
		d *stream.Delivery
		e *heldEntry
	}
	snap := make([]pair, 0, len(h.m))
	for d, e := range h.m {
		snap = append(snap, pair{d, e})
	}
	h.mu.Unlock()
	for _, p := range snap {
		p.e.mu.Lock()
		if !p.e.released {
			if err := p.d.InProgress(); err != nil {
				beatErrorsTotal.Inc()
				log.Log(context.Background(), streamErrLevel(err), "worker: in-progress heartbeat failed; the message may be redelivered (a duplicate upstream)",
					"event_id", p.d.Msg.EventID, "err", err)
			}
		}
		p.e.mu.Unlock()
	}
}

// heartbeat beats every interval until ctx is done.
func (h *heldSet) heartbeat(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.beat(log)
		}
	}
}
