package worker

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/stream"
)

// upAgain ends a fake-Sentry outage.
func upAgain(t *testing.T, h *harness) {
	t.Helper()
	if err := h.up.Up(); err != nil {
		t.Fatalf("fake sentry up: %v", err)
	}
}

// fastCfg keeps retries and outage detection short enough for tests.
func fastCfg(c Config) Config {
	if c.RetryDelay == 0 {
		c.RetryDelay = 20 * time.Millisecond
	}
	if c.MaxRetryInterval == 0 {
		c.MaxRetryInterval = 200 * time.Millisecond
	}
	if c.OutageGracePeriod == 0 {
		c.OutageGracePeriod = 300 * time.Millisecond
	}
	if c.BackpressureInterval == 0 {
		c.BackpressureInterval = 50 * time.Millisecond
	}
	if c.DrainPoll == 0 {
		c.DrainPoll = 50 * time.Millisecond
	}
	return c
}

// Every envelope is forwarded once and acked: the stream ends empty.
func TestForwardAndAck(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	fwd := forwardedTotal.Get()
	ids := append(h.publish(30, keyA), h.publish(10, keyB)...)
	h.start(fastCfg(Config{Concurrency: 4, FetchBatch: 4}))

	eventually(t, 10*time.Second, "all envelopes accepted upstream", func() bool { return len(h.acceptedIDs()) >= len(ids) })
	eventually(t, 5*time.Second, "the stream to be empty (every message acked)", func() bool { return h.streamMsgs() == 0 })
	h.checkLedger(ids, 0)
	if got := forwardedTotal.Get() - fwd; got != uint64(len(ids)) {
		t.Errorf("relay_worker_forwarded_total grew by %d, want %d", got, len(ids))
	}
	for _, r := range h.up.Received() {
		if want := h.key(r.EventID); r.PublicKey != want || r.ProjectID != testProject {
			t.Fatalf("upstream got event %s with key %q project %d, want the SDK's key %q and project %d",
				r.EventID, r.PublicKey, r.ProjectID, want, testProject)
		}
	}
	if n := h.spool.Stats().Records; n != 0 {
		t.Errorf("spool holds %d records; nothing should be spooled when the upstream is healthy", n)
	}
}

// 5xx answers are retried with backoff; the message stays un-acked in the
// stream until the upstream accepts it.
func TestRetryableThenSuccess(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.up.SetMode(fakesentry.Failing(http.StatusServiceUnavailable, 0))
	retries := retriesTotal.Get()
	ids := h.publish(1, keyA)
	h.start(fastCfg(Config{Concurrency: 2, OutageGracePeriod: time.Minute}))

	eventually(t, 10*time.Second, "three failed attempts", func() bool { return len(h.envelopeRequests()) >= 3 })
	if n := h.streamMsgs(); n != 1 {
		t.Fatalf("stream holds %d messages while the upstream fails, want 1 (acked before a 2xx?)", n)
	}
	if _, ackPending := h.consumerInfo(); ackPending != 1 {
		t.Fatalf("ack pending = %d, want 1 (the worker holds it)", ackPending)
	}
	h.up.SetMode(fakesentry.Normal())
	eventually(t, 10*time.Second, "the envelope accepted", func() bool { return len(h.acceptedIDs()) == 1 })
	eventually(t, 5*time.Second, "the stream to be empty", func() bool { return h.streamMsgs() == 0 })
	h.checkLedger(ids, 0)
	attempts := len(h.envelopeRequests())
	if got := retriesTotal.Get() - retries; got != uint64(attempts-1) {
		t.Errorf("relay_worker_retries_total grew by %d, want %d (attempts %d)", got, attempts-1, attempts)
	}
	// Backoff, not a hot loop: attempts are spaced by at least RetryDelay/2.
	reqs := h.envelopeRequests()
	for i := 1; i < len(reqs); i++ {
		if gap := reqs[i].At.Sub(reqs[i-1].At); gap < 10*time.Millisecond {
			t.Errorf("attempt %d came %s after the previous one; want backoff ≥ 10ms", i, gap)
		}
	}
	if n := h.spool.Stats().Records; n != 0 {
		t.Errorf("spool holds %d records; no outage was declared", n)
	}
}

// Durability (b): the upstream refuses connections for longer than the grace
// period → envelopes move to the spool and only then leave the stream; when
// the upstream is back the spool drains oldest first and everything arrives.
func TestOutageSpoolsAndDrainsInOrder(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.up.Down()
	spooled, drained := spooledTotal.Get(), drainedTotal.Get()
	// One consumer fetching one at a time and one drain sender make the
	// order exact, so the test can insist on it.
	r := h.start(fastCfg(Config{Concurrency: 1, FetchBatch: 1, DrainConcurrency: 1, DrainBatch: 7}))
	first := h.publish(40, keyA)

	eventually(t, 15*time.Second, "all 40 envelopes in the spool", func() bool { return h.spool.Stats().Records == 40 })
	if !r.w.outage.Active() {
		t.Fatal("worker does not report the outage")
	}
	if got := outageGauge.Get(); got != 1 {
		t.Errorf("relay_worker_outage = %v during the outage, want 1", got)
	}
	eventually(t, 5*time.Second, "the stream to be empty (each acked after its spool commit)", func() bool { return h.streamMsgs() == 0 })
	if got := h.spooledIDs(); !slices.Equal(got, first) {
		t.Fatalf("spool order %v, want the stream order %v", got, first)
	}
	if got := spooledTotal.Get() - spooled; got != 40 {
		t.Errorf("relay_worker_spooled_total grew by %d, want 40", got)
	}
	if n := len(h.acceptedIDs()); n != 0 {
		t.Fatalf("upstream accepted %d while down", n)
	}

	upAgain(t, h)
	eventually(t, 15*time.Second, "the spool to drain", func() bool { return h.spool.Stats().Records == 0 })
	eventually(t, 5*time.Second, "the outage to end", func() bool { return !r.w.outage.Active() })
	// New envelopes flow straight through after (and during) the drain.
	second := h.publish(10, keyA)
	eventually(t, 10*time.Second, "everything accepted", func() bool { return len(h.acceptedIDs()) >= 50 })
	eventually(t, 5*time.Second, "the stream to be empty", func() bool { return h.streamMsgs() == 0 })

	h.checkLedger(append(slices.Clone(first), second...), 0)
	if acc := h.acceptedIDs(); !slices.Equal(acc[:40], first) {
		t.Errorf("drain order %v, want oldest first %v", acc[:40], first)
	}
	if got := drainedTotal.Get() - drained; got != 40 {
		t.Errorf("relay_worker_drained_total grew by %d, want 40", got)
	}
	if got := outageGauge.Get(); got != 0 {
		t.Errorf("relay_worker_outage = %v after the outage, want 0", got)
	}
}

// Durability (c) at the worker's level: envelopes that sit in the spool when
// the process stops are drained by the next process.
func TestSpoolDrainedAfterRestart(t *testing.T) {
	spoolPath := t.TempDir() + "/spool.db"
	storeDir := t.TempDir()
	h := newHarness(t, harnessOpts{spoolPath: spoolPath, storeDir: storeDir})
	h.up.Down()
	r := h.start(fastCfg(Config{Concurrency: 2, DrainConcurrency: 1}))
	ids := h.publish(20, keyA)
	eventually(t, 15*time.Second, "all envelopes in the spool", func() bool { return h.spool.Stats().Records == 20 })
	spoolOrder := h.spooledIDs() // two consumers spool in about, not exactly, stream order
	r.stop(t)
	h.closeSpool()
	upAgain(t, h)
	h.up.Down() // the new process starts while the upstream is still away…

	h.openSpool()
	if n := h.spool.Stats().Records; n != 20 {
		t.Fatalf("reopened spool holds %d records, want 20", n)
	}
	h.start(fastCfg(Config{Concurrency: 2, DrainConcurrency: 1}))
	time.Sleep(200 * time.Millisecond)
	upAgain(t, h) // …and comes back later
	eventually(t, 15*time.Second, "the spool drained after the restart", func() bool { return h.spool.Stats().Records == 0 })
	h.checkLedger(ids, 0)
	if acc := h.acceptedIDs(); !slices.Equal(acc, spoolOrder) {
		t.Errorf("drain after restart %v, want oldest first %v", acc, spoolOrder)
	}
}

// Durability (d): a 429 with Retry-After holds every sender of that key —
// the fake Sentry sees no request for it before the limit the worker
// recorded has expired, neither the envelope that got the 429 nor newer ones
// fetched by other consumers — while other keys keep flowing.
//
// The hold starts when the worker has read the 429, not when the fake
// Sentry answered it: a send that starts in between (another consumer, an
// envelope published meanwhile) cannot know. So the test publishes the
// newer envelopes only once the worker recorded the limit, and checks every
// later request for the key against the limit's end as recorded.
func TestRateLimitedWaitsRetryAfter(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	// Retry-After is long enough that key B, sent meanwhile, is delivered
	// well inside it even on a loaded machine: the test checks an order (B
	// before A's limit ends), not a speed.
	const retryAfter = 5 * time.Second
	h.up.SetMode(fakesentry.RateLimited("5", "", 1))
	rl, deferred := rateLimitedTotal.Get(), deferredTotal.Get()
	first := h.publish(1, keyA)
	r := h.start(fastCfg(Config{Concurrency: 4, FetchBatch: 2}))
	eventually(t, 10*time.Second, "the 429", func() bool { return len(h.envelopeRequests()) == 1 })
	r429 := h.envelopeRequests()[0]
	if r429.Status != http.StatusTooManyRequests {
		t.Fatalf("first answer %d, want 429", r429.Status)
	}
	var until time.Time
	eventually(t, 10*time.Second, "the worker to record the limit", func() bool {
		until = r.w.limits.until(keyA, nil)
		return !until.IsZero()
	})
	// r429.At is taken before the 429 leaves the fake (net/http sends a
	// small answer when the handler returns), so the limit, counted from
	// when the worker read it, ends at least Retry-After later.
	if d := until.Sub(r429.At); d < retryAfter {
		t.Fatalf("the limit recorded ends %s after the 429, want at least Retry-After (%s)", d, retryAfter)
	}

	a := h.publish(5, keyA)
	b := h.publish(6, keyB)
	eventually(t, 30*time.Second, "all accepted", func() bool { return len(h.acceptedIDs()) == 12 })
	h.checkLedger(append(append(slices.Clone(first), a...), b...), 0)

	var lastB time.Time
	for _, req := range h.envelopeRequests()[1:] {
		switch {
		case h.key(req.EventID) == keyA && req.At.Before(until):
			t.Errorf("request for the rate-limited key %s after the 429, %s before its limit ended", req.At.Sub(r429.At), until.Sub(req.At))
		case h.key(req.EventID) == keyB && req.At.After(lastB):
			lastB = req.At
		}
	}
	if !lastB.Before(until) {
		t.Errorf("key B waited for key A's limit: its last request came %s after the 429, the limit ended %s after it",
			lastB.Sub(r429.At), until.Sub(r429.At))
	}
	if got := rateLimitedTotal.Get() - rl; got != 1 {
		t.Errorf("relay_worker_rate_limited_total grew by %d, want 1", got)
	}
	if got := deferredTotal.Get() - deferred; got == 0 {
		t.Errorf("relay_worker_rate_limit_deferred_total did not grow")
	}
	eventually(t, 5*time.Second, "the stream to be empty", func() bool { return h.streamMsgs() == 0 })
}

// A final 4xx (400, 413, 415: an answer about this envelope) is not
// retried: the envelope is buried in the dead letters, counted, logged
// without payload, and acked.
func TestRejectedIsBuriedCountedAcked(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType} {
		t.Run(strconv.Itoa(status), func(t *testing.T) { testRejectedIsBuried(t, status) })
	}
}

func testRejectedIsBuried(t *testing.T, status int) {
	h := newHarness(t, harnessOpts{})
	ids := h.publish(3, keyA)
	h.up.SetMode(fakesentry.Rejecting(status, "invalid event", 1))
	bad := ids[0] // one consumer, one at a time: the first request is the first envelope
	dropped := droppedRejected.Get()
	h.start(fastCfg(Config{Concurrency: 1, FetchBatch: 1}))

	eventually(t, 10*time.Second, "the other two accepted", func() bool { return len(h.acceptedIDs()) == 2 })
	eventually(t, 5*time.Second, "the stream to be empty (the rejected one acked too)", func() bool { return h.streamMsgs() == 0 })
	h.checkLedger([]string{ids[1], ids[2]}, 0)
	if got := droppedRejected.Get() - dropped; got != 1 {
		t.Errorf(`relay_worker_dropped_total{reason="upstream_rejected"} grew by %d, want 1`, got)
	}
	n := 0
	for _, r := range h.envelopeRequests() {
		if r.EventID == bad {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the rejected envelope was sent %d times, want once", n)
	}
	dead, err := h.spool.Buried(10)
	if err != nil {
		t.Fatalf("Buried: %v", err)
	}
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	var m stream.Message
	if err := m.UnmarshalBinary(dead[0].Data); err != nil {
		t.Fatalf("dead letter does not decode: %v", err)
	}
	if m.EventID != bad || !strings.Contains(dead[0].Reason, strconv.Itoa(status)) {
		t.Errorf("dead letter = event %s reason %q, want event %s and a reason naming status %d", m.EventID, dead[0].Reason, bad, status)
	}
}

// A full spool during an outage stops the consumers: what could not be
// spooled stays in the stream (un-acked or never fetched), nothing is lost,
// and once the upstream is back everything arrives.
func TestSpoolFullBackpressure(t *testing.T) {
	// Room for about 5 of the test's ~330-byte encoded messages.
	h := newHarness(t, harnessOpts{spoolMax: 5 * 400, ackWait: time.Second})
	h.up.Down()
	redelivered := redeliveredTotal.Get()
	r := h.start(fastCfg(Config{Concurrency: 2, FetchBatch: 2, DrainConcurrency: 1}))
	ids := h.publish(30, keyA)

	eventually(t, 15*time.Second, "the spool to fill", func() bool { return h.spool.Full() })
	if !r.w.outage.Active() {
		t.Fatal("not in outage")
	}
	// Let it sit for several AckWaits: the consumers must not take more
	// from the stream, and held messages must not be redelivered.
	time.Sleep(2500 * time.Millisecond)
	spooled := int(h.spool.Stats().Records)
	inStream := int(h.streamMsgs())
	pending, ackPending := h.consumerInfo()
	t.Logf("spooled %d, in stream %d (never delivered %d, held %d)", spooled, inStream, pending, ackPending)
	if spooled+inStream != len(ids) {
		t.Fatalf("spool %d + stream %d != %d published: an envelope was lost or duplicated", spooled, inStream, len(ids))
	}
	if spooled == 0 || spooled >= len(ids) || inStream == 0 {
		t.Fatalf("spool %d, stream %d: want the spool full and the rest left in the stream", spooled, inStream)
	}
	if ackPending > 2*2 {
		t.Errorf("%d messages held un-acked; consumers should stop fetching when the spool is full (at most Concurrency×FetchBatch)", ackPending)
	}
	if got := redeliveredTotal.Get() - redelivered; got != 0 {
		t.Errorf("%d redeliveries while messages were held: heartbeats did not keep them", got)
	}
	if got := pausedGauge.Get() + spoolWaitGauge.Get(); got < 1 {
		t.Errorf("relay_worker_fetch_paused + relay_worker_spool_waiting = %v, want the back-pressure visible", got)
	}

	upAgain(t, h)
	eventually(t, 20*time.Second, "everything accepted", func() bool { return len(h.acceptedIDs()) >= len(ids) })
	eventually(t, 5*time.Second, "spool and stream empty", func() bool { return h.spool.Stats().Records == 0 && h.streamMsgs() == 0 })
	h.checkLedger(ids, 0)
}

// Shutdown in the middle of retrying: Run returns promptly, the message is
// not acked but Nak'd, and the next worker gets it at once (not after
// AckWait) and delivers it.
func TestShutdownMidRetryRedelivers(t *testing.T) {
	h := newHarness(t, harnessOpts{ackWait: 30 * time.Second})
	h.up.SetMode(fakesentry.Failing(http.StatusBadGateway, 0))
	naked, redelivered := nakedTotal.Get(), redeliveredTotal.Get()
	ids := h.publish(1, keyA)
	r := h.start(fastCfg(Config{Concurrency: 2, OutageGracePeriod: time.Minute}))
	eventually(t, 10*time.Second, "two failed attempts", func() bool { return len(h.envelopeRequests()) >= 2 })

	if took := r.stop(t); took > 2*time.Second {
		t.Errorf("Run took %s to return after cancel", took)
	}
	if n := h.streamMsgs(); n != 1 {
		t.Fatalf("stream holds %d messages after shutdown, want 1: a message was acked without a 2xx", n)
	}
	if got := nakedTotal.Get() - naked; got != 1 {
		t.Errorf("relay_worker_naked_total grew by %d, want 1", got)
	}
	if got := inFlightGauge.Get(); got != 0 {
		t.Errorf("relay_worker_in_flight = %v after Run returned, want 0", got)
	}

	h.up.SetMode(fakesentry.Normal())
	start := time.Now()
	h.start(fastCfg(Config{Concurrency: 2}))
	eventually(t, 10*time.Second, "the envelope accepted by the next worker", func() bool { return len(h.acceptedIDs()) == 1 })
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("redelivery took %s: the message was not Nak'd (AckWait is 30s)", took)
	}
	eventually(t, 5*time.Second, "the stream to be empty", func() bool { return h.streamMsgs() == 0 })
	h.checkLedger(ids, 0)
	if got := redeliveredTotal.Get() - redelivered; got != 1 {
		t.Errorf("relay_worker_redelivered_total grew by %d, want 1", got)
	}
}

// A slow upstream (2 s per answer) with Concurrency N forwards about N
// envelopes per 2 s, and InProgress heartbeats keep JetStream (AckWait 1 s)
// from redelivering what the worker holds: no duplicates.
func TestSlowUpstreamThroughputNoDuplicates(t *testing.T) {
	h := newHarness(t, harnessOpts{ackWait: time.Second})
	h.up.SetDelay(2 * time.Second)
	redelivered := redeliveredTotal.Get()
	const n = 4
	ids := h.publish(3*n, keyA)
	start := time.Now()
	h.start(fastCfg(Config{Concurrency: n, FetchBatch: 4, OutageGracePeriod: time.Minute}))

	eventually(t, 60*time.Second, "all accepted", func() bool { return len(h.acceptedIDs()) >= len(ids) })
	t.Logf("%d envelopes with concurrency %d through a 2s upstream in %s", len(ids), n, time.Since(start))
	// The upstream held exactly n at once: more would break the concurrency
	// bound, fewer would mean sends were serialised. Counted by the upstream,
	// so a loaded machine changes how long this takes, not what it checks.
	if got := h.up.PeakInFlight(); got != n {
		t.Errorf("the upstream held up to %d requests at once, want %d (worker.concurrency)", got, n)
	}
	eventually(t, 5*time.Second, "the stream to be empty", func() bool { return h.streamMsgs() == 0 })
	h.checkLedger(ids, 0)
	if got := redeliveredTotal.Get() - redelivered; got != 0 {
		t.Errorf("%d redeliveries with a 1s AckWait: InProgress heartbeats did not hold the messages", got)
	}
}

// Stages run in order on real messages; a drop is acked and counted by stage
// and reason and never forwarded; a stage error buries the envelope.
func TestStagesDropAndError(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ids := h.publish(6, keyA)
	dropID, errID := ids[1], ids[4]
	var mu sync.Mutex
	var trace []string
	filter := testStage{name: "filter", fn: func(m *stream.Message) (Verdict, error) {
		mu.Lock()
		trace = append(trace, "filter:"+m.EventID)
		mu.Unlock()
		if m.EventID == dropID {
			return Drop("test_filter"), nil
		}
		return Keep(), nil
	}}
	enrich := testStage{name: "enrich", fn: func(m *stream.Message) (Verdict, error) {
		mu.Lock()
		trace = append(trace, "enrich:"+m.EventID)
		mu.Unlock()
		if m.EventID == errID {
			return Keep(), errTestStage
		}
		return Keep(), nil
	}}
	drops, stageErrs := stageDropCounter("filter", "test_filter").Get(), droppedStageError.Get()
	h.start(fastCfg(Config{Concurrency: 1, FetchBatch: 1}), filter, enrich)

	eventually(t, 10*time.Second, "the kept envelopes accepted", func() bool { return len(h.acceptedIDs()) == 4 })
	eventually(t, 5*time.Second, "the stream to be empty", func() bool { return h.streamMsgs() == 0 })
	h.checkLedger([]string{ids[0], ids[2], ids[3], ids[5]}, 0)
	if got := stageDropCounter("filter", "test_filter").Get() - drops; got != 1 {
		t.Errorf(`relay_worker_stage_dropped_total{stage="filter",reason="test_filter"} grew by %d, want 1`, got)
	}
	if got := droppedStageError.Get() - stageErrs; got != 1 {
		t.Errorf(`relay_worker_dropped_total{reason="stage_error"} grew by %d, want 1`, got)
	}
	mu.Lock()
	want := []string{}
	for _, id := range ids {
		want = append(want, "filter:"+id)
		if id != dropID {
			want = append(want, "enrich:"+id)
		}
	}
	if !slices.Equal(trace, want) {
		t.Errorf("stage trace %v, want %v", trace, want)
	}
	mu.Unlock()
	dead, err := h.spool.Buried(10)
	if err != nil || len(dead) != 1 || !strings.Contains(dead[0].Reason, "enrich") {
		t.Fatalf("dead letters = %+v, %v; want the envelope the enrich stage failed on", dead, err)
	}
}

var errTestStage = &stageError{"cannot decide"}

type stageError struct{ s string }

func (e *stageError) Error() string { return e.s }

type testStage struct {
	name string
	fn   func(*stream.Message) (Verdict, error)
}

func (s testStage) Name() string { return s.name }
func (s testStage) Process(_ context.Context, m *stream.Message) (Verdict, error) {
	return s.fn(m)
}

// spoolMessages puts n messages for key straight into the spool, as an
// earlier process would have left them, and adds them to the ledger.
func (h *harness) spoolMessages(n int, key string) []string {
	h.t.Helper()
	ids := make([]string, 0, n)
	for range n {
		h.mu.Lock()
		id := fmt.Sprintf("%032x", len(h.ledger)+1)
		h.ledger = append(h.ledger, id)
		h.keyOf[id] = key
		h.mu.Unlock()
		m := &stream.Message{ProjectID: testProject, PublicKey: key, Client: "sentry.go/0.50.0", Version: 7,
			EventID: id, Envelope: envelopeFor(id)}
		b, err := m.MarshalBinary()
		if err != nil {
			h.t.Fatal(err)
		}
		if err := h.spool.Put(context.Background(), b); err != nil {
			h.t.Fatalf("spool put: %v", err)
		}
		ids = append(ids, id)
	}
	return ids
}

// The drainer picks up what is in the spool at start-up. A 429 during the
// drain defers that key's records — nothing is sent for it before
// Retry-After — while other keys' records drain; a final 4xx buries the
// record and removes it; a record that cannot be decoded is buried, not
// forwarded and not left to block the drain.
func TestDrainRateLimitRejectAndUndecodable(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	a := h.spoolMessages(3, keyA)
	b := h.spoolMessages(3, keyB)
	if err := h.spool.Put(context.Background(), []byte("\xffnot a message")); err != nil {
		t.Fatal(err)
	}
	h.up.SetMode(fakesentry.RateLimited("2", "", 1))
	undecodable, rejected := droppedUndecodable.Get(), droppedRejected.Get()
	h.start(fastCfg(Config{Concurrency: 1, DrainConcurrency: 1, DrainBatch: 10}))

	eventually(t, 10*time.Second, "all six drained", func() bool { return h.up.Count() == 6 })
	eventually(t, 5*time.Second, "the spool to be empty", func() bool { return h.spool.Stats().Records == 0 })
	h.checkLedger(append(slices.Clone(a), b...), 0)
	reqs := h.envelopeRequests()
	if reqs[0].Status != http.StatusTooManyRequests || reqs[0].EventID != a[0] {
		t.Fatalf("first drained request %+v, want the oldest record answered 429", reqs[0])
	}
	for _, r := range reqs[1:] {
		since := r.At.Sub(reqs[0].At)
		if h.key(r.EventID) == keyA && since < 2*time.Second {
			t.Errorf("spooled envelope of the rate-limited key sent %s after the 429", since)
		}
		if h.key(r.EventID) == keyB && since > 1500*time.Millisecond {
			t.Errorf("key B's records waited %s for key A's limit", since)
		}
	}
	if acc := h.acceptedIDs(); !slices.Equal(acc[3:], a) {
		t.Errorf("key A drained as %v, want oldest first %v", acc[3:], a)
	}
	if got := droppedUndecodable.Get() - undecodable; got != 1 {
		t.Errorf(`relay_worker_dropped_total{reason="spool_record_undecodable"} grew by %d, want 1`, got)
	}

	// A final rejection during the drain.
	h.up.SetMode(fakesentry.Rejecting(http.StatusBadRequest, "invalid event", 1))
	bad := h.spoolMessages(1, keyB)
	eventually(t, 10*time.Second, "the rejected record removed from the spool", func() bool { return h.spool.Stats().Records == 0 })
	if got := droppedRejected.Get() - rejected; got != 1 {
		t.Errorf(`relay_worker_dropped_total{reason="upstream_rejected"} grew by %d, want 1`, got)
	}
	dead, err := h.spool.Buried(10)
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	var buriedBad bool
	for _, d := range dead {
		reasons = append(reasons, d.Reason)
		var m stream.Message
		if m.UnmarshalBinary(d.Data) == nil && m.EventID == bad[0] && strings.Contains(d.Reason, "400") {
			buriedBad = true
		}
	}
	if len(dead) != 2 || !buriedBad || !slices.ContainsFunc(reasons, func(r string) bool { return strings.Contains(r, "undecodable") }) {
		t.Errorf("dead letters %q: want the undecodable record and the rejected envelope", reasons)
	}
}

// An outage that goes on as 503s after the connections are accepted again
// (a load balancer with no healthy backend) keeps the relay in outage: the
// probe fails too, nothing is drained into the 503s, and everything arrives
// once the upstream is healthy.
func TestOutageRefusedThen503ThenBack(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.up.Down()
	r := h.start(fastCfg(Config{Concurrency: 2, DrainConcurrency: 2}))
	ids := h.publish(20, keyA)
	eventually(t, 15*time.Second, "everything spooled", func() bool { return h.spool.Stats().Records == 20 })

	h.up.SetMode(fakesentry.Failing(http.StatusServiceUnavailable, 0))
	upAgain(t, h)
	more := h.publish(5, keyB)
	time.Sleep(time.Second) // several probe intervals
	if !r.w.outage.Active() {
		t.Fatal("outage ended although the upstream answers 503")
	}
	if n := len(h.envelopeRequests()); n != 0 {
		t.Errorf("%d envelopes sent into the 503s during the outage; only probes should go out", n)
	}
	eventually(t, 5*time.Second, "the new envelopes spooled too", func() bool { return h.spool.Stats().Records == 25 })

	h.up.SetMode(fakesentry.Normal())
	eventually(t, 15*time.Second, "everything accepted", func() bool { return h.up.Count() >= 25 })
	eventually(t, 5*time.Second, "spool and stream empty", func() bool { return h.spool.Stats().Records == 0 && h.streamMsgs() == 0 })
	h.checkLedger(append(slices.Clone(ids), more...), 0)
}
