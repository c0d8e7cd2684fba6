package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/spool"
)

// drain is the drainer, one goroutine owned by Run. While the upstream is in
// outage it probes it (with backoff up to MaxRetryInterval) and ends the
// outage when it answers. Otherwise it sends spooled envelopes, oldest first,
// in batches of DrainBatch, and deletes each only after the upstream accepted
// it (or, for a final rejection, after it was buried in the dead letters).
// It also drains what an earlier process left in the spool: its first look
// at the spool is at start-up. Consumers keep forwarding new envelopes from
// the stream meanwhile.
func (w *Worker) drain(ctx context.Context) {
	probeBackoff, stuckBackoff := w.newBackoff(), w.newBackoff()
	for ctx.Err() == nil {
		if w.outage.Active() {
			err := w.send.Probe(ctx)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				w.outage.Answered()
				probeBackoff.Reset()
				w.log.Info("upstream answers again: outage over, draining the spool")
				continue
			}
			probeFailures.Inc()
			wait := w.nextDelay(probeBackoff)
			w.log.Debug("upstream probe failed", "err", err, "next_in", wait)
			sleep(ctx, wait, w.outage.Ended())
			continue
		}
		probeBackoff.Reset()
		recs, err := w.store.Oldest(w.cfg.DrainBatch)
		if err != nil {
			spoolReadErrors.Inc()
			w.log.Error("reading the spool failed; retrying", "err", err, "in", w.cfg.DrainPoll)
			sleep(ctx, w.cfg.DrainPoll, nil)
			continue
		}
		if len(recs) == 0 {
			t := time.NewTimer(w.cfg.DrainPoll)
			select {
			case <-ctx.Done():
			case <-w.spooled:
			case <-w.outage.Started():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		progress, retryIn := w.drainBatch(ctx, recs)
		if progress > 0 {
			stuckBackoff.Reset()
			continue
		}
		// Nothing of the batch left the spool: its keys are rate limited
		// (wait for the first limit to expire), or something fails that is
		// not an outage (e.g. the dead letters cannot be written: back off).
		// Do not spin either way.
		if w.outage.Active() {
			continue
		}
		if retryIn <= 0 {
			retryIn = w.nextDelay(stuckBackoff)
		}
		sleep(ctx, retryIn, w.outage.Started())
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
// records left the spool and, when some were deferred, how long until the
// first of their limits expires.
func (w *Worker) drainBatch(ctx context.Context, recs []spool.Record) (progress int, retryIn time.Duration) {
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
		case drainSent, drainBuried:
			ids = append(ids, recs[i].ID)
		case drainDeferred:
			if retryIn == 0 || waits[i] < retryIn {
				retryIn = waits[i]
			}
		}
	}
	if len(ids) == 0 {
		return 0, retryIn
	}
	// Retry the delete until it works: re-sending a batch because its delete
	// failed would only make duplicates. On shutdown, give up: the records
	// are sent again after the restart.
	b := w.newBackoff()
	for {
		err := w.store.Delete(ids...)
		if err == nil {
			return len(ids), retryIn
		}
		spoolDelErrors.Inc()
		wait := w.nextDelay(b)
		w.log.Error("deleting drained records from the spool failed; retrying", "records", len(ids), "err", err, "in", wait)
		if ctx.Err() != nil {
			return 0, retryIn
		}
		sleep(ctx, wait, nil)
	}
}

// drainOne delivers one spooled record: forward decides, drainOne maps the
// outcome onto the record (delete it, skip it for now, or keep it and stop
// the batch).
func (w *Worker) drainOne(ctx context.Context, rec spool.Record) (drainOutcome, time.Duration) {
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
		return drainSent, 0
	case outcomeBuried:
		return drainBuried, 0
	case outcomeHeld:
		return drainDeferred, o.wait
	default: // outage, shutdown, dead letters refusing
		return drainKeep, o.wait
	}
}
