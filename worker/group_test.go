package worker

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/stream"
)

// publishGroups puts groups of size members for key on the stream, each
// with one PublishGroup (as ingest's group publish does), and adds every
// member's id to the ledger.
func (h *harness) publishGroups(groups, size int, key string) []string {
	h.t.Helper()
	var ids []string
	for range groups {
		ms := make([]*stream.Message, size)
		for i := range ms {
			h.mu.Lock()
			id := fmt.Sprintf("%032x", len(h.ledger)+1)
			h.ledger = append(h.ledger, id)
			h.keyOf[id] = key
			h.mu.Unlock()
			ms[i] = &stream.Message{
				ProjectID: testProject, PublicKey: key, Client: "sentry.go/0.50.0", Version: 7,
				UserAgent: "sentry-go/0.50.0", RemoteAddr: "127.0.0.1", ForwardedFor: "127.0.0.1",
				ReceivedAt: time.Now(), EventID: id, Envelope: envelopeFor(id),
			}
			ids = append(ids, id)
		}
		if err := h.conn.PublishGroup(context.Background(), ms, "grp-"+ms[0].EventID); err != nil {
			h.t.Fatalf("publish group: %v", err)
		}
	}
	return ids
}

// processCounter reads a counter of the default metrics set (the stream
// package's, which this package cannot reach by name); 0 when absent.
func processCounter(t *testing.T, name string) uint64 {
	t.Helper()
	var b bytes.Buffer
	metrics.WritePrometheus(&b, false)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return n
		}
	}
	return 0
}

// Groups through a failing upstream: 503s (retried, then Nak'd on a
// shutdown: every member re-published alone), 429s (members deferred:
// re-published alone) and recovery. Every member reaches the upstream at
// least once and the stream ends empty.
func TestGroupsThroughFailuresAndRestart(t *testing.T) {
	h := newHarness(t, harnessOpts{ackWait: 30 * time.Second})
	h.up.SetMode(fakesentry.Failing(http.StatusServiceUnavailable, 0))
	deferred := deferredTotal.Get()
	republished := processCounter(t, "relay_stream_group_members_republished_total")
	ids := h.publishGroups(6, 5, keyA)
	ids = append(ids, h.publishGroups(4, 3, keyB)...)
	ids = append(ids, h.publish(3, keyB)...)
	if n := h.streamMsgs(); n != 13 {
		t.Fatalf("stream holds %d messages, want 13 (10 groups, 3 lone)", n)
	}
	r := h.start(fastCfg(Config{Concurrency: 3, FetchBatch: 2, OutageGracePeriod: time.Minute}))
	eventually(t, 10*time.Second, "failed attempts", func() bool { return len(h.envelopeRequests()) >= 10 })
	r.stop(t) // members handed back: re-published alone, or their group Nak'd
	if n := len(h.acceptedIDs()); n != 0 {
		t.Fatalf("upstream accepted %d while failing", n)
	}
	if processCounter(t, "relay_stream_group_members_republished_total") == republished {
		t.Fatal("no member was re-published alone on the shutdown")
	}

	h.up.SetMode(fakesentry.RateLimited("1", "", 4))
	h.start(fastCfg(Config{Concurrency: 3, FetchBatch: 2}))
	eventually(t, 30*time.Second, "every member accepted", func() bool {
		seen := map[string]bool{}
		for _, id := range h.acceptedIDs() {
			seen[id] = true
		}
		return len(seen) == len(ids)
	})
	eventually(t, 10*time.Second, "the stream to be empty", func() bool { return h.streamMsgs() == 0 })
	h.checkLedger(ids, len(ids))
	if got := deferredTotal.Get() - deferred; got == 0 {
		t.Errorf("no member was deferred by the 429s")
	}
}

// Groups during an outage: every member goes into the spool as its own
// record (its version-1 encoding), the groups leave the stream, and the
// drain delivers every member once the upstream is back.
func TestGroupsOutageSpoolAndDrain(t *testing.T) {
	// The default AckWait (30s): nothing here is ever redelivered. The
	// worker starts before the groups are published, so they reach it
	// through waiting pull requests; one handed to a pull the worker had
	// stopped listening to would stay away for AckWait, past the test's
	// waits (stream.Consumer.Fetch waits for the server's own expiry).
	// Heartbeats cover what is held.
	h := newHarness(t, harnessOpts{})
	h.up.Down()
	spooled, redelivered := spooledTotal.Get(), redeliveredTotal.Get()
	r := h.start(fastCfg(Config{Concurrency: 2, FetchBatch: 2}))
	ids := h.publishGroups(8, 4, keyA)
	eventually(t, 15*time.Second, "every member in the spool", func() bool {
		if n := h.spool.Stats().Records; n > int64(len(ids)) {
			t.Fatalf("%d records in the spool for %d members", n, len(ids))
		}
		return h.spool.Stats().Records == int64(len(ids))
	})
	eventually(t, 5*time.Second, "the stream to be empty (each group acked after its members' spool commits)", func() bool { return h.streamMsgs() == 0 })
	got := map[string]bool{}
	for _, id := range h.spooledIDs() { // each record decodes as a lone Message
		got[id] = true
	}
	for _, id := range ids {
		if !got[id] {
			t.Fatalf("member %s not in the spool", id)
		}
	}
	if n := spooledTotal.Get() - spooled; n != uint64(len(ids)) {
		t.Errorf("relay_worker_spooled_total grew by %d, want %d", n, len(ids))
	}
	if n := redeliveredTotal.Get() - redelivered; n != 0 {
		t.Errorf("%d deliveries were redeliveries: a message was lost to the workers until AckWait", n)
	}
	upAgain(t, h)
	eventually(t, 15*time.Second, "the spool to drain", func() bool { return h.spool.Stats().Records == 0 })
	eventually(t, 5*time.Second, "the outage to end", func() bool { return !r.w.outage.Active() })
	h.checkLedger(ids, 0)
}

// messageSizes sums a group's members into one size, and keeps lone
// messages apart.
func TestMessageSizesPerStreamMessage(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.publishGroups(1, 3, keyA)
	h.publish(2, keyA)
	k := h.consumer()
	var ds []*stream.Delivery
	deadline := time.Now().Add(5 * time.Second)
	for len(ds) < 5 && time.Now().Before(deadline) {
		more, err := k.Fetch(context.Background(), 10)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, more...)
	}
	if len(ds) != 5 {
		t.Fatalf("%d deliveries, want 5", len(ds))
	}
	sizes := messageSizes(nil, ds)
	var total, want int64
	for _, d := range ds {
		want += int64(len(d.Raw()))
	}
	for _, s := range sizes {
		total += s
	}
	if len(sizes) != 3 || total != want || sizes[0] != int64(len(ds[0].Raw())+len(ds[1].Raw())+len(ds[2].Raw())) {
		t.Fatalf("sizes %v (total %d), want 3 sizes, the group's first, totalling %d", sizes, total, want)
	}
	for _, d := range ds {
		if err := d.AckNoWait(); err != nil {
			t.Fatal(err)
		}
	}
}
