package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
	"github.com/relayhq/relay/spool"
)

// drain is the drainer, one goroutine owned by Run. While the upstream is in
// outage it probes it (with backoff up to MaxRetryInterval) and ends the
// outage when it answers — an outage of denials (401/403/404 for every key)
// is probed with the oldest spooled envelope, since only an envelope can
// show that the upstream accepts the relay again. Otherwise it walks the
// spool in passes (drainSpoolPass): each sends the spooled envelopes oldest
// first, with DrainConcurrency sends in flight continuously, and deletes
// each only after the upstream accepted it (or, for a final rejection,
// after it was buried in the dead letters). A pass reads past the records
// of rate-limited keys; the next pass starts over at the head. The drainer
// also drains what an earlier process left in the spool: its first look at
// the spool is at start-up. Consumers keep forwarding new envelopes from
// the stream meanwhile.
func (w *Worker) drain(ctx context.Context) {
	probeBackoff, stuckBackoff := w.newBackoff(), w.newBackoff()
	for ctx.Err() == nil {
		if w.outage.Active() {
			var err error
			if w.outage.Denied() {
				err = w.probeDenied(ctx)
			} else {
				err = w.send.Probe(ctx)
			}
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				w.outage.Answered()
				probeBackoff.Reset()
				continue
			}
			probeFailures.Inc()
			wait := w.nextDelay(probeBackoff)
			w.log.Debug("upstream probe failed", "err", err, "next_in", wait)
			w.sleepProbe(ctx, wait, errors.Is(err, errNothingToProbe))
			continue
		}
		probeBackoff.Reset()
		pass, err := w.drainSpoolPass(ctx, nil)
		if pass.progress > 0 {
			stuckBackoff.Reset()
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			w.log.Error("reading the spool failed; retrying", "err", err, "in", w.cfg.DrainPoll)
			sleep(ctx, w.cfg.DrainPoll, nil)
		case pass.seen == 0:
			// The spool is empty.
			w.logDrained()
			w.waitSpooled(ctx, w.cfg.DrainPoll)
		case pass.stopped:
			// A record could not be settled (outage, the dead letters
			// refusing): start over at the head, after a pause unless
			// something left the spool. Do not spin.
			if pass.progress > 0 || w.outage.Active() {
				continue
			}
			sleep(ctx, w.nextDelay(stuckBackoff), w.outage.Started())
		case pass.progress > 0:
			// Start over at the head at once: the records skipped for a
			// hold come first again.
		default:
			// Every record left is held: wait for the first hold to
			// expire, or for a new record.
			wait := pass.retryIn
			if wait <= 0 {
				wait = w.nextDelay(stuckBackoff)
			}
			w.waitSpooled(ctx, wait)
		}
	}
}

// waitSpooled waits for d, a new spool record, an outage, or ctx.
func (w *Worker) waitSpooled(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-w.spooled:
	case <-w.outage.Started():
	case <-t.C:
	}
}

// drainOutcome is what happened to one spooled record.
type drainOutcome int

const (
	drainKeep     drainOutcome = iota // not delivered (outage, shutdown, failure): stays; stop the batch
	drainDeferred                     // its key is rate limited: stays; the batch goes on
	drainSent                         // the upstream accepted it: delete
	drainBuried                       // final: now in the dead letters: delete
)

// drainOne delivers one spooled record: forward decides, drainOne maps the
// outcome onto the record (delete it, skip it for now, or keep it and stop
// the batch).
func (w *Worker) drainOne(ctx context.Context, rec spool.Record) (o drainOutcome, wait time.Duration) {
	if p, stack := catch(func() { o, wait = w.drainRecord(ctx, rec) }); p != nil {
		return w.drainPanic(ctx, rec, p, stack)
	}
	return o, wait
}

func (w *Worker) drainRecord(ctx context.Context, rec spool.Record) (drainOutcome, time.Duration) {
	var m stream.Message
	if err := m.UnmarshalBinary(rec.Data); err != nil {
		// A record this build cannot read will never become readable: keep
		// it for an operator in the dead letters rather than block the drain.
		w.log.Error("spooled record cannot be decoded: moved to the dead letters", "record", rec.ID, "err", err)
		return w.drainDisposal(w.buryData(ctx, rec.Data, "", "spool_record_undecodable", droppedUndecodable))
	}
	return w.drainDisposal(w.forward(ctx, newParcel(&m, rec.Data, nil)))
}

// drainDisposal is what the drainer does with a record given forward's
// outcome: the spool path's half of the ack invariant — a record is deleted
// only after outcomeSent or outcomeBuried.
func (w *Worker) drainDisposal(o outcome) (drainOutcome, time.Duration) {
	switch o.kind {
	case outcomeSent:
		drainedTotal.Inc()
		w.drained.note(w.now())
		return drainSent, 0
	case outcomeBuried:
		return drainBuried, 0
	case outcomeHeld:
		return drainDeferred, o.wait
	default: // outage, shutdown, dead letters refusing
		return drainKeep, o.wait
	}
}

// errNothingToProbe: a denied outage, and no spooled envelope to probe with.
var errNothingToProbe = errors.New("worker: denied outage: no spooled envelope to probe with")

// probeDenied probes an outage of denials: it sends the oldest spooled
// envelope, ignoring its key's hold (this one request is the probe for
// every key). Before that it buries the oldest records held for longer than
// MaxEnvelopeDelay — in a denied outage every record is held — and records
// that do not decode. nil means the upstream answered something other than
// a denial or a failure (sendOnce then ended the outage); the record is
// deleted when that answer settled it (2xx, or a final 4xx and buried).
func (w *Worker) probeDenied(ctx context.Context) error {
	recs, err := w.store.OldestAfter(0, w.cfg.DrainBatch)
	if err != nil {
		spoolReadErrors.Inc()
		return fmt.Errorf("worker: probe: read the spool: %w", err)
	}
	var settled []uint64
	defer func() {
		if len(settled) > 0 {
			if err := w.store.Delete(settled...); err != nil {
				spoolDelErrors.Inc()
				w.log.Error("deleting probed records from the spool failed; they will be sent again", "records", len(settled), "err", err)
			}
		}
	}()
	for _, rec := range recs {
		var m stream.Message
		if err := m.UnmarshalBinary(rec.Data); err != nil {
			if o := w.buryData(ctx, rec.Data, "", "spool_record_undecodable", droppedUndecodable); o.kind == outcomeBuried {
				settled = append(settled, rec.ID)
				continue
			}
			return fmt.Errorf("worker: probe: record %d: %w", rec.ID, err)
		}
		p := newParcel(&m, rec.Data, nil)
		if w.expired(&m) {
			if o := w.expire(ctx, p, w.denied.statusOf(m.PublicKey)); o.kind == outcomeBuried {
				settled = append(settled, rec.ID)
				continue
			}
			return fmt.Errorf("worker: probe: record %d expired and cannot be buried", rec.ID)
		}
		var res upstream.Result
		if pv, stack := catch(func() { res = w.sendOnce(ctx, p) }); pv != nil {
			if o, _ := w.drainPanic(ctx, rec, pv, stack); o == drainBuried {
				settled = append(settled, rec.ID)
				continue
			}
			return fmt.Errorf("worker: probe: record %d panicked and cannot be buried", rec.ID)
		}
		switch res.Class {
		case upstream.Accepted:
			drainedTotal.Inc()
			w.drained.note(w.now())
			settled = append(settled, rec.ID)
			return nil
		case upstream.Rejected:
			if o := w.bury(ctx, p, fmt.Sprintf("upstream_rejected: status %d", res.Status), droppedRejected); o.kind == outcomeBuried {
				settled = append(settled, rec.ID)
			}
			return nil
		case upstream.RateLimited:
			return nil
		default:
			// The text only, with the key replaced: this error is logged.
			return fmt.Errorf("worker: probe with a spooled envelope: %s", errText(res.Err, m.PublicKey))
		}
	}
	return errNothingToProbe
}

// sleepProbe waits before the next probe; with nothing to probe with, a
// newly spooled envelope wakes it too.
func (w *Worker) sleepProbe(ctx context.Context, wait time.Duration, idle bool) {
	if !idle {
		sleep(ctx, wait, w.outage.Ended())
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-w.outage.Ended():
	case <-w.spooled:
	}
}
