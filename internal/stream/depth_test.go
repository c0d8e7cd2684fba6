package stream

import (
	"testing"
	"time"
)

// TestDepthFollowsPublishFetchAndAck: the depth the status page shows is
// what JetStream holds: messages until acked, pending until delivered,
// ack-pending while a worker holds them.
func TestDepthFollowsPublishFetchAndAck(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := ctxT(t, 30*time.Second)
	check := func(when string, want Depth) {
		t.Helper()
		got, err := c.Depth(ctx, "workers")
		if err != nil {
			t.Fatalf("%s: Depth: %v", when, err)
		}
		got.Bytes = 0 // the size depends on the server's framing
		if got != want {
			t.Fatalf("%s: Depth = %+v, want %+v", when, got, want)
		}
	}
	publishN(t, c, 0, 5)
	check("before any consumer", Depth{Messages: 5})
	if d, _ := c.Depth(ctx, "workers"); d.Bytes == 0 {
		t.Fatal("5 stored messages take 0 bytes")
	}
	k, err := c.Consumer(ctx, "workers")
	if err != nil {
		t.Fatal(err)
	}
	check("consumer declared", Depth{Messages: 5, Pending: 5})
	ds := fetchAll(t, k, 3, 10*time.Second)
	if len(ds) != 3 {
		t.Fatalf("fetched %d, want 3", len(ds))
	}
	check("three delivered", Depth{Messages: 5, Pending: 2, AckPending: 3})
	ackAll(t, ds)
	check("three acked", Depth{Messages: 2, Pending: 2})
	if d, err := c.Depth(ctx, ""); err != nil || d.Messages != 2 || d.Pending != 0 {
		t.Fatalf("without a consumer: %+v, %v", d, err)
	}
}

// TestDepthOfAClosedConnectionFails: a stream that cannot answer is an
// error, not a depth of zero.
func TestDepthOfAClosedConnectionFails(t *testing.T) {
	c, err := Open(ctxT(t, 30*time.Second), testConfig(t), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Depth(ctxT(t, 5*time.Second), "workers"); err == nil {
		t.Fatal("Depth of a closed connection returned no error")
	}
}
