package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cenkalti/backoff/v4"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
	"github.com/relayhq/relay/spool"
)

// outcomeKind is what forward decided for one envelope. The caller only
// disposes of it: a consumer acks or Naks (or spools) its delivery, the
// drainer deletes or keeps its record. forward never acks, Naks or deletes.
type outcomeKind int

const (
	// outcomeSent: the upstream answered 2xx. Ack / delete.
	outcomeSent outcomeKind = iota
	// outcomeBuried: the envelope can never be delivered and Bury returned
	// nil: it is in the dead letters. Ack / delete.
	outcomeBuried
	// outcomeHeld: its key is held (a 429, or a 401/403/404) until
	// outcome.wait has passed. Nothing was lost and nothing is sent for the
	// key meanwhile: Nak with the wait / skip the record and come back for
	// it. With outcome.spool set the hold has lasted (a denial longer than
	// OutageGracePeriod): a stream delivery goes to the spool rather than
	// back to JetStream, where it would count against MaxAckPending.
	outcomeHeld
	// outcomeOutage: the upstream is in outage; nothing was sent. A stream
	// delivery goes to the spool; a spool record stays where it is.
	outcomeOutage
	// outcomeKept: not decided — the worker is stopping, or the dead
	// letters refused the envelope. Hand it back / keep the record, and try
	// again after outcome.wait (0: after the caller's own backoff).
	outcomeKept
)

// outcome is forward's decision.
type outcome struct {
	kind  outcomeKind
	wait  time.Duration // outcomeHeld, outcomeKept: how long until it is worth trying again
	spool bool          // outcomeHeld: the hold lasts; spool a stream delivery
}

// parcel is one envelope on its way upstream, from the stream or the spool.
type parcel struct {
	m    *stream.Message
	req  upstream.Request
	cats *categories // &catsOf unless a caller set known categories
	// catsOf keeps the parcel's categories in the parcel's allocation.
	catsOf categories
	// data is the spool encoding of m: the record's bytes for a spool
	// record, made on first need for a stream delivery (after the stages,
	// which may have rewritten m).
	data []byte
	// slots, when not nil, is taken around each send (the consumers'
	// worker-wide bound); the drainer bounds its sends itself.
	slots chan struct{}
}

func newParcel(m *stream.Message, data []byte, slots chan struct{}) *parcel {
	p := &parcel{m: m, req: requestFor(m), catsOf: categories{env: m.Envelope}, data: data, slots: slots}
	p.cats = &p.catsOf
	return p
}

// encoded returns the spool encoding of the parcel's message.
func (p *parcel) encoded() ([]byte, error) {
	if p.data == nil {
		b, err := p.m.MarshalBinary()
		if err != nil {
			return nil, err
		}
		p.data = b
	}
	return p.data, nil
}

// forward sends one envelope until its fate is decided, and returns that
// decision; it is the only place that turns an upstream answer into an
// outcome, for the stream and the spool alike.
//
// Each turn looks at the outage state first (in outage nothing is sent),
// then at the key's holds (a 429 or a 401/403/404 learnt by any sender),
// then sends. A held envelope older than MaxEnvelopeDelay is buried
// instead of waiting more.
//
// Retryable failures are retried here with backoff (capped by
// MaxRetryInterval) until they succeed, an outage begins, or ctx ends. A
// final rejection is buried here, so "buried" always means "Bury returned
// nil".
func (w *Worker) forward(ctx context.Context, p *parcel) outcome {
	m := p.m
	var b *backoff.ExponentialBackOff // made on the first retryable failure: most sends need none
	for attempts := 0; ; {
		if ctx.Err() != nil {
			return outcome{kind: outcomeKept, wait: shutdownRedeliveryDelay}
		}
		if w.outage.Active() {
			return outcome{kind: outcomeOutage}
		}
		if o, held := w.hold(ctx, p); held {
			return o
		}
		if p.slots != nil {
			// Give up waiting for a slot when an outage begins (the caller
			// then spools) or on shutdown.
			select {
			case p.slots <- struct{}{}:
			case <-w.outage.Started():
				continue
			case <-ctx.Done():
				continue
			}
		}
		if attempts > 0 {
			retriesTotal.Inc()
		}
		attempts++
		res := w.sendSlotted(ctx, p)
		switch {
		case res.Class == upstream.Accepted:
			return outcome{kind: outcomeSent}
		case ctx.Err() != nil:
			return outcome{kind: outcomeKept, wait: shutdownRedeliveryDelay}
		case res.Class == upstream.RateLimited, res.Class == upstream.Denied:
			// Recorded by sendOnce; the next turn holds the envelope.
		case res.Class == upstream.Rejected:
			return w.bury(ctx, p, fmt.Sprintf("upstream_rejected: status %d", res.Status), droppedRejected)
		default: // retryable
			if w.outage.Active() {
				return outcome{kind: outcomeOutage}
			}
			if b == nil {
				b = w.newBackoff()
			}
			wait := w.retryWait(b, res)
			w.log.Debug("send failed; retrying", "event_id", m.EventID, "project", m.ProjectID,
				"status", res.Status, "err", errText(res.Err, m.PublicKey), "in", wait)
			sleep(ctx, wait, w.outage.Started())
		}
	}
}

// sendSlotted is sendOnce for a parcel that took a slot: the slot is given
// back however the send ends, a panic included.
func (w *Worker) sendSlotted(ctx context.Context, p *parcel) upstream.Result {
	if p.slots != nil {
		defer func() { <-p.slots }()
	}
	return w.sendOnce(ctx, p)
}

// hold decides whether the envelope must wait for its key: a rate limit
// or a denial that has not expired yet. An envelope held past
// MaxEnvelopeDelay goes to the dead letters (the outcome is then whatever
// bury decided).
func (w *Worker) hold(ctx context.Context, p *parcel) (outcome, bool) {
	m := p.m
	limitWait := w.limits.wait(m.PublicKey, p.cats)
	denyWait, d := w.denied.hold(m.PublicKey)
	wait := max(limitWait, denyWait)
	if wait <= 0 {
		return outcome{}, false
	}
	status := http.StatusTooManyRequests
	if denyWait >= limitWait {
		status = d.status
	}
	if w.expired(m) {
		return w.expire(ctx, p, status), true
	}
	lasting := denyWait > 0 && w.now().Sub(d.first) > w.cfg.OutageGracePeriod
	return outcome{kind: outcomeHeld, wait: wait, spool: lasting}, true
}

// expired reports whether m was accepted longer than MaxEnvelopeDelay ago.
func (w *Worker) expired(m *stream.Message) bool {
	age, ok := w.age(m)
	return ok && age > w.cfg.MaxEnvelopeDelay
}

// expire buries an envelope its key held (by status) past MaxEnvelopeDelay.
func (w *Worker) expire(ctx context.Context, p *parcel, status int) outcome {
	age, _ := w.age(p.m)
	w.log.Warn("envelope held by the upstream for longer than max_envelope_delay: moved to the dead letters",
		"event_id", p.m.EventID, "project", p.m.ProjectID, "status", status, "age", age.Round(time.Second),
		"max_envelope_delay", w.cfg.MaxEnvelopeDelay)
	return w.bury(ctx, p, fmt.Sprintf("expired: held by upstream status %d for longer than %s", status, w.cfg.MaxEnvelopeDelay),
		droppedExpired)
}

// age is how long ago ingest accepted m; ok is false when m does not say
// (ReceivedAt zero: an envelope of unknown age is never expired).
func (w *Worker) age(m *stream.Message) (time.Duration, bool) {
	if m.ReceivedAt.IsZero() {
		return 0, false
	}
	return w.now().Sub(m.ReceivedAt), true
}

// sendOnce sends one envelope and does the bookkeeping every sender shares:
// an answer (2xx, 429, final 4xx) clears the outage detector and the key's
// denial, a retryable failure or a denial feeds the outage detector, a 429
// teaches the rate limiter, a denial the key's hold, a final rejection is
// logged (without payload). A failure caused by ctx being cancelled is not
// an upstream failure and feeds nothing.
func (w *Worker) sendOnce(ctx context.Context, p *parcel) upstream.Result {
	m := p.m
	res := w.send.Send(ctx, p.req)
	// Logs name the key by KeyRef, and the upstream's error text may quote
	// it (errText redacts it). Both are worked out only where a line is
	// written: KeyRef is a SHA-256, and the common answer, a 2xx, logs
	// nothing.
	switch res.Class {
	case upstream.Accepted, upstream.RateLimited, upstream.Rejected:
		if d, ok := w.denied.clear(m.PublicKey); ok {
			w.log.Info("upstream answers for the key again: its held envelopes go out", "key", envelope.KeyRef(m.PublicKey),
				"project", m.ProjectID, "status", res.Status, "was_status", d.status,
				"denied_for", w.now().Sub(d.first).Round(time.Millisecond), "held", d.held)
		}
	}
	switch res.Class {
	case upstream.Accepted:
		w.outage.Answered()
	case upstream.RateLimited:
		w.outage.Answered()
		rateLimitedTotal.Inc()
		learnt := limitsFrom(res, p.cats.get(), time.Now(), w.cfg.DefaultRetryAfter)
		w.limits.record(m.PublicKey, learnt)
		w.shareLimits(ctx, m.PublicKey, learnt)
		w.log.Info("upstream rate limit", "project", m.ProjectID, "event_id", m.EventID,
			"retry_after", res.RetryAfter, "wait", w.limits.wait(m.PublicKey, p.cats))
	case upstream.Rejected:
		w.outage.Answered()
		w.log.Warn("upstream rejected envelope: moved to the dead letters", "event_id", m.EventID,
			"project", m.ProjectID, "status", res.Status, "err", errText(res.Err, m.PublicKey))
	case upstream.Denied:
		text := errText(res.Err, m.PublicKey)
		deniedCounter(res.Status).Inc()
		if ctx.Err() == nil {
			w.outage.Denial(res.Status, text)
		}
		prev, was, changed := w.denied.record(m.PublicKey, res.Status)
		if changed {
			// One line per state change, not per envelope: every envelope of
			// the key gets the same answer.
			attrs := []any{"status", res.Status, "key", envelope.KeyRef(m.PublicKey), "project", m.ProjectID, "err", text,
				"retry_max_interval", w.cfg.MaxRetryInterval, "max_envelope_delay", w.cfg.MaxEnvelopeDelay}
			if was {
				attrs = append(attrs, "was_status", prev.status, "held", prev.held)
			}
			w.log.Error("upstream denies the key (check relay.upstream, the relay's credentials and the project's key): its envelopes wait and are retried", attrs...)
		}
	default:
		if ctx.Err() == nil {
			text := errText(res.Err, m.PublicKey)
			if w.outage.Failure(res.Status, text) {
				w.log.Debug("send failed during outage", "event_id", m.EventID, "status", res.Status, "err", text)
			}
		}
	}
	return res
}

// bury moves an envelope that can never be delivered into the dead letters
// and counts it by reason (dropped). With buryData it is the only bury path
// of the worker: when the dead letters cannot take the envelope it is kept
// (outcomeKept, wait 0: the caller's backoff) — never acked or deleted
// unkept.
func (w *Worker) bury(ctx context.Context, p *parcel, reason string, dropped *metrics.Counter) outcome {
	data, err := p.encoded()
	if err != nil {
		// Cannot happen for a decoded message; never let it go.
		buryErrorsTotal.Inc()
		w.log.Error("encode for the dead letters failed; the envelope is kept", "event_id", p.m.EventID, "err", err)
		return outcome{kind: outcomeKept}
	}
	return w.buryData(ctx, data, p.m.EventID, reason, dropped)
}

// buryData buries encoded bytes (a message, or a spool record that does not
// decode as one); eventID is only for the log.
func (w *Worker) buryData(ctx context.Context, data []byte, eventID, reason string, dropped *metrics.Counter) outcome {
	if err := w.store.Bury(ctx, data, reason); err != nil {
		if errors.Is(err, spool.ErrDeadFull) {
			// Logged once per state change by deadLettersFull, not once per
			// envelope.
			w.deadLettersFull(err)
			w.log.Debug("dead letters full; the envelope is kept", "event_id", eventID, "reason", reason)
		} else {
			buryErrorsTotal.Inc()
			w.log.Error("dead-letter write failed; the envelope is kept", "event_id", eventID, "reason", reason, "err", err)
		}
		return outcome{kind: outcomeKept}
	}
	dropped.Inc()
	return outcome{kind: outcomeBuried}
}
