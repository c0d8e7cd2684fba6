package worker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
	"github.com/relayhq/relay/spool"
)

// The integration tests run the real parts: an embedded JetStream in
// t.TempDir(), a bbolt spool, the upstream client, and a fake Sentry on
// 127.0.0.1. Each keeps a ledger of the event ids it published and checks
// that every one of them reached the fake Sentry.

const (
	testProject = 42
	keyA        = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	keyB        = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	durable     = "relay-worker"
)

type harnessOpts struct {
	ackWait   time.Duration // stream AckWait (≥ 1s); default 30s
	spoolMax  int64         // spool MaxDiskSize; 0 = unlimited
	maxBuried int           // spool MaxBuried (dead-letter cap); 0 = the default
	spoolPath string        // reuse a spool directory (restart tests)
	storeDir  string        // reuse a JetStream store (restart tests)
	// dropPayloads: the fake Sentry keeps no envelope bytes (memory tests)
	dropPayloads bool
}

type harness struct {
	t      *testing.T
	opts   harnessOpts
	conn   *stream.Conn
	js     jetstream.JetStream // a second client, to inspect the stream
	spool  *spool.Spool
	client *upstream.Client
	sender Sender      // what the worker sends with; nil = client
	sharer LimitSharer // given to the worker when set
	up     *fakesentry.Server
	log    *slog.Logger

	mu     sync.Mutex
	ledger []string          // event ids in publish order
	keyOf  map[string]string // event id → public key it was published for
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	if o.ackWait == 0 {
		o.ackWait = 30 * time.Second
	}
	if o.storeDir == "" {
		o.storeDir = t.TempDir()
	}
	if o.spoolPath == "" {
		o.spoolPath = filepath.Join(t.TempDir(), "spool.db")
	}
	h := &harness{t: t, opts: o, log: testLogger(t), keyOf: make(map[string]string)}
	h.up = fakesentry.New(fakesentry.Options{Logger: h.log, DropPayloads: o.dropPayloads})
	t.Cleanup(h.up.Close)
	h.openStream()
	h.openSpool()
	c, err := upstream.New(upstream.Config{URL: h.up.URL(), Timeout: 5 * time.Second, ConnectionTimeout: time.Second})
	if err != nil {
		t.Fatalf("upstream.New: %v", err)
	}
	h.client = c
	t.Cleanup(c.Close)
	return h
}

func (h *harness) openStream() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := stream.Open(ctx, stream.Config{
		StoreDir:  h.opts.storeDir,
		AckWait:   h.opts.ackWait,
		FetchWait: 100 * time.Millisecond,
		Listen:    "127.0.0.1:0",
	}, h.log)
	if err != nil {
		h.t.Fatalf("stream.Open: %v", err)
	}
	h.conn = conn
	nc, err := nats.Connect(conn.ClientURL())
	if err != nil {
		h.t.Fatalf("inspect connection: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		h.t.Fatalf("inspect jetstream: %v", err)
	}
	h.js = js
	h.t.Cleanup(func() {
		nc.Close()
		if err := conn.Close(); err != nil {
			h.t.Errorf("stream close: %v", err)
		}
	})
}

func (h *harness) openSpool() {
	h.t.Helper()
	sp, err := spool.Open(h.opts.spoolPath, spool.Options{MaxDiskSize: h.opts.spoolMax, MaxBuried: h.opts.maxBuried, NoSync: true})
	if err != nil {
		h.t.Fatalf("spool.Open: %v", err)
	}
	h.spool = sp
	h.t.Cleanup(func() { _ = sp.Close() }) // a second Close (after closeSpool) is harmless
}

// closeSpool closes the spool as the relay does after Run returned.
func (h *harness) closeSpool() {
	h.t.Helper()
	if err := h.spool.Close(); err != nil {
		h.t.Fatalf("spool close: %v", err)
	}
}

// envelopeFor builds a small valid envelope carrying id.
func envelopeFor(id string) []byte {
	payload := fmt.Sprintf(`{"event_id":%q,"message":"worker test","level":"error"}`, id)
	return fmt.Appendf(nil, "{\"event_id\":%q}\n{\"type\":\"event\",\"length\":%d}\n%s\n", id, len(payload), payload)
}

// publish puts n messages for key on the stream and adds their ids to the
// ledger, in order.
func (h *harness) publish(n int, key string) []string {
	h.t.Helper()
	ids := make([]string, 0, n)
	for range n {
		h.mu.Lock()
		id := fmt.Sprintf("%032x", len(h.ledger)+1)
		h.ledger = append(h.ledger, id)
		h.keyOf[id] = key
		h.mu.Unlock()
		m := &stream.Message{
			ProjectID: testProject, PublicKey: key, Client: "sentry.go/0.50.0", Version: 7,
			UserAgent: "sentry-go/0.50.0", RemoteAddr: "127.0.0.1", ForwardedFor: "127.0.0.1",
			ReceivedAt: time.Now(), EventID: id, Envelope: envelopeFor(id),
		}
		if err := h.conn.Publish(context.Background(), m, id); err != nil {
			h.t.Fatalf("publish %s: %v", id, err)
		}
		ids = append(ids, id)
	}
	return ids
}

func (h *harness) consumer() *stream.Consumer {
	h.t.Helper()
	c, err := h.conn.Consumer(context.Background(), durable)
	if err != nil {
		h.t.Fatalf("consumer: %v", err)
	}
	return c
}

// running is one Worker.Run in a goroutine.
type running struct {
	w      *Worker
	cancel context.CancelFunc
	done   chan struct{}
}

func (h *harness) start(cfg Config, stages ...Stage) *running {
	h.t.Helper()
	if cfg.AckWait == 0 {
		cfg.AckWait = h.opts.ackWait
	}
	var send Sender = h.client
	if h.sender != nil {
		send = h.sender
	}
	w, err := New(cfg, h.consumer(), send, h.spool, h.log, stages...)
	if err != nil {
		h.t.Fatalf("worker.New: %v", err)
	}
	if h.sharer != nil {
		w.ShareRateLimits(h.sharer)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := w.Run(ctx); err != nil {
			h.t.Errorf("Run: %v", err)
		}
	}()
	h.t.Cleanup(func() { r.stop(h.t) })
	return r
}

// stop cancels Run and waits for it to return; it must be prompt.
func (r *running) stop(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("Run did not return within 10s of cancel")
	}
	return time.Since(start)
}

// streamMsgs is how many messages the stream still holds (un-acked ones
// included: the stream is a work queue, an ack removes the message).
func (h *harness) streamMsgs() uint64 {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := h.js.Stream(ctx, h.conn.StreamName())
	if err != nil {
		h.t.Fatalf("stream lookup: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

// consumerInfo reports the durable's pending (never delivered) and
// ack-pending (delivered, not acked) counts.
func (h *harness) consumerInfo() (pending uint64, ackPending int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := h.js.Consumer(ctx, h.conn.StreamName(), durable)
	if err != nil {
		h.t.Fatalf("consumer lookup: %v", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		h.t.Fatalf("consumer info: %v", err)
	}
	return info.NumPending, info.NumAckPending
}

// spooledIDs returns the event ids in the spool, oldest first.
func (h *harness) spooledIDs() []string {
	h.t.Helper()
	recs, err := h.spool.Oldest(1 << 20)
	if err != nil {
		h.t.Fatalf("spool oldest: %v", err)
	}
	ids := make([]string, 0, len(recs))
	for _, r := range recs {
		var m stream.Message
		if err := m.UnmarshalBinary(r.Data); err != nil {
			h.t.Fatalf("spool record %d: %v", r.ID, err)
		}
		ids = append(ids, m.EventID)
	}
	return ids
}

// eventually polls cond every 10ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkLedger asserts that every id of want was accepted by the fake Sentry
// exactly once (maxDup > 0 allows that many duplicates in total) and that
// nothing else was.
func (h *harness) checkLedger(want []string, maxDup int) {
	h.t.Helper()
	acc := h.acceptedIDs()
	count := make(map[string]int, len(acc))
	for _, id := range acc {
		count[id]++
	}
	dups := 0
	for _, id := range want {
		switch n := count[id]; {
		case n == 0:
			h.t.Errorf("event %s was acknowledged to the SDK but never reached the upstream", id)
		case n > 1:
			dups += n - 1
		}
		delete(count, id)
	}
	if dups > maxDup {
		h.t.Errorf("%d duplicate deliveries, want at most %d", dups, maxDup)
	}
	for id := range count {
		h.t.Errorf("upstream accepted %s, which is not in the ledger", id)
	}
}

// acceptedIDs are the event ids the fake Sentry accepted, in order.
func (h *harness) acceptedIDs() []string {
	rs := h.up.Received()
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.EventID
	}
	return ids
}

// envelopeRequests is the fake Sentry's log of envelope requests (not
// probes), in the order they were answered.
func (h *harness) envelopeRequests() []fakesentry.Request {
	var out []fakesentry.Request
	for _, r := range h.up.Requests() {
		if strings.HasSuffix(r.Path, "/envelope/") {
			out = append(out, r)
		}
	}
	return out
}

// key is the public key an event id was published for.
func (h *harness) key(id string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.keyOf[id]
}
