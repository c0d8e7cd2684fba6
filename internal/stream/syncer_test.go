package stream

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	s, err := newStoreSyncer(dir, dir, testLog(t))
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
	s2, err := newStoreSyncer(dir, dir, testLog(t))
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

// fsyncLog records the paths a syncer fsyncs.
type fsyncLog struct {
	mu    sync.Mutex
	paths []string
}

func (l *fsyncLog) fsync(p string) error {
	l.mu.Lock()
	l.paths = append(l.paths, p)
	l.mu.Unlock()
	return fsyncPath(p)
}

// take returns the paths recorded since the last take.
func (l *fsyncLog) take() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]bool{}
	for _, p := range l.paths {
		out[p] = true
	}
	l.paths = nil
	return out
}

// compactLikeNats rewrites a block the way nats-server v2.15.2 compacts one
// (filestore.go compactWithFloor → writeAtomicallyWithTemp): the new
// contents go to N.new, which is renamed over N.blk, neither fsynced. The
// new file keeps the old size and modification time here, so only its
// inode tells it apart.
func compactLikeNats(t *testing.T, blk string) {
	t.Helper()
	fi, err := os.Stat(blk)
	if err != nil {
		t.Fatal(err)
	}
	tmp := strings.TrimSuffix(blk, ".blk") + ".new"
	write(t, tmp, bytes.Repeat([]byte{'c'}, int(fi.Size())))
	if err := os.Chtimes(tmp, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, blk); err != nil {
		t.Fatal(err)
	}
}

// TestSyncerFsyncsCompactedBlock: a block nats-server compacted (rewritten
// and renamed into place) is fsynced, with the directory holding its new
// entry, by the next round before that round releases any publish waiting
// on it — and by the idle round when no publish comes.
func TestSyncerFsyncsCompactedBlock(t *testing.T) {
	setup := func(t *testing.T) (dir, msgs string) {
		dir = t.TempDir()
		msgs = filepath.Join(dir, "msgs")
		if err := os.MkdirAll(msgs, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"meta.inf", "meta.sum"} {
			write(t, filepath.Join(dir, f), []byte("x"))
		}
		write(t, filepath.Join(msgs, "1.blk"), []byte("aaaaaaaa"))
		write(t, filepath.Join(msgs, "2.blk"), []byte("bbbbbbbb"))
		return dir, msgs
	}
	t.Run("next barrier", func(t *testing.T) {
		dir, msgs := setup(t)
		var l fsyncLog
		s, err := startStoreSyncer(dir, dir, testLog(t), l.fsync, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		l.take()
		// A round with nothing changed: the newest block only.
		if err := s.wait(ctxT(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		if got := l.take(); len(got) != 1 || !got[filepath.Join(msgs, "2.blk")] {
			t.Fatalf("unchanged store: fsynced %v, want only the newest block", got)
		}
		compactLikeNats(t, filepath.Join(msgs, "1.blk"))
		if err := s.wait(ctxT(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		// wait returned: the round that released it must have covered the
		// compaction.
		got := l.take()
		for _, want := range []string{filepath.Join(msgs, "1.blk"), msgs} {
			if !got[want] {
				t.Errorf("released before %s was fsynced (fsynced %v)", want, got)
			}
		}
	})
	t.Run("idle", func(t *testing.T) {
		dir, msgs := setup(t)
		var l fsyncLog
		s, err := startStoreSyncer(dir, dir, testLog(t), l.fsync, 20*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		l.take()                          // start-up
		time.Sleep(60 * time.Millisecond) // idle rounds with nothing to do
		if got := l.take(); len(got) != 0 {
			t.Fatalf("idle rounds over an unchanged store fsynced %v", got)
		}
		compactLikeNats(t, filepath.Join(msgs, "1.blk"))
		waitFor(t, 5*time.Second, "an idle round to fsync the compacted block", func() bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			var blk, d bool
			for _, p := range l.paths {
				blk = blk || p == filepath.Join(msgs, "1.blk")
				d = d || p == msgs
			}
			return blk && d
		})
	})
}

// TestSyncerDirectories: Open fsyncs every directory from the stream's up
// to the one holding the entry of the highest directory it created.
func TestSyncerDirectories(t *testing.T) {
	base := t.TempDir()
	tests := []struct {
		name, storeDir, wantTop string
	}{
		{"store exists", base, filepath.Dir(base)},
		{"store created", filepath.Join(base, "jetstream"), base},
		{"config dir created too", filepath.Join(base, "conf", "jetstream"), base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := topCreated(tt.storeDir); got != tt.wantTop {
				t.Fatalf("topCreated(%s) = %s, want %s", tt.storeDir, got, tt.wantTop)
			}
		})
	}
	dirs, err := dirsUpTo(filepath.Join(base, "conf", "jetstream", "jetstream", "$G", "streams", "S"), base)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"S", "streams", "$G", "jetstream", "jetstream", "conf", filepath.Base(base)}
	if len(dirs) != len(want) {
		t.Fatalf("dirsUpTo = %v", dirs)
	}
	for i, d := range dirs {
		if filepath.Base(d) != want[i] {
			t.Fatalf("dirsUpTo = %v, want bases %v", dirs, want)
		}
	}
	if _, err := dirsUpTo(base, filepath.Join(base, "x")); err == nil {
		t.Fatal("dirsUpTo accepted a top below the directory")
	}

	// With sync always, Open in a store directory it creates, under a config
	// directory it creates too, works and fsyncs them (fsync of a missing
	// directory would fail Open).
	cfg := testConfig(t)
	cfg.StoreDir = filepath.Join(base, "conf2", "jetstream")
	cfg.Sync = "always"
	c := openTest(t, cfg)
	publishN(t, c, 0, 1)
}

// TestNatsCompactsByRename pins what TestSyncerFsyncsCompactedBlock assumes
// of the nats-server we build with: after out-of-order acks delete more
// than half of a full block, it rewrites the block under the same name with
// a new inode (a rename), so the barrier must look at inodes, not names.
func TestNatsCompactsByRename(t *testing.T) {
	cfg := testConfig(t)
	cfg.Sync = "always"
	cfg.MaxBytes = 8 << 20 // nats-server picks 4 MiB blocks for it
	c := openTest(t, cfg)
	k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 60*time.Second)
	for i := range 60 {
		m := msgN(i)
		m.Envelope = append(m.Envelope, bytes.Repeat([]byte{'p'}, 100<<10)...)
		if err := c.Publish(ctx, m, fmt.Sprintf("big-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	blk := filepath.Join(cfg.StoreDir, "jetstream", "$G", "streams", DefaultStream, "msgs", "1.blk")
	if _, err := os.Stat(filepath.Join(filepath.Dir(blk), "2.blk")); err != nil {
		t.Fatalf("want a second block so 1.blk is not the newest: %v", err)
	}
	before, err := os.Stat(blk)
	if err != nil {
		t.Fatal(err)
	}
	// Ack all but the first message of block 1: out of order (the first
	// stays), so nats-server deletes them in place and then compacts.
	ds := fetchAll(t, k, 60, 20*time.Second)
	for _, d := range ds {
		if d.Sequence() >= 2 && d.Sequence() <= 35 {
			if err := d.Ack(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, 10*time.Second, "nats-server to compact 1.blk", func() bool {
		after, err := os.Stat(blk)
		return err == nil && fileID(after) != fileID(before)
	})
	after, _ := os.Stat(blk)
	t.Logf("1.blk %d → %d bytes, inode %d → %d", before.Size(), after.Size(), fileID(before), fileID(after))
	if rounds := syncRounds.Get(); c.Publish(ctx, msgN(1000), "after-compaction") != nil || syncRounds.Get() == rounds {
		t.Fatal("publish after a compaction did not pass a barrier round")
	}
}
