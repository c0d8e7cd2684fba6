package stream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// consumerInfo is the server's view of the durable consumer durable.
func consumerInfo(t *testing.T, c *Conn, durable string) *jetstream.ConsumerInfo {
	t.Helper()
	cons, err := c.js.Consumer(ctxT(t, 5*time.Second), c.cfg.Stream, durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// waitInfo polls the consumer's info until ok holds, or fails after 10 s.
func waitInfo(t *testing.T, c *Conn, durable, what string, ok func(*jetstream.ConsumerInfo) bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ok(consumerInfo(t, c, durable)) {
			return
		}
	}
	t.Fatalf("consumer %s: %s did not happen within 10s", durable, what)
}

type fetchResult struct {
	ds  []*Delivery
	err error
}

func fetchAsync(ctx context.Context, k *Consumer, n int) <-chan fetchResult {
	res := make(chan fetchResult, 1)
	go func() {
		ds, err := k.Fetch(ctx, n)
		res <- fetchResult{ds, err}
	}()
	return res
}

func awaitFetch(t *testing.T, res <-chan fetchResult) fetchResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("Fetch did not return within 20s")
		return fetchResult{}
	}
}

// At low load the message that ends a wait on an empty stream does not
// come back alone: the Fetch lingers, and the messages published meanwhile
// are returned with it, in order, from one wait on the server.
func TestFetchLingerGathersABatch(t *testing.T) {
	cfg := testConfig(t)
	cfg.FetchWait = 10 * time.Second
	cfg.AckWait = 30 * time.Second
	cfg.FetchLinger = 2 * time.Second // long: the later publishes surely land inside it
	c := openTest(t, cfg)
	k, err := c.Consumer(ctxT(t, 10*time.Second), "w")
	if err != nil {
		t.Fatal(err)
	}
	res := fetchAsync(ctxT(t, 30*time.Second), k, 8)
	waitInfo(t, c, "w", "a waiting pull", func(i *jetstream.ConsumerInfo) bool { return i.NumWaiting > 0 })
	publishN(t, c, 0, 1)
	// The first is handed to the waiting pull; the Fetch lingers with it.
	waitInfo(t, c, "w", "the first message delivered", func(i *jetstream.ConsumerInfo) bool { return i.NumAckPending == 1 })
	publishN(t, c, 1, 4)
	r := awaitFetch(t, res)
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := []string{msgN(0).EventID, msgN(1).EventID, msgN(2).EventID, msgN(3).EventID, msgN(4).EventID}
	if got := eventIDs(r.ds); !slices.Equal(got, want) {
		t.Fatalf("one Fetch returned %v, want the five published, in order: %v", got, want)
	}
	ackAll(t, r.ds)
	if n := streamMsgs(t, c); n != 0 {
		t.Fatalf("stream holds %d after the acks, want 0", n)
	}
}

// However many goroutines fetch on an empty stream, the server holds one
// waiting pull request for the handle: the others wait for their turn in
// the process, and each returns nothing once FetchWait passed, as an
// expired pull would. A message then reaches exactly one of them.
func TestFetchOneWaiterPerConsumer(t *testing.T) {
	cfg := testConfig(t)
	cfg.FetchWait = time.Second
	cfg.FetchLinger = -1
	c := openTest(t, cfg)
	k, err := c.Consumer(ctxT(t, 10*time.Second), "w")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 30*time.Second)
	const fetchers = 6
	results := make([]<-chan fetchResult, fetchers)
	for i := range results {
		results[i] = fetchAsync(ctx, k, 4)
	}
	waitInfo(t, c, "w", "a waiting pull", func(i *jetstream.ConsumerInfo) bool { return i.NumWaiting > 0 })
	for range 20 {
		if n := consumerInfo(t, c, "w").NumWaiting; n > 1 {
			t.Fatalf("the server holds %d waiting pulls for one Consumer, want 1", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, res := range results {
		r := awaitFetch(t, res)
		if r.err != nil || len(r.ds) != 0 {
			t.Fatalf("fetcher %d on an empty stream: %d deliveries, err %v; want none and nil", i, len(r.ds), r.err)
		}
	}

	// Again, now with a message for one of them.
	for i := range results {
		results[i] = fetchAsync(ctx, k, 4)
	}
	waitInfo(t, c, "w", "a waiting pull", func(i *jetstream.ConsumerInfo) bool { return i.NumWaiting > 0 })
	publishN(t, c, 0, 1)
	var got []*Delivery
	for _, res := range results {
		r := awaitFetch(t, res)
		if r.err != nil {
			t.Fatal(r.err)
		}
		got = append(got, r.ds...)
	}
	if ids := eventIDs(got); !slices.Equal(ids, []string{msgN(0).EventID}) {
		t.Fatalf("the fetchers got %v, want the one message once", ids)
	}
	ackAll(t, got)
}

// A Fetch whose ctx ends while it lingers returns the message it holds
// (nil error): the caller settles it, nothing waits for AckWait.
func TestFetchLingerCancelledReturnsWhatItHolds(t *testing.T) {
	cfg := testConfig(t)
	cfg.FetchWait = 10 * time.Second
	cfg.AckWait = 4 * time.Minute
	cfg.FetchLinger = time.Minute
	c := openTest(t, cfg)
	k, err := c.Consumer(ctxT(t, 10*time.Second), "w")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := fetchAsync(ctx, k, 8)
	waitInfo(t, c, "w", "a waiting pull", func(i *jetstream.ConsumerInfo) bool { return i.NumWaiting > 0 })
	publishN(t, c, 0, 1)
	waitInfo(t, c, "w", "the message delivered", func(i *jetstream.ConsumerInfo) bool { return i.NumAckPending == 1 })
	// The server counts it delivered as it sends it; give the client time
	// to take it and start lingering (a cancel before that abandons the
	// pull, TestFetchCancelledWhileWaiting's case).
	time.Sleep(300 * time.Millisecond)
	cancel()
	r := awaitFetch(t, res)
	if r.err != nil {
		t.Fatalf("Fetch cancelled while lingering: %v, want the message and nil", r.err)
	}
	if ids := eventIDs(r.ds); !slices.Equal(ids, []string{msgN(0).EventID}) {
		t.Fatalf("Fetch cancelled while lingering returned %v, want the message it held", ids)
	}
	ackAll(t, r.ds)
	if n := streamMsgs(t, c); n != 0 {
		t.Fatalf("stream holds %d after the ack, want 0", n)
	}
}

const lingerKillEnv = "RELAY_TEST_LINGER_KILL9_STORE"

// A process SIGKILLed while a Fetch lingers loses nothing: the message the
// Fetch held comes back after AckWait, and those published during the
// linger (left in the stream: the lingering Fetch holds the turn) are
// delivered after the restart.
func TestFetchLingerKill9(t *testing.T) {
	if dir := os.Getenv(lingerKillEnv); dir != "" {
		lingerKillChild(t, dir)
		return
	}
	cfg := testConfig(t)
	cmd, out := startKillChild(t, lingerKillEnv+"="+cfg.StoreDir)
	held := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "HELD" {
				held <- true
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
		close(held)
	}()
	select {
	case ok := <-held:
		if !ok {
			_ = cmd.Wait()
			t.Fatal("child ended before it held a lingering message")
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("child never held a lingering message")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	c := mustOpen(t, cfg)
	defer c.Close()
	k, err := c.Consumer(ctxT(t, 10*time.Second), "workers")
	if err != nil {
		t.Fatal(err)
	}
	// The held one is back after AckWait (2 s here), the others at once.
	got := fetchAll(t, k, lingerKillN, 20*time.Second)
	ids := eventIDs(got)
	slices.Sort(ids)
	var want []string
	for i := range lingerKillN {
		want = append(want, msgN(i).EventID)
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("after the kill: got %v, want every one published: %v", ids, want)
	}
	ackAll(t, got)
}

const lingerKillN = 4

// lingerKillChild publishes one message to a waiting Fetch that lingers a
// minute, publishes the rest while it lingers, says HELD once every
// publish was acknowledged and the first is out to the Fetch, and waits to
// be killed.
func lingerKillChild(t *testing.T, dir string) {
	// A long AckWait, so the linger (at most a quarter of it) outlives the
	// child; the parent's Consumer sets it back to 2 s, after which the
	// held message is redelivered.
	c, k := openKillChild(t, Config{StoreDir: dir, AckWait: 4 * time.Minute, FetchWait: 30 * time.Second, FetchLinger: time.Minute})
	go func() {
		if _, err := k.Fetch(context.Background(), 8); err != nil {
			panic(err)
		}
		panic(errors.New("Fetch returned inside its linger"))
	}()
	waitInfo(t, c, "workers", "a waiting pull", func(i *jetstream.ConsumerInfo) bool { return i.NumWaiting > 0 })
	publishN(t, c, 0, 1)
	waitInfo(t, c, "workers", "the first delivered", func(i *jetstream.ConsumerInfo) bool { return i.NumAckPending == 1 })
	publishN(t, c, 1, lingerKillN-1)
	fmt.Println("HELD")
	select {} // until SIGKILL
}
