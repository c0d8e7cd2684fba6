package worker

import (
	"testing"
	"time"
)

// TestUpstreamStateFollowsTheOutageDetector walks the detector through
// failures within the grace, an outage (denied and not), and the answer
// that ends it, and checks what the status page is told at each step.
func TestUpstreamStateFollowsTheOutageDetector(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	w := &Worker{outage: newOutageDetector(time.Second, func() time.Time { return now })}
	type want struct {
		state  string
		since  time.Time
		denied bool
	}
	check := func(step string, w0 want) {
		t.Helper()
		state, since, denied := w.UpstreamState()
		if state != w0.state || !since.Equal(w0.since) || denied != w0.denied {
			t.Fatalf("%s: UpstreamState = %s %v %v, want %s %v %v", step, state, since, denied, w0.state, w0.since, w0.denied)
		}
	}
	start := now
	check("fresh", want{state: UpstreamUp})
	w.outage.Failure(503, "")
	check("first failure", want{state: UpstreamFailing, since: start})
	now = now.Add(2 * time.Second)
	w.outage.Failure(503, "")
	check("failing past the grace", want{state: UpstreamOutage, since: start})
	w.outage.Denial(403, "")
	check("denied in outage", want{state: UpstreamOutage, since: start, denied: true})
	w.outage.Answered()
	check("answered", want{state: UpstreamUp})
}

// TestTotalsReadTheMetricsCounters: Totals is the sum the status page
// charts, read from the counters /metrics exposes.
func TestTotalsReadTheMetricsCounters(t *testing.T) {
	f0, s0 := Totals()
	forwardedTotal.Add(2)
	drainedTotal.Add(3)
	spooledTotal.Add(4)
	f1, s1 := Totals()
	if f1-f0 != 5 || s1-s0 != 4 {
		t.Fatalf("Totals grew by %d forwarded, %d spooled; want 5 (2 from the stream + 3 drained), 4", f1-f0, s1-s0)
	}
}
