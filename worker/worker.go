package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
	"github.com/relayhq/relay/spool"
)

// Source hands out messages from the stream (*stream.Consumer). Fetch blocks
// until at least one message is there, ctx is done, or a short expiry passes
// (then it may return no deliveries).
type Source interface {
	Fetch(ctx context.Context, max int) ([]*stream.Delivery, error)
}

// Sender talks to the upstream (*upstream.Client).
type Sender interface {
	Send(ctx context.Context, r upstream.Request) upstream.Result
	Probe(ctx context.Context) error
}

// Store is the spool (*spool.Spool): records of encoded stream.Messages,
// oldest first (OldestAfter(0, n) is the head), and the dead letters for envelopes that can never be
// delivered. Put returns only once the record is durable; it wraps
// spool.ErrFull when the spool is at its size cap. Bury wraps
// spool.ErrDeadFull when the dead letters are at their cap (nothing is ever
// evicted), and DeadFull reports that state.
type Store interface {
	Put(ctx context.Context, data []byte) error
	OldestAfter(after uint64, n int) ([]spool.Record, error)
	Delete(ids ...uint64) error
	Bury(ctx context.Context, data []byte, reason string) error
	Full() bool
	DeadFull() bool
}

// The real parts satisfy the interfaces; tests may substitute any of them.
var (
	_ Source = (*stream.Consumer)(nil)
	_ Sender = (*upstream.Client)(nil)
	_ Store  = (*spool.Spool)(nil)
)

// Worker consumes the stream and forwards to the upstream; see the package
// documentation for its invariants.
type Worker struct {
	cfg   Config
	src   Source
	send  Sender
	store Store
	log   *slog.Logger
	pipe  pipeline
	now   func() time.Time // the clock of every decision (outage, holds, envelope age)

	outage  *outageDetector
	limits  *rateLimiter
	sharer  LimitSharer // nil: limits stay in this process (sharelimits.go)
	denied  *denials
	held    *heldSet
	slots   chan struct{} // capacity Concurrency: a consumer's send holds one
	budget  *byteBudget   // bytes of the messages held (Config.MaxHeldBytes)
	spooled chan struct{} // capacity 1: a Put wakes the idle drainer
	drained drainRun      // what the drainer sent since the spool was last empty (outagelog.go)
	paused  atomic.Int32  // consumers paused by a full spool (logged on 0↔1)
	// deadFull is set when a Bury was refused with spool.ErrDeadFull and
	// cleared by the first consumer that finds room again (logged on each
	// change): while it is set no consumer fetches.
	deadFull atomic.Bool
	running  atomic.Bool
	helpers  *helpers // run a batch's deliveries (helpers.go)
}

// New returns a Worker that runs stages, in the order given, on every
// message before forwarding it. The relay's order is filter → scrub →
// enrich; stage names must be unique (they label metrics and logs).
func New(cfg Config, src Source, send Sender, store Store, log *slog.Logger, stages ...Stage) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil || send == nil || store == nil {
		return nil, errors.New("worker: source, sender and store are required")
	}
	if log == nil {
		log = slog.Default()
	}
	p, err := newPipeline(stages)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	w := &Worker{
		now:     time.Now,
		cfg:     cfg,
		src:     src,
		send:    send,
		store:   store,
		log:     log.With("component", "worker"),
		pipe:    p,
		outage:  newOutageDetector(cfg.OutageGracePeriod, time.Now),
		limits:  newRateLimiter(time.Now),
		denied:  newDenials(time.Now, cfg.RetryDelay, cfg.MaxRetryInterval),
		held:    newHeldSet(),
		slots:   make(chan struct{}, cfg.Concurrency),
		budget:  newByteBudget(cfg.MaxHeldBytes),
		spooled: make(chan struct{}, 1),
		helpers: newHelpers(),
	}
	w.outage.onStart, w.outage.onEnd = w.logOutageStart, w.logOutageEnd
	return w, nil
}

// Run runs Config.Concurrency consumers, the drainer and the heartbeat until
// ctx is cancelled, and returns once every one of them has exited. On
// cancellation consumers stop fetching, in-flight sends are cancelled and
// their messages Nak'd (redelivered promptly, never acked); a message whose
// fate was already decided (2xx, spool commit) is still acked. Closing the stream and the spool is the caller's job,
// after Run returned. Run may be called once.
func (w *Worker) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("worker: Run called twice")
	}
	w.log.Info("worker started", "concurrency", w.cfg.Concurrency, "fetch_batch", w.cfg.FetchBatch,
		"stages", len(w.pipe.stages), "outage_grace_period", w.cfg.OutageGracePeriod)

	// The heartbeat outlives the consumers: they hold messages until they
	// have exited, so it stops only after them.
	beatCtx, stopBeat := context.WithCancel(context.WithoutCancel(ctx))
	var beatWG sync.WaitGroup
	beatWG.Add(1)
	go func() {
		defer beatWG.Done()
		w.held.heartbeat(beatCtx, w.cfg.AckWait/3, w.log)
	}()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.drain(ctx)
	}()
	for range w.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.consume(ctx)
		}()
	}
	wg.Wait()
	// The consumers waited for their batches: every helper is idle now.
	w.helpers.stop()
	stopBeat()
	beatWG.Wait()
	w.log.Info("worker stopped")
	return nil
}

// consume is one consumer: fetch a small batch, handle each message, repeat.
func (w *Worker) consume(ctx context.Context) {
	fetchBackoff := w.newBackoff()
	for ctx.Err() == nil {
		// Back-pressure: while the upstream is in outage and the spool is
		// full, taking more from the stream would only mean holding more
		// un-acked messages. Leaving them in the stream lets it fill, and
		// ingest answers 503 — the pressure goes back to the SDKs.
		if w.outage.Active() && w.store.Full() {
			w.pause(ctx)
			continue
		}
		// The same when the dead letters are full and an envelope could not
		// be buried: every envelope that needs burying would be handed back
		// again and again. The stream fills, ingest answers 503, and the
		// operator was told why (deadLettersFull). It resumes by itself
		// once the dead letters have been purged.
		if w.deadLettersBlocked() {
			w.pauseDead(ctx)
			continue
		}
		reserved := w.budget.reserve(ctx, w.cfg.FetchBatch)
		if ctx.Err() != nil {
			return
		}
		ds, err := w.src.Fetch(ctx, w.cfg.FetchBatch)
		var sizes [16]int64 // on the stack for batches up to 16
		w.budget.settle(reserved, messageSizes(sizes[:0], ds))
		if len(ds) > 0 {
			w.handleBatch(ctx, ds)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			fetchErrorsTotal.Inc()
			wait := w.nextDelay(fetchBackoff)
			w.log.Log(ctx, streamErrLevel(err), "fetch from the stream failed; retrying", "err", err, "in", wait)
			sleep(ctx, wait, nil)
			continue
		}
		fetchBackoff.Reset()
	}
}

// messageSizes appends to sizes the encoded size of each stream message
// fetched, as the budget counts it: the members of a group (adjacent
// Deliveries with one stream sequence) are summed into one size, so the
// budget's estimate is of what one fetched message weighs — a group weighs
// its members together — and the reservation for FetchBatch messages before
// the next fetch stays honest. The total is still the sum of len(Raw()) that
// ack and nak release.
func messageSizes(sizes []int64, ds []*stream.Delivery) []int64 {
	first := len(sizes)
	for i, d := range ds {
		n := int64(len(d.Raw()))
		if i > 0 && len(sizes) > first && d.Sequence() == ds[i-1].Sequence() {
			sizes[len(sizes)-1] += n
			continue
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// pause waits while the spool is full during an outage.
func (w *Worker) pause(ctx context.Context) {
	pausedGauge.Inc()
	if w.paused.Add(1) == 1 {
		w.log.Warn("spool full during upstream outage: consumers stopped fetching; the stream keeps the envelopes")
	}
	sleep(ctx, w.cfg.BackpressureInterval, w.outage.Ended())
	if w.paused.Add(-1) == 0 && ctx.Err() == nil {
		w.log.Info("consumers resume fetching")
	}
	pausedGauge.Dec()
}

// deadLettersFull records that Bury refused with spool.ErrDeadFull; the
// first refusal after room was found is logged, every one counted.
func (w *Worker) deadLettersFull(err error) {
	deadFullRefusals.Inc()
	if w.deadFull.CompareAndSwap(false, true) {
		deadFullGauge.Set(1)
		w.log.Error("dead letters are full: consumers stopped taking from the stream, which will fill (ingest then answers 503); "+
			"look at and purge the dead letters with `relay spool dead`, or raise spool.max_dead_count / spool.max_dead_size",
			"err", err)
	}
}

// deadLettersBlocked reports whether consumers must not fetch because the
// dead letters are full; it clears the state once the spool has room.
func (w *Worker) deadLettersBlocked() bool {
	if !w.deadFull.Load() {
		return false
	}
	if w.store.DeadFull() {
		return true
	}
	if w.deadFull.CompareAndSwap(true, false) {
		deadFullGauge.Set(0)
		w.log.Info("dead letters have room again: consumers resume taking from the stream")
	}
	return false
}

// pauseDead waits while the dead letters are full.
func (w *Worker) pauseDead(ctx context.Context) {
	pausedGauge.Inc()
	sleep(ctx, w.cfg.BackpressureInterval, nil)
	pausedGauge.Dec()
}

// handleBatch handles every delivery of one fetch, concurrently, and returns
// once each has been released (acked or Nak'd) exactly once. All of them are
// held — heartbeats cover them — from the fetch on. Sends are bounded by the
// worker-wide slots (Config.Concurrency), not by the batch: a batch never
// queues behind one slow send while other slots are free, and in outage its
// spool Puts run together and share group commits. A consumer fetches again
// only when its whole batch is done, so at most Concurrency × FetchBatch
// stream messages are held at once, and it fetches only once the byte budget
// has room for another batch (budget.go).
//
// A fetch of FetchBatch messages returns more deliveries when some are
// groups (one per member, up to stream.MaxGroupMembers each); at most
// FetchBatch of them are handled at once, the rest wait their turn (held,
// so heartbeats keep them), so a consumer runs no more goroutines than a
// batch of lone messages needs.
func (w *Worker) handleBatch(ctx context.Context, ds []*stream.Delivery) {
	for _, d := range ds {
		w.held.add(d)
	}
	if len(ds) <= w.cfg.FetchBatch {
		runBatch(ctx, w.helpers, ds, w.handle)
		return
	}
	// Groups expanded the batch past FetchBatch deliveries: FetchBatch
	// lanes take the deliveries in order, so a batch never runs more
	// handlers at once than a batch of lone messages would.
	var next atomic.Int64
	lanes := make([]struct{}, w.cfg.FetchBatch)
	runBatch(ctx, w.helpers, lanes, func(ctx context.Context, _ struct{}) {
		for i := next.Add(1) - 1; i < int64(len(ds)); i = next.Add(1) - 1 {
			w.handle(ctx, ds[i])
		}
	})
}

// handle runs the stages on one held delivery and then delivers it. A
// panic on the way is this envelope's, and is contained here (handlePanic).
func (w *Worker) handle(ctx context.Context, d *stream.Delivery) {
	if p, stack := catch(func() { w.handleOne(ctx, d) }); p != nil {
		w.handlePanic(ctx, d, p, stack)
	}
}

func (w *Worker) handleOne(ctx context.Context, d *stream.Delivery) {
	if ctx.Err() != nil {
		w.nakShutdown(d)
		return
	}
	if d.NumDelivered() > 1 {
		redeliveredTotal.Inc()
	}
	m := &d.Msg
	before := *m
	out := w.pipe.run(ctx, m)
	switch {
	case out.err != nil:
		if ctx.Err() != nil {
			w.nakShutdown(d)
			return
		}
		w.log.Error("stage failed: envelope moved to the dead letters", "stage", out.stage,
			"event_id", m.EventID, "project", m.ProjectID, "err", out.err)
		w.dispose(ctx, d, w.bury(ctx, newParcel(m, nil, nil), "stage_error: "+out.stage, droppedStageError))
	case out.dropped:
		w.log.Debug("envelope dropped", "stage", out.stage, "reason", out.reason, "event_id", m.EventID, "project", m.ProjectID)
		w.ack(d)
	default:
		w.deliver(ctx, d, spoolData(d, &before))
	}
}

// deliver forwards one message until its fate is decided, and releases it.
// forward decides; deliver only disposes of the outcome — and, in outage,
// moves the message into the spool (acked only after Put returned nil; held
// while the spool is full or failing). Waits wake early when the outage
// state flips. data is the message's spool encoding when it is at hand
// (spoolData), else nil.
func (w *Worker) deliver(ctx context.Context, d *stream.Delivery, data []byte) {
	m := &d.Msg
	p := newParcel(m, data, w.slots)
	var spoolBackoff *backoff.ExponentialBackOff // made on the first spool failure
	for {
		o := w.forward(ctx, p)
		if o.kind == outcomeHeld && o.spool {
			// A denial that lasts: keep the envelope in the spool, not
			// un-acked in the stream. If the spool cannot take it now, it
			// goes back to JetStream for the hold as usual.
			if w.spoolNow(ctx, d, p) {
				return
			}
		}
		if o.kind != outcomeOutage {
			w.dispose(ctx, d, o)
			return
		}
		err := w.spoolPut(ctx, d, p)
		if err == nil {
			return
		}
		if errors.Is(err, errEncode) {
			// Cannot happen for a decoded message; never ack it.
			w.log.Error("encode for the spool failed", "event_id", m.EventID, "err", err)
			w.nak(d, w.cfg.MaxRetryInterval)
			nakedTotal.Inc()
			return
		}
		if ctx.Err() != nil {
			w.nakShutdown(d)
			return
		}
		wait := w.cfg.BackpressureInterval
		if !errors.Is(err, spool.ErrFull) {
			if spoolBackoff == nil {
				spoolBackoff = w.newBackoff()
			}
			wait = w.nextDelay(spoolBackoff)
			w.log.Error("spool put failed; holding the envelope un-acked", "event_id", m.EventID, "err", err, "retry_in", wait)
		}
		spoolWaitGauge.Inc()
		sleep(ctx, wait, w.outage.Ended())
		spoolWaitGauge.Dec()
	}
}

// errEncode wraps a failure to encode a message for the spool (cannot
// happen for a decoded message).
var errEncode = errors.New("worker: encode for the spool")

// spoolPut puts the delivery's message into the spool and, once the Put
// committed, acks it: the stream path's one spool hand-off. A refusal is
// counted (full, or failed) and returned; the message is then neither acked
// nor released, and the caller decides when to try again.
func (w *Worker) spoolPut(ctx context.Context, d *stream.Delivery, p *parcel) error {
	data, err := p.encoded()
	if err != nil {
		return fmt.Errorf("%w: %w", errEncode, err)
	}
	if err := w.store.Put(ctx, data); err != nil {
		if errors.Is(err, spool.ErrFull) {
			spoolFullTotal.Inc()
		} else if ctx.Err() == nil {
			spoolPutErrors.Inc()
		}
		return err
	}
	spooledTotal.Inc()
	w.wakeDrainer()
	w.ack(d)
	return nil
}

// spoolNow tries one spoolPut and reports whether the message is now in the
// spool (and acked).
func (w *Worker) spoolNow(ctx context.Context, d *stream.Delivery, p *parcel) bool {
	err := w.spoolPut(ctx, d, p)
	if err != nil && !errors.Is(err, spool.ErrFull) && ctx.Err() == nil {
		w.log.Error("spool put failed; the envelope goes back to the stream", "event_id", p.m.EventID, "err", err)
	}
	return err == nil
}

// dispose releases a delivery as forward decided: ack what was delivered or
// buried, hand back everything else. It holds the ack invariant of the
// stream path: an ack only ever follows outcomeSent or outcomeBuried (or a
// spool commit, in deliver).
func (w *Worker) dispose(ctx context.Context, d *stream.Delivery, o outcome) {
	switch o.kind {
	case outcomeSent:
		forwardedTotal.Inc()
		w.ack(d)
	case outcomeBuried:
		w.ack(d)
	case outcomeHeld:
		// Waiting here would tie up this consumer and its batch — soon
		// every consumer would wait for one limited key while others
		// starve — so the message goes back to JetStream, to be
		// redelivered when the hold has expired.
		deferredTotal.Inc()
		w.nak(d, o.wait)
	default: // kept (or an outage the caller did not spool for)
		if ctx.Err() != nil {
			w.nakShutdown(d)
			return
		}
		wait := o.wait
		if wait <= 0 {
			wait = w.redeliveryDelay(d)
		}
		nakedTotal.Inc()
		w.nak(d, wait)
	}
}

// ack releases d and acknowledges it without waiting for the server's
// answer (the ack rule in the package documentation): the decision is made
// and durable elsewhere (2xx, spool commit, dead letter, a stage's drop), so
// a lost ack only brings the message back — a duplicate, never a loss. An
// ack sent during shutdown still reaches the server: the connection is
// drained when the caller closes it after Run.
func (w *Worker) ack(d *stream.Delivery) {
	w.held.release(d)
	w.budget.release(int64(len(d.Raw())))
	if err := d.AckNoWait(); err != nil {
		ackErrorsTotal.Inc()
		w.log.Log(context.Background(), streamErrLevel(err), "ack failed; the message will be redelivered (a duplicate upstream)", "event_id", d.Msg.EventID, "err", err)
	}
}

// shutdownRedeliveryDelay is the Nak delay for messages handed back on
// shutdown. Not zero: a consumer of this process whose Fetch is being
// cancelled may still have a pull request registered on the server (its
// unsubscribe can reach the server after our Nak), and JetStream would hand
// the message straight to it, where nobody reads it any more — it would then
// wait a whole AckWait. After this delay only live pull requests get it.
const shutdownRedeliveryDelay = 500 * time.Millisecond

// nakShutdown hands d back because the worker is stopping.
func (w *Worker) nakShutdown(d *stream.Delivery) {
	nakedTotal.Inc()
	w.nak(d, shutdownRedeliveryDelay)
}

// nak releases d and hands it back to JetStream for redelivery after delay.
func (w *Worker) nak(d *stream.Delivery, delay time.Duration) {
	w.held.release(d)
	w.budget.release(int64(len(d.Raw())))
	if err := d.Nak(delay); err != nil {
		nakErrorsTotal.Inc()
		w.log.Log(context.Background(), streamErrLevel(err), "nak failed; the message is redelivered after ack wait", "event_id", d.Msg.EventID, "err", err)
	}
}

// redeliveryDelay grows with the number of deliveries: RetryDelay·2^(n-1),
// capped by MaxRetryInterval.
func (w *Worker) redeliveryDelay(d *stream.Delivery) time.Duration {
	delay := w.cfg.RetryDelay
	for n := d.NumDelivered(); n > 1 && delay < w.cfg.MaxRetryInterval; n-- {
		delay *= 2
	}
	return min(delay, w.cfg.MaxRetryInterval)
}

func (w *Worker) wakeDrainer() {
	select {
	case w.spooled <- struct{}{}:
	default:
	}
}

// newBackoff is the retry policy: exponential from RetryDelay, jittered
// (±50 %), never giving up (MaxElapsedTime 0). nextDelay caps each interval,
// jitter included, at MaxRetryInterval.
func (w *Worker) newBackoff() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(w.cfg.RetryDelay),
		backoff.WithMaxInterval(w.cfg.MaxRetryInterval),
		backoff.WithMaxElapsedTime(0),
	)
}

// retryWait is the wait before re-sending after a retryable failure: the
// next backoff interval, or the Retry-After a 503 may carry when that is
// longer — still capped at MaxRetryInterval.
func (w *Worker) retryWait(b *backoff.ExponentialBackOff, res upstream.Result) time.Duration {
	return min(max(w.nextDelay(b), res.RetryAfter), w.cfg.MaxRetryInterval)
}

func (w *Worker) nextDelay(b *backoff.ExponentialBackOff) time.Duration {
	d := b.NextBackOff()
	if d == backoff.Stop || d > w.cfg.MaxRetryInterval {
		d = w.cfg.MaxRetryInterval
	}
	return d
}

// sleep waits for d, or until ctx is done or wake is closed (nil: never).
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}

// streamErrLevel is the level for a failed stream operation: debug when
// JetStream is away (the stream logs that once per process, not each of the
// Concurrency consumers per message; the operation is still counted), warn
// for anything else.
func streamErrLevel(err error) slog.Level {
	if errors.Is(err, stream.ErrUnavailable) {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}
