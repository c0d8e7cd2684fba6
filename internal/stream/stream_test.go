package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestPublishFetchAck(t *testing.T) {
	c := openTest(t, testConfig(t))
	k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, c, 0, 3)
	ds := fetchAll(t, k, 3, 5*time.Second)
	if len(ds) != 3 {
		t.Fatalf("fetched %d, want 3", len(ds))
	}
	for i, d := range ds {
		sameMessage(t, d.Msg, msgN(i))
		if d.NumDelivered() != 1 {
			t.Errorf("NumDelivered = %d, want 1", d.NumDelivered())
		}
		if want := fmt.Sprintf("id-%d", i); d.MsgID() != want {
			t.Errorf("MsgID = %q, want %q", d.MsgID(), want)
		}
		if d.Sequence() != uint64(i+1) {
			t.Errorf("Sequence = %d, want %d", d.Sequence(), i+1)
		}
		raw, _ := msgN(i).MarshalBinary()
		if !bytes.Equal(d.Raw(), raw) {
			t.Errorf("Raw differs from the published encoding")
		}
	}
	ackAll(t, ds)
	if n := streamMsgs(t, c); n != 0 {
		t.Fatalf("stream holds %d messages after acks, want 0 (work queue)", n)
	}
	start := time.Now()
	ds, err = k.Fetch(ctxT(t, 5*time.Second), 10)
	if err != nil || len(ds) != 0 {
		t.Fatalf("Fetch on empty stream: %d deliveries, err %v", len(ds), err)
	}
	if el := time.Since(start); el < 200*time.Millisecond || el > 3*time.Second {
		t.Fatalf("empty Fetch returned after %s, want about FetchWait (300ms)", el)
	}
}

func TestFetchReturnsAvailableWithoutWaitingForMax(t *testing.T) {
	cfg := testConfig(t)
	cfg.FetchWait = 3 * time.Second
	c := openTest(t, cfg)
	k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, c, 0, 2)
	start := time.Now()
	ds, err := k.Fetch(ctxT(t, 10*time.Second), 100)
	if err != nil || len(ds) != 2 {
		t.Fatalf("Fetch: %d deliveries, err %v", len(ds), err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Fetch with 2 ready took %s; it must not wait for 100 (FetchWait 3s)", el)
	}
	ackAll(t, ds)

	// Empty stream: Fetch waits, and returns as soon as one arrives.
	go func() {
		time.Sleep(300 * time.Millisecond)
		publishN(t, c, 2, 1)
	}()
	start = time.Now()
	ds, err = k.Fetch(ctxT(t, 10*time.Second), 100)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Fetch: %d deliveries, err %v", len(ds), err)
	}
	if el := time.Since(start); el < 250*time.Millisecond || el > 2500*time.Millisecond {
		t.Fatalf("Fetch returned after %s, want soon after the publish at 300ms (FetchWait 3s)", el)
	}
	ackAll(t, ds)

	// A cancelled ctx ends a waiting Fetch with ctx's error.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start = time.Now()
	_, err = k.Fetch(ctx, 10)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch after cancel: err = %v, want context.Canceled", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Fetch took %s to notice cancellation", el)
	}
}

func TestPublishDeduplicatesMsgID(t *testing.T) { forEachPublishPath(t, testPublishDeduplicatesMsgID) }

func testPublishDeduplicatesMsgID(t *testing.T, inProcess bool) {
	c := openPath(t, inProcess, testConfig(t))
	ctx := ctxT(t, 10*time.Second)
	m := msgN(1)
	for range 3 {
		if err := c.Publish(ctx, m, "same-id"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Publish(ctx, m, "other-id"); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, c); n != 2 {
		t.Fatalf("stream holds %d messages, want 2 (3 publishes of one id + 1 other)", n)
	}
	// An empty id gets a random one: two publishes, two messages.
	for range 2 {
		if err := c.Publish(ctx, m, ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := streamMsgs(t, c); n != 4 {
		t.Fatalf("stream holds %d messages, want 4", n)
	}
}

// TestPublishRetriesUntilStreamIsBack: with the stream gone, a publish finds
// no responder; Publish keeps retrying with the same Nats-Msg-Id, and once
// the stream is back the message is stored exactly once.
func TestPublishRetriesUntilStreamIsBack(t *testing.T) {
	forEachPublishPath(t, testPublishRetriesUntilStreamIsBack)
}

func testPublishRetriesUntilStreamIsBack(t *testing.T, inProcess bool) {
	c := openPath(t, inProcess, testConfig(t))
	ctx := ctxT(t, 20*time.Second)
	if err := c.js.DeleteStream(ctx, c.cfg.Stream); err != nil {
		t.Fatal(err)
	}
	retriesBefore := publishRetries.Get()
	done := make(chan error, 1)
	go func() { done <- c.Publish(ctx, msgN(7), "retried-id") }()
	time.Sleep(700 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Publish returned %v while the stream was missing", err)
	default:
	}
	if _, err := c.js.CreateStream(ctx, c.streamConfig()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if publishRetries.Get() == retriesBefore {
		t.Fatal("no retry was counted")
	}
	if err := c.Publish(ctx, msgN(7), "retried-id"); err != nil { // a caller's own retry
		t.Fatal(err)
	}
	if n := streamMsgs(t, c); n != 1 {
		t.Fatalf("stream holds %d messages, want 1", n)
	}
}

func TestPublishUnavailableWhenCtxEnds(t *testing.T) {
	forEachPublishPath(t, testPublishUnavailableWhenCtxEnds)
}

func testPublishUnavailableWhenCtxEnds(t *testing.T, inProcess bool) {
	c := openPath(t, inProcess, testConfig(t))
	if err := c.js.DeleteStream(ctxT(t, 5*time.Second), c.cfg.Stream); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Publish(ctx, msgN(1), "x")
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Publish took %s past a 300ms ctx", el)
	}
}

func TestPublishFull(t *testing.T) { forEachPublishPath(t, testPublishFull) }

func testPublishFull(t *testing.T, inProcess bool) {
	cfg := testConfig(t)
	cfg.MaxBytes = 16 << 10
	c := openPath(t, inProcess, cfg)
	ctx := ctxT(t, 20*time.Second)
	k, err := c.Consumer(ctx, "workers")
	if err != nil {
		t.Fatal(err)
	}
	m := msgN(0)
	m.Envelope = bytes.Repeat([]byte("e"), 1<<10)
	var full error
	n := 0
	for ; n < 100; n++ {
		if full = c.Publish(ctx, m, fmt.Sprintf("full-%d", n)); full != nil {
			break
		}
	}
	if !errors.Is(full, ErrFull) {
		t.Fatalf("after %d publishes: err = %v, want ErrFull", n, full)
	}
	if errors.Is(full, ErrUnavailable) {
		t.Fatalf("ErrFull must not also be ErrUnavailable: %v", full)
	}
	if n < 10 || n > 16 {
		t.Fatalf("stream full after %d messages of ~1.2 KiB with a 16 KiB limit", n)
	}
	time.Sleep(readyCacheTTL + 100*time.Millisecond)
	if err := c.Ready(ctx); !errors.Is(err, ErrFull) {
		t.Fatalf("Ready on a full stream: %v, want ErrFull", err)
	}
	// Consuming frees room.
	ds, err := k.Fetch(ctx, 2)
	if err != nil || len(ds) == 0 {
		t.Fatalf("Fetch: %d, %v", len(ds), err)
	}
	ackAll(t, ds)
	if err := c.Publish(ctx, m, "after-ack"); err != nil {
		t.Fatalf("Publish after acks: %v", err)
	}
}

func TestPublishTooLarge(t *testing.T) { forEachPublishPath(t, testPublishTooLarge) }

func testPublishTooLarge(t *testing.T, inProcess bool) {
	c := openPath(t, inProcess, testConfig(t))
	if got, want := c.MaxPayload(), int64(embeddedMaxPayload-headerReserve); got != want {
		t.Fatalf("MaxPayload = %d, want %d", got, want)
	}
	ctx := ctxT(t, 60*time.Second)
	m := msgN(0)
	m.Envelope = make([]byte, c.MaxPayload())
	if err := c.Publish(ctx, m, "too-big"); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	// A big envelope that fits goes through whole.
	// Over nats's default 1 MiB max_payload and its 8 MiB block size.
	m.Envelope = bytes.Repeat([]byte("0123456789abcdef"), (9<<20)/16)
	if err := c.Publish(ctx, m, "big"); err != nil {
		t.Fatalf("9 MiB publish: %v", err)
	}
	k, err := c.Consumer(ctx, "workers")
	if err != nil {
		t.Fatal(err)
	}
	ds := fetchAll(t, k, 1, 50*time.Second) // slow under -race on a loaded machine
	if len(ds) != 1 {
		t.Fatalf("fetched %d", len(ds))
	}
	sameMessage(t, ds[0].Msg, m)
	ackAll(t, ds)
}

func TestRedeliveryAfterAckWait(t *testing.T) {
	cfg := testConfig(t)
	cfg.AckWait = time.Second
	c := openTest(t, cfg)
	k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, c, 0, 1)
	first := fetchAll(t, k, 1, 3*time.Second)
	if len(first) != 1 {
		t.Fatal("no delivery")
	}
	start := time.Now()
	again := fetchAll(t, k, 1, 5*time.Second) // not acked: comes back after AckWait
	if len(again) != 1 {
		t.Fatal("not redelivered after AckWait")
	}
	if el := time.Since(start); el < 700*time.Millisecond {
		t.Fatalf("redelivered after %s, before AckWait (1s)", el)
	}
	if again[0].NumDelivered() != 2 || again[0].Msg.EventID != first[0].Msg.EventID {
		t.Fatalf("redelivery: NumDelivered %d, event %s", again[0].NumDelivered(), again[0].Msg.EventID)
	}
	ackAll(t, again)
}

func TestInProgressDefersRedelivery(t *testing.T) {
	cfg := testConfig(t)
	cfg.AckWait = 2 * time.Second // each loop below takes about FetchWait (300ms)
	c := openTest(t, cfg)
	k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, c, 0, 1)
	ds := fetchAll(t, k, 1, 3*time.Second)
	if len(ds) != 1 {
		t.Fatal("no delivery")
	}
	// Keep it alive for 2.5 AckWaits: no redelivery meanwhile.
	stop := time.Now().Add(5 * time.Second)
	for time.Now().Before(stop) {
		if err := ds[0].InProgress(); err != nil {
			t.Fatal(err)
		}
		if more, err := k.Fetch(ctxT(t, 5*time.Second), 1); err != nil || len(more) != 0 {
			t.Fatalf("redelivered while in progress: %d, %v", len(more), err)
		}
	}
	ackAll(t, ds)
}

func TestNak(t *testing.T) {
	c := openTest(t, testConfig(t))
	k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, c, 0, 1)
	ds := fetchAll(t, k, 1, 3*time.Second)
	if err := ds[0].Nak(0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ds = fetchAll(t, k, 1, 3*time.Second)
	if len(ds) != 1 || ds[0].NumDelivered() != 2 {
		t.Fatalf("after Nak(0): %d deliveries", len(ds))
	}
	if el := time.Since(start); el > 1500*time.Millisecond {
		t.Fatalf("Nak(0) redelivered after %s, want at once (AckWait is 2s)", el)
	}
	if err := ds[0].Nak(800 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	ds = fetchAll(t, k, 1, 3*time.Second)
	if len(ds) != 1 || ds[0].NumDelivered() != 3 {
		t.Fatalf("after Nak(800ms): %d deliveries", len(ds))
	}
	if el := time.Since(start); el < 600*time.Millisecond {
		t.Fatalf("Nak(800ms) redelivered after %s", el)
	}
	ackAll(t, ds)
}

// TestRestartKeepsUnacked: what is not acked survives Close and re-Open of
// the same store; what was acked does not come back.
func TestRestartKeepsUnacked(t *testing.T) {
	cfg := testConfig(t)
	cfg.AckWait = time.Second
	func() {
		c, err := Open(ctxT(t, 30*time.Second), cfg, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := c.Close(); err != nil {
				t.Error(err)
			}
		}()
		k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
		if err != nil {
			t.Fatal(err)
		}
		publishN(t, c, 0, 5)
		ds := fetchAll(t, k, 2, 3*time.Second)
		if len(ds) != 2 {
			t.Fatalf("fetched %d", len(ds))
		}
		ackAll(t, ds[:1]) // msg 0 acked, msg 1 delivered but not acked, 2-4 never delivered
	}()
	c := openTest(t, cfg)
	k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
	if err != nil {
		t.Fatal(err)
	}
	ds := fetchAll(t, k, 5, 4*time.Second)
	got := map[string]bool{}
	for _, d := range ds {
		got[d.Msg.EventID] = true
	}
	if len(got) != 4 || got[msgN(0).EventID] {
		t.Fatalf("after restart got %v, want messages 1-4", eventIDs(ds))
	}
	for i := 1; i < 5; i++ {
		if !got[msgN(i).EventID] {
			t.Fatalf("message %d lost across restart", i)
		}
	}
	ackAll(t, ds)
}

// TestSharedDurable: workers sharing one durable — on one connection and on
// a second connection through the embedded server's listener, as a separate
// process would — get disjoint messages that together are all of them.
func TestSharedDurable(t *testing.T) {
	cfg := testConfig(t)
	cfg.Listen = "127.0.0.1:0"
	a := openTest(t, cfg)
	url := a.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Fatalf("ClientURL = %q", url)
	}
	b := openTest(t, Config{URL: url, AckWait: cfg.AckWait, FetchWait: cfg.FetchWait})
	if b.MaxPayload() != a.MaxPayload() {
		t.Fatalf("remote MaxPayload %d != embedded %d", b.MaxPayload(), a.MaxPayload())
	}
	const total = 600
	publishN(t, b, 0, total/2)
	publishN(t, a, total/2, total/2)

	var consumers []*Consumer
	for _, c := range []*Conn{a, a, b, b} {
		k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
		if err != nil {
			t.Fatal(err)
		}
		consumers = append(consumers, k)
	}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	ctx := ctxT(t, 30*time.Second)
	for i, k := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ds, err := k.Fetch(ctx, 7)
				if err != nil {
					t.Errorf("worker %d: %v", i, err)
					return
				}
				if len(ds) == 0 {
					return // drained
				}
				for _, d := range ds {
					mu.Lock()
					seen[d.Msg.EventID]++
					mu.Unlock()
					if err := d.Ack(ctx); err != nil {
						t.Errorf("worker %d ack: %v", i, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != total {
		t.Fatalf("got %d distinct messages, want %d", len(seen), total)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("message %s delivered %d times", id, n)
		}
	}
}

// TestUndecodableMessageStaysInStream: a message that is not a valid
// encoding is not handed to workers and not dropped.
func TestUndecodableMessageStaysInStream(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := ctxT(t, 10*time.Second)
	k, err := c.Consumer(ctx, "workers")
	if err != nil {
		t.Fatal(err)
	}
	before := undecodableVersion.Get()
	if _, err := c.js.Publish(ctx, c.Subject(1), []byte{99, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	publishN(t, c, 0, 1)
	ds := fetchAll(t, k, 2, time.Second)
	if len(ds) != 1 || ds[0].Msg.EventID != msgN(0).EventID {
		t.Fatalf("got %v, want only the valid message", eventIDs(ds))
	}
	ackAll(t, ds)
	if undecodableVersion.Get() != before+1 {
		t.Fatal("undecodable message not counted")
	}
	if n := streamMsgs(t, c); n != 1 {
		t.Fatalf("stream holds %d, want the undecodable message kept", n)
	}
}

func TestOpenUpdatesStreamSettings(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBytes = 1 << 20
	c, err := Open(ctxT(t, 30*time.Second), cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, c, 0, 3)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.MaxBytes = 2 << 20
	c = openTest(t, cfg)
	info, err := c.stream.Info(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxBytes != 2<<20 {
		t.Fatalf("MaxBytes = %d after re-Open, want %d", info.Config.MaxBytes, 2<<20)
	}
	if info.State.Msgs != 3 {
		t.Fatalf("update lost messages: %d", info.State.Msgs)
	}
	if info.Config.Retention != jetstream.WorkQueuePolicy || info.Config.Discard != jetstream.DiscardNew ||
		info.Config.Duplicates != DuplicateWindow || info.Config.Storage != jetstream.FileStorage ||
		info.Config.Subjects[0] != "relay_envelopes.>" {
		t.Fatalf("stream config %+v", info.Config)
	}
}

func TestOpenConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no store dir", Config{}, "store_dir is required"},
		{"bad sync", Config{StoreDir: dir, Sync: "sometimes"}, `sync "sometimes"`},
		{"negative sync", Config{StoreDir: dir, Sync: "-1s"}, `sync "-1s"`},
		{"replicas embedded", Config{StoreDir: dir, Replicas: 3}, "needs a NATS cluster"},
		{"bad stream name", Config{StoreDir: dir, Stream: "a.b"}, "stream name"},
		{"negative max bytes", Config{StoreDir: dir, MaxBytes: -5}, "max_bytes"},
		{"tiny ack wait", Config{StoreDir: dir, AckWait: time.Millisecond}, "ack_wait"},
		{"bad listen", Config{StoreDir: dir, Listen: "nope"}, "listen"},
		{"sync with url", Config{URL: "nats://127.0.0.1:1", Sync: "always"}, "embedded server only"},
		{"nothing at url", Config{URL: "nats://127.0.0.1:1", StartTimeout: 2 * time.Second}, "jetstream unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			c, err := Open(ctxT(t, 10*time.Second), tt.cfg, testLog(t))
			if err == nil {
				c.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Fatalf("Open took %s to fail", el)
			}
		})
	}
}

func TestParseSync(t *testing.T) {
	tests := []struct {
		in      string
		want    syncSetting
		wantErr bool
	}{
		{"", syncSetting{}, false},
		{"always", syncSetting{always: true}, false},
		{"1s", syncSetting{interval: time.Second}, false},
		{"2m", syncSetting{interval: 2 * time.Minute}, false},
		{"0s", syncSetting{}, true},
		{"fast", syncSetting{}, true},
	}
	for _, tt := range tests {
		got, err := parseSync(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseSync(%q) = %+v, %v", tt.in, got, err)
		}
	}
}

func TestOpenWithSyncSettings(t *testing.T) {
	for _, sync := range []string{"always", "1s"} {
		t.Run(sync, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Sync = sync
			c := openTest(t, cfg)
			opts := c.srv.JetStreamConfig()
			if opts == nil {
				t.Fatal("no JetStream config")
			}
			if sync == "always" && (opts.SyncAlways || c.syncer == nil) {
				t.Fatalf("sync always: nats SyncAlways %v (want false), barrier %v (want on)", opts.SyncAlways, c.syncer != nil)
			}
			if sync == "1s" && (opts.SyncAlways || opts.SyncInterval != time.Second || c.syncer != nil) {
				t.Fatalf("sync: always %v interval %s", opts.SyncAlways, opts.SyncInterval)
			}
			publishN(t, c, 0, 2)
		})
	}
}

// TestReadyFailsAtOnceWhenTheStoreGoesDown: a fresh "ready" in the cache
// does not hide a store the watch found broken (storewatch.go): publishes
// fail with it at once, so readiness must too.
func TestReadyFailsAtOnceWhenTheStoreGoesDown(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := ctxT(t, 10*time.Second)
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	c.down.Store(&storeDown{err: fmt.Errorf("store cannot take writes: %w", ErrFull)})
	if err := c.Ready(ctx); !errors.Is(err, ErrFull) {
		t.Fatalf("Ready with the store down, a fresh answer cached: %v, want ErrFull", err)
	}
	c.down.Store(nil)
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("Ready once the store is back: %v", err)
	}
}

func TestReadyCachesAndFailsAfterClose(t *testing.T) {
	cfg := testConfig(t)
	c, err := Open(ctxT(t, 30*time.Second), cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 5*time.Second)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Ready(ctx); err != nil {
				t.Errorf("Ready: %v", err)
			}
		}()
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	time.Sleep(readyCacheTTL + 50*time.Millisecond)
	if err := c.Ready(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ready after Close: %v, want ErrUnavailable", err)
	}
	start := time.Now()
	if err := c.Publish(ctx, msgN(0), "late"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Publish after Close: %v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Publish after Close took %s; it must fail at once, not retry", el)
	}
}

func TestClassifyPublishError(t *testing.T) {
	api := func(code int, ec jetstream.ErrorCode, desc string) error {
		return fmt.Errorf("nats: %w", &jetstream.APIError{Code: code, ErrorCode: ec, Description: desc})
	}
	tests := []struct {
		name  string
		err   error
		kind  error
		retry bool
	}{
		{"max bytes", api(503, jsErrStoreFailed, "maximum bytes exceeded"), ErrFull, false},
		{"max msgs", api(503, jsErrStoreFailed, "maximum messages exceeded"), ErrFull, false},
		{"store too large", api(503, jsErrStoreFailed, "message too large"), ErrTooLarge, false},
		{"store io", api(503, jsErrStoreFailed, "input/output error"), ErrUnavailable, false},
		{"storage exceeded", api(500, jsErrStorageExceeded, "insufficient storage resources available"), ErrFull, false},
		{"resources", api(503, jsErrInsufficientResource, "insufficient resources"), ErrFull, false},
		{"msg too big", api(400, jsErrMessageTooBig, "message size exceeds maximum allowed"), ErrTooLarge, false},
		{"no leader", api(503, 10008, "JetStream cluster not available"), ErrUnavailable, true},
		{"bad request", api(400, 10003, "bad request"), ErrUnavailable, false},
		{"async timeout", jetstream.ErrAsyncPublishTimeout, ErrUnavailable, true},
		{"no stream response", jetstream.ErrNoStreamResponse, ErrUnavailable, true},
		{"no responders", nats.ErrNoResponders, ErrUnavailable, true},
		{"disconnected", nats.ErrDisconnected, ErrUnavailable, true},
		{"stalled", jetstream.ErrTooManyStalledMsgs, ErrUnavailable, true},
		{"closed", nats.ErrConnectionClosed, ErrUnavailable, false},
		{"draining", nats.ErrConnectionDraining, ErrUnavailable, false},
		{"max payload", nats.ErrMaxPayload, ErrTooLarge, false},
		{"ctx", fmt.Errorf("x: %w: %w", ErrUnavailable, context.Canceled), ErrUnavailable, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, retry := classifyPublishError(tt.err)
			if kind != tt.kind || retry != tt.retry {
				t.Fatalf("classify(%v) = %v, %v; want %v, %v", tt.err, kind, retry, tt.kind, tt.retry)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":    "nats://127.0.0.1:4222",
		"nats://user:pw@host:4222": "nats://***@host:4222",
		"tls://tok@a:1,nats://b:2": "tls://***@a:1,nats://b:2",
		// A cluster list with credentials on every server keeps every host.
		"nats://u:p@a:1,nats://u:p@b:2,nats://u:p@c:3": "nats://***@a:1,nats://***@b:2,nats://***@c:3",
		"": "",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCloseWaitsForPublishesInFlight: publishes that started before Close
// get their PubAck; those after it fail at once.
func TestCloseWaitsForPublishesInFlight(t *testing.T) {
	cfg := testConfig(t)
	cfg.Sync = "always" // slower publishes: more of them in flight
	c, err := Open(ctxT(t, 30*time.Second), cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg                sync.WaitGroup
		okN, unavailableN atomic.Int64
		started           = make(chan struct{})
		once              sync.Once
	)
	ctx := ctxT(t, 30*time.Second)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				err := c.Publish(ctx, msgN(w*1000+i), fmt.Sprintf("w%d-%d", w, i))
				once.Do(func() { close(started) })
				switch {
				case err == nil:
					okN.Add(1)
				case errors.Is(err, ErrUnavailable):
					unavailableN.Add(1)
					return
				default:
					t.Errorf("Publish: %v", err)
					return
				}
			}
		}()
	}
	<-started
	time.Sleep(100 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if unavailableN.Load() != 16 {
		t.Fatalf("%d publishers saw ErrUnavailable after Close, want all 16", unavailableN.Load())
	}
	// Every publish that returned nil is in the store.
	c2 := openTest(t, cfg)
	if got := streamMsgs(t, c2); got != uint64(okN.Load()) {
		t.Fatalf("store holds %d messages, %d publishes returned nil", got, okN.Load())
	}
	t.Logf("%d acknowledged before Close", okN.Load())
}

// The largest message Publish takes is one the store keeps: it is stored,
// and read back whole after the server restarts. (nats-server's file store
// treats a record over 32 MiB as damage when it reads a block back, so a
// bigger max_payload would let ingest acknowledge envelopes the next start
// discards.)
func TestLargestMessageSurvivesRestart(t *testing.T) {
	cfg := testConfig(t)
	// Moving 32 MiB through the client under -race on a loaded machine takes
	// seconds: a fetch must outlast it. A delivery that still misses its
	// fetch comes back after the ack wait, so that is kept short.
	cfg.FetchWait = 30 * time.Second
	cfg.AckWait = 5 * time.Second
	c := openTest(t, cfg)
	m := msgN(0)
	// The encoding adds a few hundred bytes to the envelope; stay just under.
	m.Envelope = bytes.Repeat([]byte{'x'}, int(c.MaxPayload())-4096)
	ctx := ctxT(t, 120*time.Second)
	if err := c.Publish(ctx, m, "largest"); err != nil {
		t.Fatalf("publish of %d bytes (MaxPayload %d): %v", len(m.Envelope), c.MaxPayload(), err)
	}
	if err := c.CloseContext(ctx); err != nil {
		t.Fatal(err)
	}
	c = openTest(t, cfg)
	k, err := c.Consumer(ctx, "workers")
	if err != nil {
		t.Fatal(err)
	}
	ds := fetchAll(t, k, 1, 150*time.Second)
	if len(ds) == 0 {
		t.Fatal("fetched nothing after restart, want the largest message back")
	}
	sameMessage(t, ds[0].Msg, m)
	ackAll(t, ds)
}
