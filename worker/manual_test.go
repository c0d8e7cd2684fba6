package worker

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
)

// DrainSpool empties the spool the way the drainer does: every record the
// upstream accepted is deleted, one it rejected for good is buried, a 429
// is waited out, and the records go out oldest first.
func TestDrainSpool(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ids := append(h.spoolMessages(20, keyA), h.spoolMessages(10, keyB)...)
	h.up.SetMode(fakesentry.Rejecting(http.StatusBadRequest, "bad", 1))
	var calls int
	var last DrainProgress
	got, err := DrainSpool(context.Background(), fastCfg(Config{DrainBatch: 8, DrainConcurrency: 1}), h.client, h.spool, h.log,
		func(p DrainProgress) { calls++; last = p })
	if err != nil {
		t.Fatalf("DrainSpool: %v", err)
	}
	if got.Sent != 29 || got.Buried != 1 || last != got || calls < 4 {
		t.Fatalf("DrainSpool = %+v (last progress %+v after %d calls), want 29 sent, 1 buried", got, last, calls)
	}
	h.checkLedger(ids[1:], 0)
	if acc := h.acceptedIDs(); acc[0] != ids[1] || acc[28] != ids[29] {
		t.Fatalf("not drained oldest first: %v", acc)
	}
	if st := h.spool.Stats(); st.Records != 0 || st.Buried != 1 {
		t.Fatalf("spool after the drain: %+v", st)
	}
}

func TestDrainSpoolWaitsOutARateLimit(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ids := h.spoolMessages(5, keyA)
	h.up.SetMode(fakesentry.RateLimited("1", "", 1))
	start := time.Now()
	got, err := DrainSpool(context.Background(), fastCfg(Config{}), h.client, h.spool, h.log, nil)
	if err != nil || got.Sent != 5 {
		t.Fatalf("DrainSpool = %+v, %v", got, err)
	}
	if time.Since(start) < time.Second {
		t.Fatal("records of a rate-limited key were sent before Retry-After")
	}
	h.checkLedger(ids, 0)
}

// With the upstream down the drain stops after the outage grace period and
// leaves every record in the spool.
func TestDrainSpoolStopsInOutage(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.spoolMessages(5, keyA)
	h.up.Down()
	got, err := DrainSpool(context.Background(), fastCfg(Config{}), h.client, h.spool, h.log, nil)
	if !errors.Is(err, ErrDrainStopped) || got.Sent != 0 {
		t.Fatalf("DrainSpool = %+v, %v; want ErrDrainStopped", got, err)
	}
	if n := h.spool.Stats().Records; n != 5 {
		t.Fatalf("%d records left in the spool, want 5", n)
	}

	h.spoolMessages(0, keyA)
	h.up.SetMode(fakesentry.Failing(http.StatusUnauthorized, 0))
	if err := h.up.Up(); err != nil {
		t.Fatal(err)
	}
	_, err = DrainSpool(context.Background(), fastCfg(Config{}), h.client, h.spool, h.log, nil)
	if !errors.Is(err, ErrDrainStopped) {
		t.Fatalf("DrainSpool with every request denied: %v; want ErrDrainStopped", err)
	}
	if n := h.spool.Stats().Records; n != 5 {
		t.Fatalf("%d records left in the spool after denials, want 5", n)
	}
}
