package worker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// switchDecider answers "pending" for every key until resolve is called,
// then the reason given for each key ("" forward).
type switchDecider struct {
	mu       sync.Mutex
	resolved chan struct{}
	reasons  map[string]string
}

func newSwitchDecider() *switchDecider { return &switchDecider{resolved: make(chan struct{})} }

func (d *switchDecider) resolve(reasons map[string]string) {
	d.mu.Lock()
	d.reasons = reasons
	d.mu.Unlock()
	close(d.resolved)
}

func (d *switchDecider) Decide(ctx context.Context, key string, _ uint64) (string, bool) {
	select {
	case <-d.resolved:
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.reasons[key], false
	case <-ctx.Done():
		return "", true
	}
}

var _ ProjectDecider = (*switchDecider)(nil)

// Envelopes accepted while their key was pending: once the config is known,
// a refused key's are dropped (counted, acked, never forwarded) and the
// others forwarded.
func TestProjectStageDecidesOnceKnown(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	d := newSwitchDecider()
	h.start(fastCfg(Config{Concurrency: 4}), NewProjectStage(d, 10*time.Second, h.log))
	kept := h.publish(3, keyA)
	h.publish(3, keyB)
	dropped := metrics.GetOrCreateCounter(`relay_worker_stage_dropped_total{stage="project",reason="project_id"}`)
	before := dropped.Get()
	time.Sleep(200 * time.Millisecond)
	if n := len(h.acceptedIDs()); n != 0 {
		t.Fatalf("%d envelopes forwarded while their keys were pending, want 0", n)
	}
	d.resolve(map[string]string{keyB: "ProjectId"})
	eventually(t, 10*time.Second, "every message acked", func() bool { return h.streamMsgs() == 0 })
	h.checkLedger(kept, 0) // nothing of keyB reached the upstream
	if got := dropped.Get() - before; got != 3 {
		t.Errorf("project_id drops counted: %d, want 3", got)
	}
	if h.spool.Stats().Buried != 0 {
		t.Errorf("refused envelopes went to the dead letters; they must be dropped")
	}
}

// A key still pending after the stage's wait is forwarded with the
// relay-wide settings: the upstream decides.
func TestProjectStagePendingTimeoutForwards(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.start(fastCfg(Config{Concurrency: 2}), NewProjectStage(newSwitchDecider(), 100*time.Millisecond, h.log))
	ids := h.publish(2, keyA)
	eventually(t, 10*time.Second, "both forwarded", func() bool { return len(h.acceptedIDs()) == 2 })
	h.checkLedger(ids, 0)
}

// A worker stopped while envelopes wait for their key's config loses
// nothing: the messages are redelivered to the next worker, which decides.
func TestProjectStageStopWhileWaiting(t *testing.T) {
	storeDir := t.TempDir()
	h := newHarness(t, harnessOpts{storeDir: storeDir, ackWait: 2 * time.Second})
	r := h.start(fastCfg(Config{Concurrency: 2}), NewProjectStage(newSwitchDecider(), time.Minute, h.log))
	ids := h.publish(4, keyA)
	eventually(t, 10*time.Second, "messages held by the waiting stage", func() bool {
		_, ack := h.consumerInfo()
		return ack > 0
	})
	r.stop(t)
	if n := len(h.acceptedIDs()); n != 0 {
		t.Fatalf("%d forwarded before the config was known", n)
	}
	d := newSwitchDecider()
	d.resolve(nil)
	h.start(fastCfg(Config{Concurrency: 2}), NewProjectStage(d, time.Minute, h.log))
	eventually(t, 15*time.Second, "every envelope forwarded after the restart", func() bool { return len(h.acceptedIDs()) >= 4 })
	h.checkLedger(ids, 0)
}

func TestProjectReasonLabel(t *testing.T) {
	for in, want := range map[string]string{"ProjectId": "project_id", "Cors": "cors", "ProjectState": "project_state"} {
		if got := projectReasonLabel(in); got != want {
			t.Errorf("projectReasonLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

// gate is a registration that opens on open().
type gate struct{ ch chan struct{} }

func (g gate) Wait(ctx context.Context) error {
	select {
	case <-g.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Before the relay is registered no config can be fetched: the stage's
// bounded wait starts only once it is, so envelopes are not forwarded
// undecided (and unscrubbed by their project's rules) meanwhile.
func TestProjectStageWaitsForRegistration(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	d := newSwitchDecider()
	g := gate{ch: make(chan struct{})}
	h.start(fastCfg(Config{Concurrency: 4}), NewProjectStage(d, 100*time.Millisecond, h.log).WithRegistration(g))
	kept := h.publish(2, keyA)
	h.publish(2, keyB)
	time.Sleep(400 * time.Millisecond) // longer than the stage's wait
	if n := len(h.acceptedIDs()); n != 0 {
		t.Fatalf("%d envelopes forwarded before the registration", n)
	}
	close(g.ch)
	d.resolve(map[string]string{keyB: "ProjectId"})
	eventually(t, 10*time.Second, "every message acked", func() bool { return h.streamMsgs() == 0 })
	h.checkLedger(kept, 0)
}
