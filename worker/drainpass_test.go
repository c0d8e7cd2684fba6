package worker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
	"github.com/relayhq/relay/spool"
)

// fillSpool puts n small envelopes of key A straight into the spool (64
// writers, so they share commits) and makes them the ledger; it returns
// their event ids in spool order.
func (h *harness) fillSpool(n int) []string {
	h.t.Helper()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				id := fmt.Sprintf("%032x", i+1)
				m := &stream.Message{ProjectID: testProject, PublicKey: keyA, Version: 7, ReceivedAt: time.Now(), EventID: id, Envelope: envelopeFor(id)}
				data, err := m.MarshalBinary()
				if err == nil {
					err = h.spool.Put(context.Background(), data)
				}
				if err != nil {
					h.t.Errorf("spool put %s: %v", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if h.t.Failed() {
		h.t.FailNow()
	}
	order := h.spooledIDs()
	if len(order) != n {
		h.t.Fatalf("spool holds %d records, want %d", len(order), n)
	}
	h.mu.Lock()
	h.ledger = order
	for _, id := range order {
		h.keyOf[id] = keyA
	}
	h.mu.Unlock()
	return order
}

// checkNothingLost checks that every id of order is in the spool or was
// accepted by the upstream, and returns how many are both (sent, and their
// delete not committed: duplicates to come). The spool is read first: a
// record that left it before was accepted before, so the two reads cannot
// miss one in between.
func (h *harness) checkNothingLost(order []string) (inBoth int) {
	h.t.Helper()
	inSpool := make(map[string]bool)
	for _, id := range h.spooledIDs() {
		inSpool[id] = true
	}
	accepted := make(map[string]bool)
	for _, id := range h.acceptedIDs() {
		accepted[id] = true
	}
	for _, id := range order {
		switch {
		case inSpool[id] && accepted[id]:
			inBoth++
		case !inSpool[id] && !accepted[id]:
			h.t.Errorf("record %s left the spool without reaching the upstream", id)
		}
	}
	return inBoth
}

// An outage in the middle of a pipelined drain stops it: no new sends once
// the upstream is in outage, what was delivered is deleted, every other
// record stays in the spool; when the upstream is back the rest drains, each
// record once (a send cut by the outage may have reached the upstream: at
// most one duplicate per send in flight).
func TestDrainOutageMidPassKeepsTheRest(t *testing.T) {
	h := newHarness(t, harnessOpts{dropPayloads: true})
	const n, senders = 3000, 16
	order := h.fillSpool(n)
	r := h.start(fastCfg(Config{DrainConcurrency: senders}))
	eventually(t, time.Minute, "a part of the spool sent", func() bool { return len(h.acceptedIDs()) >= n/5 })
	h.up.Down()
	eventually(t, 10*time.Second, "the outage declared", r.w.outage.Active)

	// The pass stops: the spool stops shrinking well before it is empty.
	var last int64 = -1
	eventually(t, 10*time.Second, "the drain to stop", func() bool {
		now := h.spool.Stats().Records
		stable := now == last
		last = now
		time.Sleep(100 * time.Millisecond)
		return stable
	})
	left := h.spool.Stats().Records
	if left == 0 || left == n {
		t.Fatalf("spool holds %d of %d records after the outage: the test did not cut the drain in its middle", left, n)
	}
	if both := h.checkNothingLost(order); both > senders {
		t.Errorf("%d records both accepted and still spooled, want at most one per send in flight (%d)", both, senders)
	}
	accepted := len(h.acceptedIDs())
	time.Sleep(300 * time.Millisecond)
	if now := len(h.acceptedIDs()); now != accepted {
		t.Fatalf("the upstream accepted %d more during the outage", now-accepted)
	}

	upAgain(t, h)
	eventually(t, time.Minute, "the rest drained", func() bool { return h.spool.Stats().Records == 0 })
	h.checkLedger(order, senders)
	t.Logf("outage after %d accepted; %d records kept in the spool; all %d delivered", accepted, left, n)
}

// The kill test: a child process (this test binary, re-executed) drains a
// spool of drainKillN records with the production path (DrainSpool, default
// Config: pipelined sends, grouped deletes) into the parent's fake Sentry;
// the parent SIGKILLs it in the middle, reopens the spool and checks that no
// record was lost — each is in the spool or was accepted — and that the
// duplicates to come (accepted, delete not committed) are at most
// drainWindow; then a worker drains the rest and every record arrives.
const (
	drainKillSpoolEnv    = "WORKER_DRAIN_KILL_SPOOL"
	drainKillUpstreamEnv = "WORKER_DRAIN_KILL_UPSTREAM"
	drainKillN           = 6000
)

func TestDrainKillHelper(t *testing.T) {
	path, url := os.Getenv(drainKillSpoolEnv), os.Getenv(drainKillUpstreamEnv)
	if path == "" {
		return // not the child
	}
	sp, err := spool.Open(path, spool.Options{NoSync: true})
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper: open the spool: %v\n", err)
		os.Exit(3)
	}
	c, err := upstream.New(upstream.Config{URL: url, Timeout: 5 * time.Second, ConnectionTimeout: time.Second})
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper: upstream: %v\n", err)
		os.Exit(4)
	}
	if _, err := DrainSpool(context.Background(), Config{}, c, sp, slog.New(slog.NewTextHandler(io.Discard, nil)), nil); err != nil {
		fmt.Fprintf(os.Stderr, "helper: drain: %v\n", err)
		os.Exit(5)
	}
	os.Exit(0)
}

func TestDrainKilledMidPassLosesNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{dropPayloads: true})
	order := h.fillSpool(drainKillN)
	h.closeSpool()

	cmd := exec.Command(os.Args[0], "-test.run=^TestDrainKillHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), drainKillSpoolEnv+"="+h.opts.spoolPath, drainKillUpstreamEnv+"="+h.up.URL())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the child: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(2 * time.Minute)
	for len(h.acceptedIDs()) < drainKillN/3 {
		select {
		case err := <-exited:
			t.Fatalf("the child exited before the kill: %v", err)
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatal("the child did not drain a third of the spool within 2 minutes")
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("kill the child: %v", err)
	}
	<-exited
	killedAt := len(h.acceptedIDs())

	h.openSpool()
	left := h.spool.Stats().Records
	if left == 0 {
		t.Fatalf("the child drained all %d records before the kill: the test did not cut the drain", drainKillN)
	}
	dups := h.checkNothingLost(order)
	if dups > drainWindow {
		t.Errorf("%d records accepted but still spooled after the kill, want at most the window (%d)", dups, drainWindow)
	}

	h.start(fastCfg(Config{}))
	eventually(t, 2*time.Minute, "the rest drained after the kill", func() bool { return h.spool.Stats().Records == 0 })
	h.checkLedger(order, dups)
	t.Logf("killed after %d accepted, %d left in the spool; %d duplicates after the restart", killedAt, left, dups)
}

// holdingSender holds the send of the envelope carrying id until release is
// closed: an upstream slow on one request.
type holdingSender struct {
	Sender
	id      string
	release chan struct{}
}

func (s holdingSender) Send(ctx context.Context, r upstream.Request) upstream.Result {
	if strings.Contains(string(r.Envelope), s.id) {
		select {
		case <-s.release:
		case <-ctx.Done():
		}
	}
	return s.Sender.Send(ctx, r)
}

// The drain keeps its sends going past a slow one: while the oldest
// record's send hangs, the younger records of its window are sent (a drain
// that waited for the slowest send of each batch would send at most the
// rest of that batch), but none beyond the window, and nothing is deleted
// out of order: the spool keeps every record until the oldest is settled.
// Released, everything arrives once.
func TestDrainDoesNotWaitForTheSlowestSend(t *testing.T) {
	h := newHarness(t, harnessOpts{dropPayloads: true})
	n := drainWindow + 200
	order := h.fillSpool(n)
	release := make(chan struct{})
	h.sender = holdingSender{Sender: h.client, id: order[0], release: release}
	h.start(fastCfg(Config{DrainConcurrency: 4}))

	eventually(t, time.Minute, "the rest of the window sent while the oldest send hangs", func() bool {
		return len(h.acceptedIDs()) >= drainWindow-1
	})
	time.Sleep(200 * time.Millisecond) // time to go past the window, were it not bounded
	acc := h.acceptedIDs()
	if len(acc) != drainWindow-1 {
		t.Errorf("%d records accepted while the oldest hangs, want the window's %d", len(acc), drainWindow-1)
	}
	pos := make(map[string]int, n)
	for i, id := range order {
		pos[id] = i
	}
	for _, id := range acc {
		if p := pos[id]; p == 0 || p >= drainWindow {
			t.Fatalf("record #%d accepted while #0 hangs, want only #1 to #%d", p, drainWindow-1)
		}
	}
	if got := h.spool.Stats().Records; got != int64(n) {
		t.Errorf("spool holds %d records while the oldest hangs, want all %d (deletes follow the settled prefix)", got, n)
	}

	close(release)
	eventually(t, time.Minute, "the spool drained", func() bool { return h.spool.Stats().Records == 0 })
	h.checkLedger(order, 0)
}
