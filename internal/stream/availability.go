package stream

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
)

// availability is the process's one view of whether JetStream answers. A
// NATS outage fails every publish of every ingest request and every fetch
// of every worker goroutine at once; logging each would print hundreds of
// identical lines per process and bury the one that matters. So operations
// report their failures here and only the changes of state are logged: one
// WARN when JetStream stops answering (the connection is lost, or the
// stream has no leader), one INFO when it answers again, with how long it
// was away and how many operations failed meanwhile. The operations
// themselves log at DEBUG.
//
// Going down is what any operation's ErrUnavailable says. Coming back is
// decided by one watcher, owned by the Conn and running only while down: it
// asks for the stream's info (which needs the connection and the stream's
// leader) every recheckEvery and ends the outage when it is answered. Not
// by the operations' successes: while a server shuts down or a leader moves,
// a few still pass between failures, and each would log another pair of
// lines; for the same reason the watcher needs recheckAnswers answers in a
// row. So an outage lasts at least a second in the logs.
type availability struct {
	log   *slog.Logger
	check func(context.Context) error // a stream info round trip
	conn  func() nats.Status

	down     atomic.Bool
	upAt     atomic.Int64 // unix nanoseconds of the last recovery
	mu       sync.Mutex
	since    time.Time
	failures int64
	stop     chan struct{} // closed by close: the watcher exits
	stopped  bool
	wg       sync.WaitGroup
}

// recheckEvery is how often the watcher asks whether the stream answers
// again while it is down; recheckAnswers checks in a row must be answered.
// A server that is shutting down still answers some requests for a moment,
// and a leader election can answer once and then lose its leader again.
const (
	recheckEvery   = 500 * time.Millisecond
	recheckAnswers = 2
)

var (
	streamDownTransitions = metrics.NewCounter(`relay_stream_unavailable_total`)
	streamDownGauge       = metrics.NewGauge(`relay_stream_unavailable`, nil)
)

func newAvailability(log *slog.Logger, check func(context.Context) error, conn func() nats.Status) *availability {
	return &availability{log: log, check: check, conn: conn, stop: make(chan struct{})}
}

// failed records that op ("publish", "fetch", …), started at started,
// found JetStream unavailable. The first failure after JetStream answered is
// logged. An operation that started before the last recovery proves nothing
// new (a publish that waited out the outage fails just after it), so it is
// counted but does not start another outage.
func (a *availability) failed(op string, started time.Time, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down.Load() || started.UnixNano() < a.upAt.Load() {
		a.failures++
		return
	}
	if a.stopped {
		return // closing: the failures are ours, not JetStream's
	}
	a.down.Store(true)
	a.since, a.failures = time.Now(), 1
	streamDownTransitions.Inc()
	streamDownGauge.Set(1)
	reason := "the stream does not answer (no leader, or the server lost JetStream)"
	if st := a.conn(); st != nats.CONNECTED {
		reason = "the connection to NATS is lost (" + st.String() + ")"
	}
	a.log.Warn("jetstream unavailable: ingest answers 503 and workers wait; retrying until it is back",
		"reason", reason, "op", op, "err", err)
	a.wg.Add(1)
	go a.watch()
}

// ok ends the outage: the watcher's check that started at started was
// answered. A check that started before the outage proves nothing about now.
func (a *availability) ok(started time.Time) {
	if !a.down.Load() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.down.Load() || started.Before(a.since) {
		return
	}
	a.down.Store(false)
	a.upAt.Store(time.Now().UnixNano())
	streamDownGauge.Set(0)
	a.log.Info("jetstream available again", "down_for", time.Since(a.since).Round(time.Millisecond),
		"failed_operations", a.failures)
}

// watch asks the stream for its info until it answers (then ok) or the
// Conn closes.
func (a *availability) watch() {
	defer a.wg.Done()
	t := time.NewTicker(recheckEvery)
	defer t.Stop()
	answered := 0
	for a.down.Load() {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), recheckEvery)
		err := a.check(ctx)
		cancel()
		if err != nil || a.conn() != nats.CONNECTED {
			answered = 0
			continue
		}
		if answered++; answered >= recheckAnswers {
			a.ok(start)
		}
	}
}

// close stops the watcher and waits for it; failures after it are not
// logged (a closing connection fails operations on purpose).
func (a *availability) close() {
	a.mu.Lock()
	if !a.stopped {
		a.stopped = true
		close(a.stop)
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// streamAnswers is the watcher's proof that JetStream is back: the stream's
// info, which needs the connection and the stream's leader.
func (c *Conn) streamAnswers(ctx context.Context) error {
	_, err := c.stream.Info(ctx)
	return err
}

// noteUnavailable reports err (an ErrUnavailable of op) to the process's
// availability, unless the caller gave up (its ctx was cancelled: a client
// went away) or the Conn is closing: neither says anything about JetStream.
// A deadline that passed does count: JetStream did not answer in time.
func (c *Conn) noteUnavailable(ctx context.Context, op string, started time.Time, err error) {
	if errors.Is(ctx.Err(), context.Canceled) || c.closing.Load() {
		return
	}
	c.avail.failed(op, started, err)
}
