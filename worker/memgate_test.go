package worker

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"
)

// fakeMem is a memGate state: a scripted sequence of (over, cycles), the
// last one repeated, and how often it was read.
type fakeMem struct {
	mu    sync.Mutex
	steps []memStep
	reads int
}

type memStep struct {
	over   bool
	cycles uint64
}

func (f *fakeMem) state() (bool, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.steps[min(f.reads, len(f.steps)-1)]
	f.reads++
	return s.over, s.cycles
}

func TestMemGate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		steps     []memStep
		cancel    bool
		wantReads int  // exactly, or at least when atLeast
		atLeast   bool // the wait ran out (maxWait) or was cancelled
		wantWait  bool // counted as a wait
	}{
		{"under the limit: no wait", []memStep{{false, 1}}, false, 1, false, false},
		{"over, then under: waits until under", []memStep{{true, 1}, {true, 1}, {true, 1}, {false, 1}}, false, 4, false, true},
		{"over, a collection finishes: waits for it alone", []memStep{{true, 1}, {true, 1}, {true, 2}}, false, 3, false, true},
		{"over for good: waits maxWait, not for ever", []memStep{{true, 1}}, false, 3, true, true},
		{"over, ctx ends: returns", []memStep{{true, 1}}, true, 1, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeMem{steps: tc.steps}
			g := &memGate{state: f.state, poll: time.Millisecond, maxWait: 20 * time.Millisecond, checkEvery: time.Hour}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			waits := memWaitsTotal.Get()
			g.wait(ctx)
			if f.reads != tc.wantReads && !(tc.atLeast && f.reads >= tc.wantReads) {
				t.Errorf("state read %d times, want %d (at least: %v)", f.reads, tc.wantReads, tc.atLeast)
			}
			if got := memWaitsTotal.Get() - waits; got != map[bool]uint64{false: 0, true: 1}[tc.wantWait] {
				t.Errorf("%d waits counted, want a wait: %v", got, tc.wantWait)
			}
		})
	}
}

// TestMemGateCachesUnder: once under the limit, the gate does not read the
// runtime's memory again within checkEvery; once over, it reads every time.
func TestMemGateCachesUnder(t *testing.T) {
	f := &fakeMem{steps: []memStep{{false, 1}}}
	g := &memGate{state: f.state, poll: time.Millisecond, maxWait: time.Millisecond, checkEvery: time.Hour}
	for range 5 {
		g.wait(context.Background())
	}
	if f.reads != 1 {
		t.Fatalf("under the limit: state read %d times for 5 waits, want 1", f.reads)
	}
	f = &fakeMem{steps: []memStep{{true, 1}, {true, 2}}}
	g = &memGate{state: f.state, poll: time.Millisecond, maxWait: 20 * time.Millisecond, checkEvery: time.Hour}
	g.wait(context.Background())
	g.wait(context.Background())
	if f.reads < 3 {
		t.Fatalf("over the limit: state read %d times for 2 waits, want every time", f.reads)
	}
}

// TestRuntimeMemState: the real reading follows debug.SetMemoryLimit: no
// limit is never over, a limit far below what the process uses is.
func TestRuntimeMemState(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)
	debug.SetMemoryLimit(math.MaxInt64)
	if over, _ := runtimeMemState(); over {
		t.Error("over without a limit")
	}
	debug.SetMemoryLimit(1 << 20) // any Go process maps more than 1 MiB
	over, _ := runtimeMemState()
	debug.SetMemoryLimit(prev)
	if !over {
		t.Error("not over a 1 MiB limit")
	}
	_, before := runtimeMemState()
	runtime.GC()
	if _, after := runtimeMemState(); after <= before {
		t.Errorf("GC cycles %d after a collection, %d before", after, before)
	}
}

// TestMoveAboveMemoryLimitLosesNothing: with the process always "above its
// memory limit" (the gate's state stubbed, no collection ever finishing),
// every spool Put waits the gate's maxWait first; the upstream is down, the
// whole backlog still moves into the spool, then drains once the upstream
// is back, nothing lost, and the waits are counted.
func TestMoveAboveMemoryLimitLosesNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	f := &fakeMem{steps: []memStep{{true, 7}}}
	h.beforeRun = func(w *Worker) {
		w.mem = &memGate{state: f.state, poll: time.Millisecond, maxWait: 5 * time.Millisecond, checkEvery: time.Millisecond}
	}
	h.up.Down()
	waits := memWaitsTotal.Get()
	h.start(fastCfg(Config{Concurrency: 4}))
	ids := h.publish(40, keyA)
	eventually(t, 30*time.Second, "all 40 envelopes in the spool", func() bool { return h.spool.Stats().Records == 40 })
	if got := memWaitsTotal.Get() - waits; got < 40 {
		t.Errorf("%d memory waits counted for 40 Puts above the limit", got)
	}
	upAgain(t, h)
	eventually(t, 30*time.Second, "the spool to drain", func() bool { return h.spool.Stats().Records == 0 })
	h.checkLedger(ids, 0)
}
