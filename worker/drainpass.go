package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/relayhq/relay/spool"
)

// The drain pipeline's bounds. A pass keeps up to DrainConcurrency sends in
// flight at all times instead of waiting for the slowest send of a batch and
// its delete before reading on; these bound what it holds meanwhile.
const (
	// drainWindow bounds how far a pass runs ahead of its oldest record not
	// yet settled: a record is dispatched only while fewer than drainWindow
	// records separate it from the oldest one whose send has not finished
	// or whose delete has not been committed. It is the ordering guarantee
	// (no record is sent before every record drainWindow places older in
	// the spool was accepted or set aside) and the bound on duplicates
	// after a kill (sent records whose delete was not committed).
	drainWindow = 1024
	// drainBytes bounds the bytes of spool records read and not yet sent
	// (the same figure as the consumers' byteBudget): with 200 KB envelopes
	// a window's worth would be 200 MB. One record larger than it is still
	// read, alone.
	drainBytes = 8 << 20
)

// drainSlot is one record of a pass's window.
type drainSlot struct {
	rec  spool.Record // Data is released once its send finished
	size int64
	done bool // the send finished: o holds its outcome
	o    drainOutcome
	wait time.Duration
}

type drainJob struct {
	seq int
	rec spool.Record
}

type drainResult struct {
	seq  int
	o    drainOutcome
	wait time.Duration
}

// passResult is what one pass over the spool did: how many records left it
// (deleted, committed), the shortest hold among the records it skipped, and
// whether it stopped short of the spool's end — a record it could not settle
// (outage, shutdown, the dead letters refusing) or did not reach. seen is how
// many records it read; 0 means the spool was empty.
type passResult struct {
	progress int
	retryIn  time.Duration
	stopped  bool
	seen     int
}

var drainDeleteCommits = metrics.NewCounter(`relay_worker_drain_delete_commits_total`)

// drainSpoolPass walks the spool once, oldest first, from its head to its
// end, sending each record with up to DrainConcurrency sends in flight
// continuously, and deleting what was delivered in grouped commits that run
// beside the sends.
//
// The order: records are dispatched to the senders strictly in spool order,
// so a request for a record starts only after the requests of every older
// record of the pass started; with concurrent sends an older record's
// request may still be in flight (and be accepted later) when a younger one
// is accepted, but never one more than drainWindow places older. With
// DrainConcurrency 1 the drain is strictly oldest first.
//
// The durability: a record is deleted only after its send returned
// drainSent or drainBuried (a 2xx, or a burial in the dead letters) —
// deletes are issued for the settled prefix of the window, in order. Once a
// send finds the upstream in outage (or a record cannot be settled, or ctx
// ends) no more are dispatched; what is in flight finishes, what was
// delivered is deleted, the rest stays. A kill at any point loses nothing:
// the records whose delete was not committed are sent again after the
// restart (duplicates, at most drainWindow).
//
// onDeleted, when not nil, is called after every delete commit with the
// number of records it removed that were sent and buried.
func (w *Worker) drainSpoolPass(ctx context.Context, onDeleted func(sent, buried int)) (res passResult, err error) {
	senders := max(1, w.cfg.DrainConcurrency)
	window := max(drainWindow, w.cfg.DrainBatch+senders)

	jobs := make(chan drainJob)
	results := make(chan drainResult, senders)
	var sendersWG sync.WaitGroup
	for range senders {
		sendersWG.Add(1)
		go func() {
			defer sendersWG.Done()
			for j := range jobs {
				o, wait := w.drainOne(ctx, j.rec)
				results <- drainResult{seq: j.seq, o: o, wait: wait}
			}
		}()
	}

	// The deleter commits one group of IDs at a time; while it commits, the
	// next group collects.
	type delGroup struct {
		ids  []uint64
		sent int // of ids, those the upstream accepted; the rest were buried
		end  int // seq just past the group's last record
	}
	delJobs := make(chan delGroup)
	delDone := make(chan bool, 1)
	go func() {
		defer close(delDone)
		for g := range delJobs {
			delDone <- w.deleteDrained(ctx, g.ids)
		}
	}()

	var (
		slots    []drainSlot // the window: slots[0] is the record of seq base
		base     int         // seq of slots[0]
		dispatch int         // seq of the next record to send
		settled  int         // seq up to which every send finished (and its delete was queued)
		inFlight int         // sends running
		held     int64       // bytes read and not yet sent
		after    uint64      // the last ID read
		atEnd    bool        // the last read found nothing more
		stopping bool
		pending  delGroup  // delivered records of the settled prefix, not yet handed to the deleter
		deleting *delGroup // the group being committed
		avg      = int64(initialEstimate)
	)
	// release drops the window's slots below seq upTo: sent and, when
	// delivered, deleted.
	release := func(upTo int) {
		n := upTo - base
		clear(slots[:n])
		slots = slots[n:]
		base = upTo
	}
	// startDelete hands the pending group to the deleter when it is idle
	// and the group is worth a commit: DrainBatch records, or whatever is
	// pending once nothing else is in flight, the pass is stopping, or the
	// window is half taken (the window waits for deletes).
	startDelete := func() {
		if deleting != nil || len(pending.ids) == 0 {
			return
		}
		if len(pending.ids) < w.cfg.DrainBatch && inFlight > 0 && !stopping && dispatch-base < window/2 {
			return
		}
		g := pending
		g.end = settled
		deleting, pending = &g, delGroup{}
		delJobs <- g
	}

	for {
		if !stopping && (ctx.Err() != nil || w.outage.Active()) {
			stopping = true
		}
		// Read on once everything read was dispatched, while the window
		// and the byte bound leave room: fewer records at a time when they
		// are large, so what is held follows drainBytes, not the record
		// size.
		loaded := base + len(slots)
		if !stopping && !atEnd && dispatch == loaded && loaded-base < window && held < drainBytes {
			n := min(w.cfg.DrainBatch, window-(loaded-base), int(max(1, (drainBytes-held)/max(avg, 1))))
			recs, rerr := w.store.OldestAfter(after, n)
			switch {
			case rerr != nil:
				spoolReadErrors.Inc()
				err = fmt.Errorf("read the spool: %w", rerr)
				stopping = true
			case len(recs) == 0:
				atEnd = true
			default:
				var sum int64
				for _, r := range recs {
					size := int64(len(r.Data))
					sum += size
					slots = append(slots, drainSlot{rec: r, size: size})
				}
				held += sum
				avg = sum / int64(len(recs))
				after = recs[len(recs)-1].ID
				res.seen += len(recs)
			}
			continue
		}

		var jobCh chan drainJob
		var job drainJob
		if !stopping && dispatch < loaded && dispatch-base < window {
			jobCh = jobs
			job = drainJob{seq: dispatch, rec: slots[dispatch-base].rec}
		}
		if jobCh == nil && inFlight == 0 && deleting == nil && len(pending.ids) == 0 && (stopping || (atEnd && dispatch == loaded)) {
			break
		}
		var resCh chan drainResult
		if inFlight > 0 {
			resCh = results
		}
		var delCh chan bool
		if deleting != nil {
			delCh = delDone
		}
		select {
		case jobCh <- job:
			dispatch++
			inFlight++
		case r := <-resCh:
			inFlight--
			s := &slots[r.seq-base]
			s.done, s.o, s.wait = true, r.o, r.wait
			held -= s.size
			s.rec.Data = nil
			switch r.o {
			case drainKeep:
				stopping = true
				res.stopped = true
			case drainDeferred:
				if res.retryIn == 0 || r.wait < res.retryIn {
					res.retryIn = r.wait
				}
			}
			// Advance the settled prefix, queueing its deliveries for
			// delete in spool order.
			for settled < dispatch && slots[settled-base].done {
				switch s := &slots[settled-base]; s.o {
				case drainSent:
					pending.ids = append(pending.ids, s.rec.ID)
					pending.sent++
				case drainBuried:
					pending.ids = append(pending.ids, s.rec.ID)
				}
				settled++
			}
			if deleting == nil && len(pending.ids) == 0 {
				release(settled)
			}
			startDelete()
		case ok := <-delCh:
			g := *deleting
			deleting = nil
			if ok {
				res.progress += len(g.ids)
				if onDeleted != nil {
					onDeleted(g.sent, len(g.ids)-g.sent)
				}
			} else {
				// The deleter gave up (shutdown): these records stay in the
				// spool and are sent again after the restart.
				stopping = true
			}
			release(g.end)
			if len(pending.ids) == 0 {
				release(settled)
			}
			startDelete()
		}
	}
	close(jobs)
	sendersWG.Wait()
	close(delJobs)
	for range delDone {
	}
	if stopping {
		res.stopped = true
	}
	return res, err
}

// deleteDrained deletes delivered records from the spool, retrying until it
// works: re-sending them because their delete failed would only make
// duplicates. On shutdown it gives up (the records are sent again after the
// restart) and reports false.
func (w *Worker) deleteDrained(ctx context.Context, ids []uint64) bool {
	b := w.newBackoff()
	for {
		err := w.store.Delete(ids...)
		if err == nil {
			drainDeleteCommits.Inc()
			return true
		}
		spoolDelErrors.Inc()
		wait := w.nextDelay(b)
		w.log.Error("deleting drained records from the spool failed; retrying", "records", len(ids), "err", err, "in", wait)
		if ctx.Err() != nil {
			return false
		}
		sleep(ctx, wait, nil)
	}
}
