package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
)

// An upstream that answers 401, then 403, then 404 — a relay not (yet)
// authorised, a wrong relay.upstream, a key being fixed — loses nothing:
// every acknowledged envelope waits and arrives once the upstream answers
// 200 again, and the upstream is not hammered with one request per
// envelope meanwhile. (Before 401/403/404 were told apart from final
// rejections, such an upstream buried or lost most of them.)
func TestDeniedStatusesWaitThenArrive(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.up.SetMode(fakesentry.Rejecting(http.StatusUnauthorized, "missing authorization information", 0))
	h.start(fastCfg(Config{Concurrency: 4, FetchBatch: 4, DrainConcurrency: 2}))

	var ids []string
	for i, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound} {
		h.up.SetMode(fakesentry.Rejecting(status, "denied", 0))
		for _, key := range []string{keyA, keyB} {
			ids = append(ids, h.publish(100, key)...)
		}
		phaseEnd := time.Now().Add(time.Second)
		eventually(t, 10*time.Second, fmt.Sprintf("a %d answered", status), func() bool {
			for _, r := range h.envelopeRequests() {
				if r.Status == status {
					return true
				}
			}
			return false
		})
		time.Sleep(time.Until(phaseEnd))
		if n := h.up.Count(); n != 0 {
			t.Fatalf("phase %d: the fake Sentry accepted %d envelopes while denying", i, n)
		}
	}
	denied := len(h.envelopeRequests())
	if denied > len(ids)/4 {
		t.Errorf("%d envelope requests for %d envelopes while every answer was a denial: the upstream is probed, not hammered", denied, len(ids))
	}
	if dead, err := h.spool.Buried(10); err != nil || len(dead) != 0 {
		t.Fatalf("dead letters %d (%v): a denial is not final for the envelope", len(dead), err)
	}

	h.up.SetMode(fakesentry.Normal())
	eventually(t, 30*time.Second, "every acknowledged envelope accepted", func() bool { return h.up.Count() >= len(ids) })
	eventually(t, 10*time.Second, "spool and stream empty", func() bool { return h.spool.Stats().Records == 0 && h.streamMsgs() == 0 })
	h.checkLedger(ids, len(ids)/20)
}

// tryPublish publishes one envelope for key and adds it to the ledger; it
// may be called from any goroutine.
func (h *harness) tryPublish(key string) (string, error) {
	h.mu.Lock()
	id := fmt.Sprintf("%032x", len(h.ledger)+1)
	h.ledger = append(h.ledger, id)
	h.keyOf[id] = key
	h.mu.Unlock()
	m := &stream.Message{ProjectID: testProject, PublicKey: key, Client: "sentry.go/0.50.0", Version: 7,
		ReceivedAt: time.Now(), EventID: id, Envelope: envelopeFor(id)}
	return id, h.conn.Publish(context.Background(), m, id)
}

// publishAged publishes one envelope for key that ingest accepted at
// receivedAt, and adds it to the ledger.
func (h *harness) publishAged(key string, receivedAt time.Time) string {
	h.t.Helper()
	h.mu.Lock()
	id := fmt.Sprintf("%032x", len(h.ledger)+1)
	h.ledger = append(h.ledger, id)
	h.keyOf[id] = key
	h.mu.Unlock()
	m := &stream.Message{ProjectID: testProject, PublicKey: key, Client: "sentry.go/0.50.0", Version: 7,
		ReceivedAt: receivedAt, EventID: id, Envelope: envelopeFor(id)}
	if err := h.conn.Publish(context.Background(), m, id); err != nil {
		h.t.Fatalf("publish %s: %v", id, err)
	}
	return id
}

// An envelope its key holds — a denial or a 429 — waits at most
// MaxEnvelopeDelay counted from when ingest accepted it; then it goes to the
// dead letters with the reason, counted. A younger one keeps waiting and
// arrives.
func TestHeldPastMaxEnvelopeDelayIsBuried(t *testing.T) {
	for _, tt := range []struct {
		name string
		mode fakesentry.Mode
		want string // in the dead letter's reason
	}{
		{"401", fakesentry.Rejecting(http.StatusUnauthorized, "", 0), "status 401"},
		{"403", fakesentry.Rejecting(http.StatusForbidden, "", 0), "status 403"},
		{"429", fakesentry.RateLimited("1", "", 0), "status 429"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			h.up.SetMode(tt.mode)
			expired := droppedExpired.Get()
			old := h.publishAged(keyA, time.Now().Add(-2*time.Hour))
			young := h.publishAged(keyA, time.Now())
			h.start(fastCfg(Config{Concurrency: 1, FetchBatch: 1, MaxEnvelopeDelay: time.Hour}))

			eventually(t, 10*time.Second, "the old envelope buried", func() bool {
				dead, err := h.spool.Buried(10)
				return err == nil && len(dead) == 1
			})
			dead, _ := h.spool.Buried(10)
			var m stream.Message
			if err := m.UnmarshalBinary(dead[0].Data); err != nil || m.EventID != old ||
				!strings.Contains(dead[0].Reason, "expired") || !strings.Contains(dead[0].Reason, tt.want) {
				t.Fatalf("dead letter event %s reason %q (%v), want %s expired with %s", m.EventID, dead[0].Reason, err, old, tt.want)
			}
			if got := droppedExpired.Get() - expired; got != 1 {
				t.Errorf(`relay_worker_dropped_total{reason="expired"} grew by %d, want 1`, got)
			}
			time.Sleep(500 * time.Millisecond)
			h.up.SetMode(fakesentry.Normal())
			eventually(t, 15*time.Second, "the young envelope accepted", func() bool { return h.up.Count() >= 1 })
			eventually(t, 10*time.Second, "spool and stream empty", func() bool { return h.spool.Stats().Records == 0 && h.streamMsgs() == 0 })
			h.checkLedger([]string{young}, 0)
			if dead, _ := h.spool.Buried(10); len(dead) != 1 {
				t.Errorf("%d dead letters, want only the expired one", len(dead))
			}
		})
	}
}

// Each state change of a key's denial is reported once and counted per
// answer; the backoff per key doubles from RetryDelay and stops at
// MaxRetryInterval.
func TestDenials(t *testing.T) {
	now := t0
	ds := newDenials(func() time.Time { return now }, time.Second, 4*time.Second)
	var changes []bool
	var waits []time.Duration
	for _, status := range []int{401, 401, 401, 401, 403} {
		_, _, changed := ds.record(keyA, status)
		changes = append(changes, changed)
		w, _ := ds.hold(keyA)
		waits = append(waits, w)
	}
	if want := []bool{true, false, false, false, true}; !slices.Equal(changes, want) {
		t.Errorf("state changes %v, want %v", changes, want)
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}; !slices.Equal(waits, want) {
		t.Errorf("holds %v, want %v (doubling, capped)", waits, want)
	}
	if w, _ := ds.hold(keyB); w != 0 {
		t.Errorf("key B held %v by key A's denial", w)
	}
	now = now.Add(5 * time.Second)
	if w, d := ds.hold(keyA); w != 0 || d.status != 403 {
		t.Errorf("after the hold: wait %v status %d, want 0 and still denied with 403", w, d.status)
	}
	if got := ds.statusOf(keyB); got != 403 {
		t.Errorf("statusOf(B) = %d, want the latest denial of any key (403)", got)
	}
	if d, ok := ds.clear(keyA); !ok || d.status != 403 {
		t.Errorf("clear = %+v %v", d, ok)
	}
	if _, ok := ds.clear(keyA); ok {
		t.Error("a second clear reported a state change")
	}
}

// keyDenier answers 401 for one key without asking the upstream, as Sentry
// does for a disabled key while the others are fine; deny is switched off
// to let the key through again.
type keyDenier struct {
	Sender
	key  string
	deny *atomic.Bool
}

func (s keyDenier) Send(ctx context.Context, r upstream.Request) upstream.Result {
	if r.PublicKey == s.key && s.deny.Load() {
		return upstream.Result{Class: upstream.Denied, Status: http.StatusUnauthorized, Err: errors.New("test: key disabled")}
	}
	return s.Sender.Send(ctx, r)
}

// One denied key does not hold up the others, and once its denial has
// lasted past the grace period its envelopes wait in the spool — acked out
// of the stream, where they would count against MaxAckPending — and arrive
// when the key is let through again.
func TestDeniedKeyWaitsInSpoolOthersFlow(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	var deny atomic.Bool
	deny.Store(true)
	h.sender = keyDenier{Sender: h.client, key: keyA, deny: &deny}
	// A grace period long enough that a loaded machine does not leave a
	// gap that long between key B's answers.
	h.start(fastCfg(Config{Concurrency: 2, FetchBatch: 2, OutageGracePeriod: time.Second}))

	outages := outagesTotal.Get()
	a := h.publish(20, keyA)
	// Key B flows throughout, as the other projects of a real relay do.
	var (
		mu sync.Mutex
		b  []string
	)
	stop := make(chan struct{})
	flowing := make(chan struct{})
	go func() {
		defer close(flowing)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			id, err := h.tryPublish(keyB)
			if err != nil {
				t.Errorf("publish for key B: %v", err)
				return
			}
			mu.Lock()
			b = append(b, id)
			mu.Unlock()
		}
	}()
	var once sync.Once
	halt := func() { once.Do(func() { close(stop); <-flowing }) }
	t.Cleanup(halt)                     // before the stream closes, also when the test fails early
	time.Sleep(1500 * time.Millisecond) // past the grace period
	eventually(t, 10*time.Second, "key A's envelopes in the spool", func() bool { return h.spool.Stats().Records == int64(len(a)) })
	halt()
	if got := outagesTotal.Get() - outages; got != 0 {
		t.Fatalf("%d outages declared: one denied key among answering ones is no outage", got)
	}
	if dead, _ := h.spool.Buried(10); len(dead) != 0 {
		t.Fatalf("%d dead letters: a denial is not final", len(dead))
	}
	eventually(t, 10*time.Second, "key B's envelopes accepted", func() bool { return h.up.Count() == len(b) })
	// Key A's were acked once spooled: nothing is left in the stream.
	eventually(t, 5*time.Second, "the stream empty", func() bool { return h.streamMsgs() == 0 })

	deny.Store(false)
	eventually(t, 10*time.Second, "key A's envelopes accepted once it is let through", func() bool { return h.up.Count() == len(a)+len(b) })
	eventually(t, 5*time.Second, "the spool empty", func() bool { return h.spool.Stats().Records == 0 })
	h.checkLedger(append(b, a...), 0)
}

// spoolAged puts one message for key, accepted by ingest at receivedAt,
// straight into the spool and adds it to the ledger.
func (h *harness) spoolAged(key string, receivedAt time.Time) string {
	h.t.Helper()
	h.mu.Lock()
	id := fmt.Sprintf("%032x", len(h.ledger)+1)
	h.ledger = append(h.ledger, id)
	h.keyOf[id] = key
	h.mu.Unlock()
	m := &stream.Message{ProjectID: testProject, PublicKey: key, Client: "sentry.go/0.50.0", Version: 7,
		ReceivedAt: receivedAt, EventID: id, Envelope: envelopeFor(id)}
	b, err := m.MarshalBinary()
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.spool.Put(context.Background(), b); err != nil {
		h.t.Fatalf("spool put: %v", err)
	}
	return id
}

// An outage of denials is probed with the oldest spooled envelope; records
// older than MaxEnvelopeDelay on the way are buried, not used as probes, and
// the probe succeeds — ending the outage and removing its record — only on
// an answer that is not a denial.
func TestProbeDeniedOutage(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.up.SetMode(fakesentry.Rejecting(http.StatusForbidden, "", 0))
	old := h.spoolAged(keyA, time.Now().Add(-2*time.Hour))
	young := h.spoolAged(keyA, time.Now())
	w, err := New(fastCfg(Config{MaxEnvelopeDelay: time.Hour, AckWait: time.Second}), h.consumer(), h.client, h.spool, h.log)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	w.outage.now = func() time.Time { return now }
	w.outage.Denial(http.StatusForbidden, "")
	now = now.Add(time.Minute)
	if !w.outage.Denial(http.StatusForbidden, "") || !w.outage.Denied() {
		t.Fatal("setup: no denied outage")
	}
	w.denied.record(keyA, http.StatusForbidden)

	ctx := context.Background()
	if err := w.probeDenied(ctx); err == nil {
		t.Fatal("probe succeeded against an upstream that denies")
	}
	dead, err := h.spool.Buried(10)
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters %d (%v), want the expired record", len(dead), err)
	}
	var m stream.Message
	if err := m.UnmarshalBinary(dead[0].Data); err != nil || m.EventID != old || !strings.Contains(dead[0].Reason, "expired: held by upstream status 403") {
		t.Fatalf("dead letter %s reason %q, want %s expired by a 403", m.EventID, dead[0].Reason, old)
	}
	if reqs := h.envelopeRequests(); len(reqs) != 1 || reqs[0].EventID != young {
		t.Fatalf("probe requests %+v, want one, with the young record", reqs)
	}
	if got := h.spooledIDs(); !slices.Equal(got, []string{young}) {
		t.Fatalf("spool holds %v, want the young record kept", got)
	}

	h.up.SetMode(fakesentry.Normal())
	if err := w.probeDenied(ctx); err != nil {
		t.Fatalf("probe against an upstream that accepts: %v", err)
	}
	if w.outage.Active() {
		t.Fatal("an accepted probe did not end the outage")
	}
	if n := h.spool.Stats().Records; n != 0 {
		t.Fatalf("spool holds %d records after the probe was accepted", n)
	}
	h.checkLedger([]string{young}, 0)
}
