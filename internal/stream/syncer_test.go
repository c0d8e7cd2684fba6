package stream

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestSyncAlwaysBarrier pins what the group fsync barrier relies on and
// checks that it groups: when Publish returns under sync "always", the
// message is in a block file (written through to the kernel by nats-server
// before its PubAck), and an fsync round ran after it; concurrent publishes
// share rounds.
func TestSyncAlwaysBarrier(t *testing.T) {
	cfg := testConfig(t)
	cfg.Sync = "always"
	c := openTest(t, cfg)
	if c.syncer == nil {
		t.Fatal("no barrier with sync always")
	}
	msgsDir := filepath.Join(cfg.StoreDir, "jetstream", "$G", "streams", DefaultStream, "msgs")

	rounds := syncRounds.Get()
	m := msgN(1)
	m.Envelope = []byte("a recognisable envelope 7c1e0d2a")
	if err := c.Publish(ctxT(t, 5*time.Second), m, "one"); err != nil {
		t.Fatal(err)
	}
	if syncRounds.Get() == rounds {
		t.Fatal("Publish returned without an fsync round")
	}
	enc, _ := m.MarshalBinary()
	found := false
	blks, _ := filepath.Glob(filepath.Join(msgsDir, "*.blk"))
	for _, p := range blks {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		found = found || bytes.Contains(b, enc)
	}
	if !found {
		t.Fatalf("acknowledged message not in any block file (%v): nats-server no longer writes before the PubAck, and the barrier would not cover it", blks)
	}

	const workers, each = 64, 10
	rounds, waiters := syncRounds.Get(), syncWaiters.Get()
	var wg sync.WaitGroup
	ctx := ctxT(t, 60*time.Second)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := c.Publish(ctx, msgN(w*each+i), fmt.Sprintf("c-%d-%d", w, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	r, n := syncRounds.Get()-rounds, syncWaiters.Get()-waiters
	if n != workers*each {
		t.Fatalf("%d publishes waited on the barrier, want %d", n, workers*each)
	}
	if r >= n/2 {
		t.Fatalf("%d fsync rounds for %d concurrent publishes: not grouping", r, n)
	}
	t.Logf("%d publishes, %d fsync rounds (%.1f per round)", n, r, float64(n)/float64(r))
	if got := streamMsgs(t, c); got != workers*each+1 {
		t.Fatalf("stream holds %d", got)
	}
}

func TestSyncerNewBlocksAndStop(t *testing.T) {
	dir := t.TempDir()
	msgs := filepath.Join(dir, "msgs")
	if err := os.MkdirAll(msgs, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"meta.inf", "meta.sum"} {
		write(t, filepath.Join(dir, f), []byte("x"))
	}
	write(t, filepath.Join(msgs, "1.blk"), []byte("a"))
	s, err := newStoreSyncer(dir, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.seen) != 1 {
		t.Fatalf("seen %v", s.seen)
	}
	write(t, filepath.Join(msgs, "2.blk"), []byte("b"))
	write(t, filepath.Join(msgs, "junk.tmp"), []byte("c"))
	if err := s.wait(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	s.close()
	if len(s.seen) != 2 {
		t.Fatalf("after a round with a new block: seen %v", s.seen)
	}
	if err := s.wait(ctxT(t, 5*time.Second)); !errors.Is(err, errSyncerStopped) {
		t.Fatalf("wait after close: %v", err)
	}
	// A store whose directory vanished: the round fails, the waiter hears it.
	s2, err := newStoreSyncer(dir, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.close()
	if err := os.RemoveAll(msgs); err != nil {
		t.Fatal(err)
	}
	if err := s2.wait(ctxT(t, 5*time.Second)); err == nil {
		t.Fatal("fsync round over a missing directory succeeded")
	}
}
