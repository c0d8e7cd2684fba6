package ingest

import (
	"context"
	"sync/atomic"
	"time"
)

// publishDeadlines hands out the context every publish waits under: one that
// ends between timeout and timeout+timeout/deadlineSlack after the call,
// shared by all the publishes that start within the same short span. A
// context.WithTimeout per request cost a timer started and stopped on the
// runtime's timer heap and three allocations — ~3.7 % of ingest's CPU under
// load (CPU profile, 64 connections) for a bound that is five seconds by
// default and only has to hold roughly. A shared context is never cancelled
// early: its timer ends it, and at most deadlineSlack+1 of them are alive
// at once. The contexts carry no values and no cancellation of the request:
// a client hanging up must not abort a publish halfway (publish).
type publishDeadlines struct {
	timeout time.Duration
	slack   time.Duration
	now     func() time.Time
	cur     atomic.Pointer[sharedDeadline]
}

// deadlineSlack: a shared deadline serves publishes for timeout/deadlineSlack
// (78 ms of the default 5 s), so a publish may wait up to that much longer
// than the timeout.
const deadlineSlack = 64

type sharedDeadline struct {
	at     time.Time
	ctx    context.Context
	cancel context.CancelFunc // kept for vet; the context ends by its timer
}

func newPublishDeadlines(timeout time.Duration, now func() time.Time) *publishDeadlines {
	return &publishDeadlines{timeout: timeout, slack: timeout / deadlineSlack, now: now}
}

// get returns a context that ends no earlier than timeout from now and no
// later than timeout+slack from now.
func (d *publishDeadlines) get() context.Context {
	earliest := d.now().Add(d.timeout)
	for {
		cur := d.cur.Load()
		if cur != nil && !cur.at.Before(earliest) && cur.at.Sub(earliest) <= d.slack {
			return cur.ctx
		}
		at := earliest.Add(d.slack)
		ctx, cancel := context.WithDeadline(context.Background(), at)
		next := &sharedDeadline{at: at, ctx: ctx, cancel: cancel}
		if d.cur.CompareAndSwap(cur, next) {
			return ctx
		}
		// Another publish installed one meanwhile: use it if it fits.
		cancel()
	}
}
