package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
	"github.com/relayhq/relay/spool"
)

// drain is the drainer, one goroutine owned by Run. While the upstream is in
// outage it probes it (with backoff up to MaxRetryInterval) and ends the
// outage when it answers — an outage of denials (401/403/404 for every key)
// is probed with the oldest spooled envelope, since only an envelope can
// show that the upstream accepts the relay again. Otherwise it sends spooled envelopes, oldest first,
// in batches of DrainBatch, and deletes each only after the upstream accepted
// it (or, for a final rejection, after it was buried in the dead letters).
// It also drains what an earlier process left in the spool: its first look
// at the spool is at start-up. Consumers keep forwarding new envelopes from
// the stream meanwhile.
func (w *Worker) drain(ctx context.Context) {
	probeBackoff, stuckBackoff := w.newBackoff(), w.newBackoff()
	var pass drainPass
	for ctx.Err() == nil {
		if w.outage.Active() {
			pass = drainPass{}
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
		recs, err := w.store.OldestAfter(pass.after, w.cfg.DrainBatch)
		if err != nil {
			spoolReadErrors.Inc()
			w.log.Error("reading the spool failed; retrying", "err", err, "in", w.cfg.DrainPoll)
			pass = drainPass{}
			sleep(ctx, w.cfg.DrainPoll, nil)
			continue
		}
		if len(recs) == 0 {
			if pass.after == 0 {
				// The spool is empty.
				w.logDrained()
				w.waitSpooled(ctx, w.cfg.DrainPoll)
				continue
			}
			// The end of a pass past held keys' records. If anything left
			// the spool, start over at the head at once (the oldest come
			// first again); otherwise every record left is held: wait for
			// the first hold to expire, or for a new record.
			done := pass
			pass = drainPass{}
			if done.progress {
				continue
			}
			wait := done.retryIn
			if wait <= 0 {
				wait = w.nextDelay(stuckBackoff)
			}
			w.waitSpooled(ctx, wait)
			continue
		}
		progress, retryIn, stopped := w.drainBatch(ctx, recs)
		if progress > 0 {
			stuckBackoff.Reset()
		}
		if !stopped {
			// Read on past this batch: its held records stay behind, and
			// the next batch may belong to keys that are not held.
			pass.after = recs[len(recs)-1].ID
			pass.progress = pass.progress || progress > 0
			if retryIn > 0 && (pass.retryIn == 0 || retryIn < pass.retryIn) {
				pass.retryIn = retryIn
			}
			continue
		}
		// A record could not be settled (outage, shutdown, the dead letters
		// refusing): start over at the head, after a pause unless something
		// left the spool. Do not spin.
		pass = drainPass{}
		if progress > 0 || w.outage.Active() {
			continue
		}
		sleep(ctx, w.nextDelay(stuckBackoff), w.outage.Started())
	}
}

// drainPass is the drainer's walk through the spool: records up to after
// were looked at in this pass; progress says whether any left the spool;
// retryIn is the shortest hold among those skipped.
type drainPass struct {
	after    uint64
	progress bool
	retryIn  time.Duration
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

// drainBatch sends recs (oldest first) with up to DrainConcurrency sends in
// flight, dispatched in spool order, then deletes the delivered ones in one
// spool commit. A crash before the delete sends them again (duplicates, not
// losses). Once one send finds the upstream in outage, no more are started.
// Records whose key is rate limited are skipped (deferred), not waited for:
// one limited key must not hold up the others' backlog. It returns how many
// records left the spool, when some were deferred how long until the first
// of their holds expires, and whether it stopped short: a record it could
// not settle (outage, shutdown, dead letters refusing) or did not reach.
func (w *Worker) drainBatch(ctx context.Context, recs []spool.Record) (progress int, retryIn time.Duration, stopped bool) {
	outcomes := make([]drainOutcome, len(recs))
	waits := make([]time.Duration, len(recs))
	var stop atomic.Bool
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(w.cfg.DrainConcurrency, len(recs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				outcomes[i], waits[i] = w.drainOne(ctx, recs[i])
				if outcomes[i] == drainKeep {
					stop.Store(true)
				}
			}
		}()
	}
	for i := range recs {
		if stop.Load() || ctx.Err() != nil || w.outage.Active() {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()

	ids := make([]uint64, 0, len(recs))
	for i, o := range outcomes {
		switch o {
		case drainKeep: // kept, or never dispatched
			stopped = true
		case drainSent, drainBuried:
			ids = append(ids, recs[i].ID)
		case drainDeferred:
			if retryIn == 0 || waits[i] < retryIn {
				retryIn = waits[i]
			}
		}
	}
	if len(ids) == 0 {
		return 0, retryIn, stopped
	}
	// Retry the delete until it works: re-sending a batch because its delete
	// failed would only make duplicates. On shutdown, give up: the records
	// are sent again after the restart.
	b := w.newBackoff()
	for {
		err := w.store.Delete(ids...)
		if err == nil {
			return len(ids), retryIn, stopped
		}
		spoolDelErrors.Inc()
		wait := w.nextDelay(b)
		w.log.Error("deleting drained records from the spool failed; retrying", "records", len(ids), "err", err, "in", wait)
		if ctx.Err() != nil {
			return 0, retryIn, true
		}
		sleep(ctx, wait, nil)
	}
}

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
