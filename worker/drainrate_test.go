package worker

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/stream"
)

// The figure is a 100k spool; the default keeps the test quick:
//
//	go test -run TestDrainRate -count=1 -v ./worker/ -args -drain.n=100000
var drainN = flag.Int("drain.n", 5000, "TestDrainRate: records in the spool")

// TestDrainRate fills the spool, then lets the default worker drain it into
// a fake Sentry that answers at once, and checks the drain is complete,
// without duplicates, and oldest first: a record is sent before every
// record of a later drain batch (the batch's sends run concurrently, so
// inside one batch the order may vary). It logs the rate; speed is not
// asserted here (it moves with the machine).
func TestDrainRate(t *testing.T) {
	h := newHarness(t, harnessOpts{dropPayloads: true})
	n := *drainN
	var wg sync.WaitGroup
	var next atomic.Int64
	keyOf := make([]string, n)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				id := fmt.Sprintf("%032x", i+1)
				keyOf[i] = id
				m := &stream.Message{ProjectID: testProject, PublicKey: keyA, Version: 7, ReceivedAt: time.Now(), EventID: id, Envelope: envelopeFor(id)}
				data, err := m.MarshalBinary()
				if err == nil {
					err = h.spool.Put(context.Background(), data)
				}
				if err != nil {
					t.Errorf("spool put %s: %v", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	order := h.spooledIDs()
	if len(order) != n {
		t.Fatalf("spool holds %d records, want %d", len(order), n)
	}
	h.mu.Lock()
	h.ledger = order
	for _, id := range order {
		h.keyOf[id] = keyA
	}
	h.mu.Unlock()

	start := time.Now()
	h.start(Config{}) // the defaults: DrainBatch 100, DrainConcurrency 32
	eventually(t, 10*time.Minute, "the spool drained", func() bool { return h.spool.Stats().Records == 0 })
	elapsed := time.Since(start)
	h.checkLedger(order, 0)

	pos := make(map[string]int, n)
	for i, id := range order {
		pos[id] = i
	}
	batch := DefaultDrainBatch
	for i, id := range h.acceptedIDs() {
		if p := pos[id]; p/batch != i/batch {
			t.Fatalf("accepted #%d was spooled #%d: not oldest first (drain batches of %d)", i, p, batch)
		}
	}
	t.Logf("drained %d spooled envelopes in %s: %.0f envelopes/s, oldest first", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
}
