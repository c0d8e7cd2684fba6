package worker

import (
	"sync"
	"time"
)

// outageDetector decides, for all consumers and the drainer together, whether
// the upstream is in outage.
//
// Invariants:
//   - failingSince is the time of the first retryable failure since the last
//     answer from the upstream (zero when the last outcome was an answer).
//   - active becomes true only on a failure observed more than grace after
//     failingSince; it becomes false only on an answer (a 2xx, 429 or final
//     4xx to a send, or a successful probe).
//   - A denial (401/403/404) is a failure too: it says nothing about the
//     envelope, and when every key gets it for longer than grace (no other
//     answer in between), the upstream is in outage for the relay. denied
//     tells what the last failure was, so the drainer probes such an outage
//     with an envelope — the live endpoint would answer and prove nothing.
//   - started is closed exactly when active turns true, ended exactly when it
//     turns false; each is replaced by a fresh channel when the opposite
//     transition happens, so a waiter selects on the channel it got and is
//     woken by the next transition.
type outageDetector struct {
	grace time.Duration
	now   func() time.Time

	mu           sync.Mutex
	failingSince time.Time
	active       bool
	denied       bool // the last failure was a denial
	started      chan struct{}
	ended        chan struct{}
	began        time.Time // when the active outage began

	// onStart and onEnd, when set (before the worker runs), are called
	// after a transition, outside mu, by the goroutine whose observation
	// made it: exactly once per outage each, so an operator gets one line
	// when it begins and one when it ends, however many senders saw it.
	onStart func(status int, detail string, denied bool)
	onEnd   func(lasted time.Duration)
}

func newOutageDetector(grace time.Duration, now func() time.Time) *outageDetector {
	o := &outageDetector{grace: grace, now: now, started: make(chan struct{}), ended: make(chan struct{})}
	close(o.ended) // not in outage at start
	return o
}

// Failure records a retryable failure (connection refused, timeout, 5xx;
// status 0 when no response came, detail what went wrong, with no key in
// it) and reports whether
// the upstream is now in outage.
func (o *outageDetector) Failure(status int, detail string) bool {
	return o.fail(false, status, detail)
}

// Denial records a 401, 403 or 404 and reports whether the upstream is now
// in outage.
func (o *outageDetector) Denial(status int, detail string) bool { return o.fail(true, status, detail) }

func (o *outageDetector) fail(denied bool, status int, detail string) bool {
	o.mu.Lock()
	began := false
	defer func() {
		onStart := o.onStart
		o.mu.Unlock()
		if began && onStart != nil {
			onStart(status, detail, denied)
		}
	}()
	o.denied = denied
	now := o.now()
	if o.failingSince.IsZero() {
		o.failingSince = now
	}
	if !o.active && now.Sub(o.failingSince) > o.grace {
		o.active = true
		o.ended = make(chan struct{})
		close(o.started)
		outageGauge.Set(1)
		outagesTotal.Inc()
		o.began, began = now, true
	}
	return o.active
}

// Answered records that the upstream answered; it ends an outage.
func (o *outageDetector) Answered() {
	o.mu.Lock()
	var lasted time.Duration
	ended := false
	defer func() {
		onEnd := o.onEnd
		o.mu.Unlock()
		if ended && onEnd != nil {
			onEnd(lasted)
		}
	}()
	o.failingSince = time.Time{}
	if o.active {
		o.active = false
		o.started = make(chan struct{})
		close(o.ended)
		outageGauge.Set(0)
		lasted, ended = o.now().Sub(o.began), true
	}
}

// Denied reports whether the upstream is in outage and the last failure
// was a denial.
func (o *outageDetector) Denied() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.active && o.denied
}

// Active reports whether the upstream is in outage.
func (o *outageDetector) Active() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.active
}

// Started returns a channel that is closed when an outage begins (already
// closed while one is active).
func (o *outageDetector) Started() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.started
}

// Ended returns a channel that is closed when the outage ends (already closed
// while there is none).
func (o *outageDetector) Ended() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ended
}
