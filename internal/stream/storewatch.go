package stream

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats-server/v2/server"
)

// Keeping the embedded store writable.
//
// When a write to the store fails — a full disk, above all — nats-server
// (v2.15.2) marks the file store broken for good: every later write returns
// the same error, publishers get no answer at all (it does not reply to a
// publish it failed to store), and nothing clears it short of reloading the
// stream; on some paths (permission errors, clustered out-of-space) it shuts
// JetStream down instead, and nothing turns it back on. Left alone the relay
// would take minutes of publish timeouts per request and never recover
// without a restart.
//
// So the embedded Conn watches the store (storeWatch): every
// storeCheckEvery, and at once when nats-server logs a write error, it asks
// the server whether JetStream is on and the stream has no write error. While
// not, Publish fails at once with ErrFull (out of space) or ErrUnavailable
// (any other write error) — a 503 with Retry-After from ingest — and Ready
// fails the same way. Once the store's filesystem has storeRecoverFree bytes
// free again it reloads JetStream (ShutdownJetStream, EnableJetStream): the
// stream is recovered from its files, as at a start — the messages it had
// acknowledged are there, a record cut short by the failed write was never
// acknowledged and is dropped — and publishes succeed again. No restart.
var (
	storeFailures   = metrics.NewCounter(`relay_stream_store_failures_total`)
	storeRecoveries = metrics.NewCounter(`relay_stream_store_recoveries_total`)
	// Publishes refused at once because the store was known broken (also in
	// relay_stream_publish_failed_total by their reason).
	publishRefusedStoreDown = metrics.NewCounter(`relay_stream_publish_refused_store_down_total`)
)

const (
	defaultStoreCheckEvery = time.Second
	// storeRecoverFree is the free space the store's filesystem needs
	// before JetStream is reloaded: reloading writes (index, state) and a
	// reload straight into a full disk would only fail again.
	storeRecoverFree = 4 << 20
)

// storeDown is why the store cannot take writes; nil while it can.
type storeDown struct {
	err error // wraps ErrFull or ErrUnavailable
}

// downErr returns the error a publish gets while the store is broken, or
// nil.
func (c *Conn) downErr() error {
	if d := c.down.Load(); d != nil {
		return d.err
	}
	return nil
}

// storeWatch runs until stop is closed; kick asks for a check now.
func (c *Conn) storeWatch(every time.Duration, kick <-chan struct{}, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		case <-kick:
		}
		c.checkStore()
	}
}

// storeProblem asks the server whether the stream can take writes.
func (c *Conn) storeProblem() error {
	if !c.srv.JetStreamEnabled() {
		return errors.New("jetstream is disabled")
	}
	h := c.srv.Healthz(&server.HealthzOptions{Account: server.DEFAULT_GLOBAL_ACCOUNT, Stream: c.cfg.Stream})
	if h.Error != "" && strings.Contains(h.Error, "write error") {
		return errors.New(h.Error)
	}
	return nil
}

func (c *Conn) checkStore() {
	problem := c.storeProblem()
	if problem == nil {
		if c.down.Load() != nil {
			c.down.Store(nil)
			storeRecoveries.Inc()
			c.log.Info("jetstream store takes writes again", "store_dir", c.cfg.StoreDir)
		}
		return
	}
	free, ferr := diskFree(c.cfg.StoreDir)
	if c.down.Load() == nil {
		kind := ErrUnavailable
		if strings.Contains(problem.Error(), "no space left") || (ferr == nil && free < storeRecoverFree) {
			kind = ErrFull
		}
		c.down.Store(&storeDown{err: fmt.Errorf("store %s cannot take writes (%v): %w", c.cfg.StoreDir, problem, kind)})
		storeFailures.Inc()
		c.log.Error("jetstream store cannot take writes; publishes are refused until it is reloaded",
			"store_dir", c.cfg.StoreDir, "err", problem, "free_bytes", free, "reload_at_free_bytes", storeRecoverFree)
	}
	if ferr != nil {
		c.log.Warn("jetstream store: cannot tell free space; reloading anyway", "store_dir", c.cfg.StoreDir, "err", ferr)
	} else if free < storeRecoverFree {
		return // still full; the next check looks again
	}
	// The stream's write error is sticky: only a reload clears it.
	if c.srv.JetStreamEnabled() {
		if err := c.srv.ShutdownJetStream(); err != nil {
			c.log.Warn("jetstream store: shutting jetstream down for a reload", "err", err)
			return
		}
	}
	if err := c.srv.EnableJetStream(&server.JetStreamConfig{StoreDir: c.cfg.StoreDir}); err != nil {
		c.log.Warn("jetstream store: reload failed; trying again later", "store_dir", c.cfg.StoreDir, "err", err)
		return
	}
	if problem := c.storeProblem(); problem != nil {
		c.log.Warn("jetstream store: still cannot take writes after a reload", "store_dir", c.cfg.StoreDir, "err", problem)
		return
	}
	c.down.Store(nil)
	storeRecoveries.Inc()
	c.log.Info("jetstream store reloaded and takes writes again", "store_dir", c.cfg.StoreDir, "free_bytes", free)
}

// storeWatcher is the watch goroutine's handles, owned by Conn.
type storeWatcher struct {
	stop chan struct{}
	done chan struct{}
}

func (c *Conn) startStoreWatch(every time.Duration, kick <-chan struct{}) {
	c.watch = &storeWatcher{stop: make(chan struct{}), done: make(chan struct{})}
	go c.storeWatch(every, kick, c.watch.stop, c.watch.done)
}

func (c *Conn) stopStoreWatch() {
	if c.watch != nil {
		close(c.watch.stop)
		<-c.watch.done // at most one check (a reload) in progress
		c.watch = nil
	}
}
