package worker

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// jsonLines captures a worker's log as JSON records.
type jsonLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (j *jsonLines) Write(p []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.buf.Write(p)
}

// with returns the records whose msg starts with prefix.
func (j *jsonLines) with(t *testing.T, prefix string) []map[string]any {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(j.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		if msg, _ := rec["msg"].(string); strings.HasPrefix(msg, prefix) {
			out = append(out, rec)
		}
	}
	return out
}

// An outage seen by every consumer gives one WARN line when it begins (the
// upstream, the failure, what waits), one INFO line when the upstream is back
// (how long, how much to drain) and one when the spool is drained (how many).
func TestOutageLogsOneLineEachWay(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	lines := &jsonLines{}
	h.log = slog.New(slog.NewJSONHandler(lines, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.up.Down()
	r := h.start(fastCfg(Config{Concurrency: 4}))
	ids := h.publish(30, keyA)
	eventually(t, 15*time.Second, "all 30 envelopes in the spool", func() bool { return h.spool.Stats().Records == 30 })
	time.Sleep(200 * time.Millisecond) // more failed probes while the outage lasts
	upAgain(t, h)
	eventually(t, 15*time.Second, "the spool to drain", func() bool { return h.spool.Stats().Records == 0 })
	eventually(t, 5*time.Second, "the drained line", func() bool { return len(lines.with(t, "spool drained")) > 0 })
	h.checkLedger(ids, 0)
	if r.w.outage.Active() {
		t.Fatal("still in outage")
	}

	start := lines.with(t, "upstream outage")
	if len(start) != 1 {
		t.Fatalf("%d outage lines, want exactly 1: %v", len(start), start)
	}
	s := start[0]
	if s["level"] != "WARN" || s["upstream"] != h.up.URL() || s["status"] != 0.0 || s["err"] == nil ||
		s["spooled"] == nil || s["in_stream"] == nil {
		t.Errorf("outage line %v: want WARN with upstream %q, status 0, err, spooled, in_stream", s, h.up.URL())
	}
	back := lines.with(t, "upstream back")
	if len(back) != 1 {
		t.Fatalf("%d back lines, want exactly 1: %v", len(back), back)
	}
	b := back[0]
	lasted, _ := b["outage_for"].(float64) // slog's JSON handler writes durations in nanoseconds
	if time.Duration(lasted) < 200*time.Millisecond || b["to_drain"] != 30.0 || b["upstream"] != h.up.URL() {
		t.Errorf("back line %v: want outage_for ≥ 200ms, to_drain 30", b)
	}
	drained := lines.with(t, "spool drained")
	if len(drained) != 1 || drained[0]["drained"] != 30.0 {
		t.Errorf("drained lines %v: want one with drained 30", drained)
	}
}
