package stream

import (
	"testing"
	"time"
)

// AckNoWait removes messages from the work queue like Ack, and the record
// counts each as done only after a round trip confirmed a batch: what is
// not yet confirmed stays pending (resolved by the stream at the next
// Open), so a restart reports no loss and keeps nothing that was acked.
func TestAckNoWait(t *testing.T) {
	const n = ackConfirmBatch + 44
	cfg := testConfig(t)
	c := openTest(t, cfg)
	k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, c, 0, n)
	ds := fetchAll(t, k, n, 10*time.Second)
	if len(ds) != n {
		t.Fatalf("fetched %d, want %d", len(ds), n)
	}
	for _, d := range ds {
		if err := d.AckNoWait(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for streamMsgs(t, c) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("stream still holds %d messages after AckNoWait of all", streamMsgs(t, c))
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.rec.mu.Lock()
	pending, open := len(c.rec.set.pending), c.rec.set.count()
	c.rec.mu.Unlock()
	if pending != n-ackConfirmBatch || open != 0 {
		t.Fatalf("record: %d acks pending, %d sequences open; want %d pending (the unconfirmed rest), 0 open", pending, open, n-ackConfirmBatch)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	log, lines := captureLog(t)
	c2, err := Open(ctxT(t, 20*time.Second), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if lost, _ := c2.LostOnOpen(); lost != 0 || len(lines.matching("messages lost")) != 0 {
		t.Fatalf("reopen after AckNoWait reported %d lost", lost)
	}
	if open := c2.rec.set.count(); open != 0 || len(heldSeqs(t, c2)) != 0 {
		t.Fatalf("reopen: record holds %d open, stream %d messages; want 0 and 0", open, len(heldSeqs(t, c2)))
	}
}
