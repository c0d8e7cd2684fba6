package worker

import (
	"flag"
	"testing"
	"time"
)

// The figure is a 100k spool; the default keeps the test quick:
//
//	go test -run TestDrainRate -count=1 -v ./worker/ -args -drain.n=100000
var drainN = flag.Int("drain.n", 5000, "TestDrainRate: records in the spool")

// TestDrainRate fills the spool, then lets the default worker drain it into
// a fake Sentry that answers at once, and checks the drain is complete,
// without duplicates, and oldest first as drainSpoolPass promises: when a
// record is accepted, every record drainWindow places older or more was
// accepted before it (sends run concurrently, so inside that window the
// order may vary). It logs the rate; speed is not asserted here (it moves
// with the machine).
func TestDrainRate(t *testing.T) {
	h := newHarness(t, harnessOpts{dropPayloads: true})
	n := *drainN
	order := h.fillSpool(n)

	start := time.Now()
	h.start(Config{}) // the defaults: DrainBatch 100, DrainConcurrency 32
	eventually(t, 10*time.Minute, "the spool drained", func() bool { return h.spool.Stats().Records == 0 })
	elapsed := time.Since(start)
	h.checkLedger(order, 0)

	pos := make(map[string]int, n)
	for i, id := range order {
		pos[id] = i
	}
	checkDrainOrder(t, pos, h.acceptedIDs())
	t.Logf("drained %d spooled envelopes in %s: %.0f envelopes/s, oldest first", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
}

// checkDrainOrder checks the drain's ordering promise on the order the
// upstream accepted records in: when the record spooled at position p is
// accepted, every record at a position up to p-drainWindow was accepted
// before it.
func checkDrainOrder(t *testing.T, pos map[string]int, accepted []string) {
	t.Helper()
	seen := make([]bool, len(pos))
	low := 0 // the oldest position not yet accepted
	for i, id := range accepted {
		p, ok := pos[id]
		if !ok {
			t.Fatalf("accepted #%d (%s) was never spooled", i, id)
		}
		if p-low >= drainWindow {
			t.Fatalf("accepted #%d was spooled #%d while #%d was not yet accepted: not oldest first (window %d)", i, p, low, drainWindow)
		}
		seen[p] = true
		for low < len(seen) && seen[low] {
			low++
		}
	}
}
