package stream

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMessageBufClass(t *testing.T) {
	for _, tc := range []struct {
		n, class int
	}{
		{0, -1},
		{64 << 10, -1}, // small messages are not pooled
		{64<<10 + 1, 0},
		{128 << 10, 0},
		{128<<10 + 1, 1},
		{200_000, 1},
		{256 << 10, 1},
		{1 << 20, 3},
		{4 << 20, 5},
		{4<<20 + 1, -1}, // too big to keep
	} {
		if got := messageBufClass(tc.n); got != tc.class {
			t.Errorf("messageBufClass(%d) = %d, want %d", tc.n, got, tc.class)
		}
		b := getMessageBuf(tc.n)
		if (b == nil) != (tc.class < 0) {
			t.Fatalf("getMessageBuf(%d) = %v, class %d", tc.n, b, tc.class)
		}
		if b != nil && (len(*b) != 0 || cap(*b) < tc.n || cap(*b) != 1<<(messageBufMinShift+tc.class)) {
			t.Errorf("getMessageBuf(%d): len %d cap %d", tc.n, len(*b), cap(*b))
		}
	}
	// A buffer that is not a whole class (regrown, or not from the pools)
	// is not kept: the next get must not see it.
	odd := make([]byte, 5, 200_000)
	putMessageBuf(&odd)
	if b := getMessageBuf(200_000); cap(*b) != 256<<10 || len(*b) != 0 {
		t.Errorf("after putting an odd buffer: len %d cap %d", len(*b), cap(*b))
	}
}

// largeMsg is message i with a large envelope whose every byte depends on i,
// so a buffer reused while the library could still send it shows up as
// another message's bytes.
func largeMsg(i int) *Message {
	m := msgN(i)
	size := 64<<10 + 1 + (i*7919)%(1<<20) // across the 128 KiB .. 2 MiB classes
	pat := []byte(fmt.Sprintf("<%08d>", i))
	m.Envelope = bytes.Repeat(pat, size/len(pat)+1)[:size]
	return m
}

// TestPooledPublishSurvivesOutageAndRestart: large messages are encoded into
// pooled buffers (msgbuf.go) that go back to the pool after the PubAck.
// Publishers run while the stream is gone (every publish gets "no
// responders": nats.go resends the retained message itself, then Publish
// retries) and after it is back; then the relay is closed and reopened. Every
// acknowledged message must come back byte for byte: a buffer recycled while
// a resend could still read it would store another message's bytes.
func TestPooledPublishSurvivesOutageAndRestart(t *testing.T) {
	cfg := testConfig(t)
	cfg.FetchWait = 5 * time.Second
	cfg.AckWait = 30 * time.Second
	c := openTest(t, cfg)
	ctx := ctxT(t, 120*time.Second)
	if err := c.js.DeleteStream(ctx, c.cfg.Stream); err != nil {
		t.Fatal(err)
	}
	const workers, perWorker = 8, 12
	var acked sync.Map // ledger: index -> true, for every nil Publish
	var nacked atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perWorker {
				i := w*perWorker + j
				if err := c.Publish(ctx, largeMsg(i), fmt.Sprintf("large-%d", i)); err != nil {
					t.Errorf("Publish %d: %v", i, err)
					continue
				}
				acked.Store(i, true)
				nacked.Add(1)
			}
		}()
	}
	time.Sleep(700 * time.Millisecond) // publishers wait on the missing stream
	if nacked.Load() != 0 {
		t.Fatalf("%d publishes acknowledged while the stream was missing", nacked.Load())
	}
	if _, err := c.js.CreateStream(ctx, c.streamConfig()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if err := c.CloseContext(ctx); err != nil {
		t.Fatal(err)
	}

	c = openTest(t, cfg)
	k, err := c.Consumer(ctx, "workers")
	if err != nil {
		t.Fatal(err)
	}
	ds := fetchUntilEmpty(t, k, 60*time.Second)
	seen := map[int]bool{}
	for _, d := range ds {
		var i int
		if _, err := fmt.Sscanf(d.Msg.EventID, "%x", &i); err != nil {
			t.Fatalf("event id %q: %v", d.Msg.EventID, err)
		}
		if seen[i] {
			t.Errorf("message %d stored twice", i)
		}
		seen[i] = true
		if want := largeMsg(i); !bytes.Equal(d.Msg.Envelope, want.Envelope) {
			t.Fatalf("message %d: envelope of %d bytes differs from the one published (%d bytes)", i, len(d.Msg.Envelope), len(want.Envelope))
		}
	}
	ackAll(t, ds)
	acked.Range(func(k, _ any) bool {
		if !seen[k.(int)] {
			t.Errorf("acknowledged message %d lost", k.(int))
		}
		return true
	})
	if len(seen) != workers*perWorker {
		t.Errorf("%d messages back, want %d", len(seen), workers*perWorker)
	}
}

// BenchmarkPublishLarge: concurrent publishes of 200 KB envelopes (the
// memory.sh load); allocs and B/op show the pooled encoding buffer.
//
//	go test -run '^$' -bench PublishLarge -benchmem ./internal/stream/
func BenchmarkPublishLarge(b *testing.B) {
	c, err := Open(context.Background(), Config{StoreDir: b.TempDir()}, testLog(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	m := msgN(0)
	m.Envelope = bytes.Repeat([]byte("x"), 200_000)
	var seq atomic.Int64
	ctx := context.Background()
	b.SetBytes(int64(len(m.Envelope)))
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			if err := c.Publish(ctx, m, fmt.Sprintf("l-%d", n)); err != nil {
				b.Error(err)
				return
			}
			if n%256 == 0 { // keep the store small: the stream is a work queue
				if err := c.stream.Purge(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		}
	})
}
