package worker

import (
	"context"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

// byteBudget bounds the bytes of the messages the consumers hold at once
// (fetched and not yet acked or Nak'd), so memory follows the budget and not
// the envelope size: with Concurrency × FetchBatch messages held, 200 KB
// envelopes would be 100 MB on the wire alone, and each is copied several
// times on its way (the spool encoding, bbolt's pages, the compressed body).
//
// The size of a batch is known only once it is fetched, so a consumer
// reserves an estimate before it fetches — FetchBatch times the largest
// message seen lately — and settles the reservation to the real size after
// the fetch. A reservation waits while it would take the budget past its
// cap, unless nothing is held at all: one message larger than the budget
// still goes through, alone. Reservations are granted in no particular
// order; waiting consumers are woken whenever bytes are released.
//
// Sizes are of stream messages: a group's members are summed into one size
// for the estimate (messageSizes) and released member by member; the group's
// buffer is freed only with its last member, so the bytes held can exceed
// the account by the settled members of groups still partly held.
type byteBudget struct {
	limit int64

	mu      sync.Mutex
	used    int64
	est     int64         // the estimate of one message's size
	waiting int           // reservations waiting for wake
	wake    chan struct{} // closed and replaced when bytes are released and someone waits
}

// initialEstimate is the per-message estimate before any message was seen:
// large, so the first fetches of a worker facing a backlog of big envelopes
// do not all go out at once; it falls to the real size within a few hundred
// messages.
const initialEstimate = 256 << 10

var budgetWaits = metrics.NewCounter(`relay_worker_byte_budget_waits_total`)

func newByteBudget(limit int64) *byteBudget {
	return &byteBudget{limit: limit, est: initialEstimate, wake: make(chan struct{})}
}

// reserve blocks until n messages' worth of the estimate fits (or nothing
// is held), takes it, and returns it; 0 when ctx ended first.
func (b *byteBudget) reserve(ctx context.Context, n int) int64 {
	waited := false
	for {
		b.mu.Lock()
		want := int64(n) * b.est
		if b.used == 0 || b.used+want <= b.limit {
			b.used += want
			b.mu.Unlock()
			return want
		}
		wake := b.wake
		b.waiting++
		b.mu.Unlock()
		if !waited {
			waited = true
			budgetWaits.Inc()
		}
		select {
		case <-ctx.Done():
		case <-wake:
		}
		b.mu.Lock()
		b.waiting--
		b.mu.Unlock()
		if ctx.Err() != nil {
			return 0
		}
	}
}

// settle replaces a reservation by the bytes actually fetched, and updates
// the estimate with each message's size: the largest seen, decaying by 1/64
// per message so a past burst of big envelopes does not throttle small ones
// for ever.
func (b *byteBudget) settle(reserved int64, sizes []int64) {
	b.mu.Lock()
	var got int64
	for _, s := range sizes {
		got += s
		b.est = max(s, b.est-max(b.est/64, 1), 1)
	}
	b.used += got - reserved
	if got < reserved {
		b.signalLocked()
	}
	b.mu.Unlock()
}

// release returns n bytes of a message that is no longer held.
func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.signalLocked()
	b.mu.Unlock()
}

func (b *byteBudget) signalLocked() {
	if b.waiting > 0 {
		close(b.wake)
		b.wake = make(chan struct{})
	}
}

// inUse is the bytes held or reserved now.
func (b *byteBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
