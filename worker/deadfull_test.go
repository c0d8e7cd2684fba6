package worker

import (
	"net/http"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
)

// When the dead letters are full, an envelope that must be buried is kept
// (never acked unkept) and the consumers stop taking from the stream — as
// for a full spool in outage — instead of fetching, failing to bury and
// handing back in a loop. Once an operator purged the dead letters the
// worker resumes by itself and nothing acknowledged is lost.
func TestDeadLettersFullStopsFetchingAndResumes(t *testing.T) {
	h := newHarness(t, harnessOpts{maxBuried: 1})
	h.up.SetMode(fakesentry.Rejecting(http.StatusBadRequest, "invalid event", 0))
	ids := h.publish(5, keyA)
	refused := deadFullRefusals.Get()
	h.start(fastCfg(Config{Concurrency: 1, FetchBatch: 1}))

	eventually(t, 10*time.Second, "the dead letters full and the worker stopped", func() bool { return deadFullGauge.Get() == 1 })
	if got := deadFullRefusals.Get() - refused; got < 1 {
		t.Errorf("relay_worker_dead_letters_refused_total grew by %d, want at least 1", got)
	}
	sent := len(h.envelopeRequests())
	time.Sleep(500 * time.Millisecond) // ten backpressure intervals
	if n := len(h.envelopeRequests()); n != sent {
		t.Fatalf("%d more sends while the dead letters were full: the worker must stop taking from the stream", n-sent)
	}
	if n := h.streamMsgs(); n != 4 {
		t.Fatalf("the stream holds %d messages, want the 4 not buried (the refused one kept)", n)
	}

	h.up.SetMode(fakesentry.Normal())
	dead, err := h.spool.Buried(10)
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters %d (%v), want 1", len(dead), err)
	}
	if err := h.spool.DeleteBuried(dead[0].ID); err != nil {
		t.Fatalf("purge: %v", err)
	}
	eventually(t, 15*time.Second, "the rest accepted after the purge", func() bool { return h.up.Count() >= 4 })
	eventually(t, 5*time.Second, "the stream empty", func() bool { return h.streamMsgs() == 0 })
	h.checkLedger(ids[1:], 0)
	if deadFullGauge.Get() != 0 {
		t.Error("relay_worker_dead_letters_full still 1 after the purge")
	}
}
