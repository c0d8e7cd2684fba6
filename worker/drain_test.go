package worker

import (
	"net/http"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
)

// The drain does not stall behind one rate-limited key: when the head of the
// spool — a whole drain batch and more — belongs to a key limited for 30 s,
// the drainer reads past it and the other key's records go out at once;
// nothing more is sent for the limited key before its limit expires.
func TestDrainReadsPastALimitedKey(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	a := h.spoolMessages(12, keyA) // more than two batches
	b := h.spoolMessages(4, keyB)
	h.up.SetMode(fakesentry.RateLimited("30", "", 1))
	h.start(fastCfg(Config{Concurrency: 1, DrainConcurrency: 1, DrainBatch: 5}))

	eventually(t, 5*time.Second, "key B's records drained while key A is limited", func() bool { return h.up.Count() == len(b) })
	h.checkLedger(b, 0)
	reqs := h.envelopeRequests()
	if reqs[0].Status != http.StatusTooManyRequests || reqs[0].EventID != a[0] {
		t.Fatalf("first drained request %+v, want the oldest record answered 429", reqs[0])
	}
	for _, r := range reqs[1:] {
		if h.key(r.EventID) == keyA {
			t.Errorf("record %s of the limited key sent during its limit", r.EventID)
		}
	}
	eventually(t, 5*time.Second, "only key A's records left in the spool", func() bool { return h.spool.Stats().Records == int64(len(a)) })
}
