package stream

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Sync "always" as a group commit.
//
// nats-server's own sync_interval: always fsyncs after every stored message,
// one after another in the stream's goroutine, so a stream takes a few
// hundred messages a second however many publishers wait (≈1/fsync latency).
// Instead the embedded server runs with its normal interval, and Publish adds
// a barrier after the PubAck: it waits for an fsync of the stream's message
// blocks that started after its PubAck arrived. One goroutine runs those
// fsyncs back to back; every publish that got its PubAck while one was
// running shares the next. The fsync cost is spread over all concurrent
// publishes, and a lone publish pays one fsync, as with nats's setting.
//
// Why this is as safe as nats's setting for what was acknowledged:
//   - a single-replica file store writes each message to its block file
//     (write(2), no user-space buffering: "flush in place") before it sends
//     the PubAck; TestSyncAlwaysBarrier checks this against the nats version
//     we build with;
//   - fsync(2) on any descriptor of a file makes all of that file's written
//     data durable, whichever descriptor wrote it;
//   - the barrier fsyncs the newest block (where writes go), every block
//     whose size, mtime or inode changed since the last round, and the msgs
//     directory when block files appeared, vanished or were replaced (so a
//     new block's directory entry survives too);
//   - nats-server rewrites a block when it compacts it (after out-of-order
//     acks deleted more than half of it): it writes N.new and renames it
//     over N.blk with neither fsynced. The rewritten block holds messages
//     that were acknowledged and fsynced in the old one, so the round after
//     the rename fsyncs the new file and the directory (the inode changed)
//     before it releases anyone;
//   - Open fsyncs the stream's metadata and every directory from the
//     stream's up to the parent of the highest one Open created (the store
//     directory and the config directory above it, the first time).
//
// The gap that remains: between nats-server's rename of a compacted block
// and the next round, a power loss can leave the new name pointing at data
// not yet on disk (ext4's default auto_da_alloc flushes such a
// replace-by-rename itself; other filesystems may not), and messages of
// that block that were acknowledged earlier could be lost. Rounds also run
// every idleSyncEvery without publishes, so that window is about a second,
// not "until the next publish"; closing it needs nats-server to fsync
// before the rename.
//
// What else it does not cover (each costs a duplicate after a power loss,
// never a loss of an acknowledged envelope): consumer state and deletions
// (acks) are synced on nats's interval, so acknowledged-and-forwarded
// messages can come back; the index file is rebuilt from the blocks.
var (
	syncRounds  = metrics.NewCounter(`relay_stream_sync_rounds_total`)
	syncWaiters = metrics.NewCounter(`relay_stream_sync_waiters_total`)
	syncErrors  = metrics.NewCounter(`relay_stream_sync_errors_total`)
)

var errSyncerStopped = errors.New("store syncer stopped")

type fileStamp struct {
	size  int64
	mtime time.Time
	id    uint64 // inode: a block renamed into place gets a new one
}

// idleSyncEvery is how often a round runs when nobody waits, so a block
// nats-server rewrote between publishes is made durable soon anyway.
const idleSyncEvery = time.Second

// storeSyncer runs the group fsyncs of one stream's message blocks.
type storeSyncer struct {
	streamDir string
	msgsDir   string
	log       *slog.Logger
	fsync     func(path string) error // fsyncPath; tests record the calls
	idleEvery time.Duration

	mu      sync.Mutex
	waiting []chan error // waiters for the next round

	kick chan struct{} // capacity 1: "a waiter is queued"
	stop chan struct{}
	done chan struct{}

	seen map[string]fileStamp // owned by run: blocks as of the last round
}

// newStoreSyncer starts the barrier for the stream in streamDir. topDir is
// the highest directory whose entry must be made durable: every directory
// from streamDir up to and including topDir is fsynced once (the entries of
// the store's directories, and of the store directory itself when Open
// created it, live in their parents).
func newStoreSyncer(streamDir, topDir string, log *slog.Logger) (*storeSyncer, error) {
	return startStoreSyncer(streamDir, topDir, log, fsyncPath, idleSyncEvery)
}

func startStoreSyncer(streamDir, topDir string, log *slog.Logger, fsync func(string) error, idleEvery time.Duration) (*storeSyncer, error) {
	s := &storeSyncer{
		streamDir: streamDir,
		msgsDir:   filepath.Join(streamDir, "msgs"),
		log:       log,
		fsync:     fsync,
		idleEvery: idleEvery,
		kick:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		seen:      map[string]fileStamp{},
	}
	// The stream's metadata and directories, as written when it was created
	// (without fsync under nats's interval setting).
	paths := []string{filepath.Join(streamDir, "meta.inf"), filepath.Join(streamDir, "meta.sum"), s.msgsDir}
	dirs, err := dirsUpTo(streamDir, topDir)
	if err != nil {
		return nil, fmt.Errorf("store syncer: %w", err)
	}
	for _, p := range append(paths, dirs...) {
		if err := s.fsync(p); err != nil {
			return nil, fmt.Errorf("store syncer: %w", err)
		}
	}
	if err := s.syncOnce(true); err != nil {
		return nil, fmt.Errorf("store syncer: %w", err)
	}
	go s.run()
	return s, nil
}

// dirsUpTo lists dir and its parents up to and including top, which must be
// dir or one of its parents.
func dirsUpTo(dir, top string) ([]string, error) {
	dir, top = filepath.Clean(dir), filepath.Clean(top)
	var out []string
	for {
		out = append(out, dir)
		if dir == top {
			return out, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return nil, fmt.Errorf("%s is not below %s", out[0], top)
		}
		dir = up
	}
}

// topCreated is the directory whose entry makes dir durable once MkdirAll
// has created it: the parent of the highest directory on dir's path that
// does not exist yet (dir's parent when dir exists).
func topCreated(dir string) string {
	dir = filepath.Clean(dir)
	top := dir
	for {
		if _, err := os.Stat(top); err == nil {
			break
		}
		up := filepath.Dir(top)
		if up == top {
			break
		}
		top = up
	}
	if top == dir {
		return filepath.Dir(dir)
	}
	return top
}

// wait returns once an fsync that started after the call has finished.
func (s *storeSyncer) wait(ctx context.Context) error {
	ch := make(chan error, 1)
	s.mu.Lock()
	s.waiting = append(s.waiting, ch)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default: // a round is already requested; it will take us
	}
	select {
	case err := <-ch:
		return err
	case <-s.stop:
		return errSyncerStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops the syncer after the round in progress; waiters still queued
// get errSyncerStopped.
func (s *storeSyncer) close() {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.waiting {
		ch <- errSyncerStopped
	}
	s.waiting = nil
}

func (s *storeSyncer) run() {
	defer close(s.done)
	idle := time.NewTicker(s.idleEvery)
	defer idle.Stop()
	for {
		select {
		case <-s.kick:
		case <-idle.C:
			// Nobody waits: make what changed durable anyway (a block
			// compacted between publishes). Errors show in the next
			// waited-for round, which looks at the same files.
			if err := s.syncChanged(); err != nil {
				s.log.Warn("background fsync of the jetstream store failed", "dir", s.msgsDir, "err", err)
			}
			continue
		case <-s.stop:
			return
		}
		s.mu.Lock()
		batch := s.waiting
		s.waiting = nil
		s.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		err := s.syncOnce(false)
		syncRounds.Inc()
		syncWaiters.Add(len(batch))
		if err != nil {
			syncErrors.Inc()
			s.log.Error("fsync of the jetstream store failed; publishes waiting on it fail", "dir", s.msgsDir, "err", err)
		}
		for _, ch := range batch {
			ch <- err
		}
	}
}

// syncOnce fsyncs the newest block, every block changed since the last
// round, and the directory when the set of blocks changed (or all when
// all is set).
func (s *storeSyncer) syncOnce(all bool) error { return s.round(all, true) }

// syncChanged fsyncs only what changed since the last round.
func (s *storeSyncer) syncChanged() error { return s.round(false, false) }

func (s *storeSyncer) round(all, newest bool) error {
	ents, err := os.ReadDir(s.msgsDir)
	if err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	type blk struct {
		name  string
		index uint64
		stamp fileStamp
	}
	var blks []blk
	for _, e := range ents {
		n := e.Name()
		idx, err := strconv.ParseUint(strings.TrimSuffix(n, ".blk"), 10, 64)
		if e.IsDir() || !strings.HasSuffix(n, ".blk") || err != nil {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since ReadDir: its messages are gone, nothing to keep
		}
		if err != nil {
			return fmt.Errorf("fsync: %w", err)
		}
		blks = append(blks, blk{n, idx, fileStamp{fi.Size(), fi.ModTime(), fileID(fi)}})
	}
	sort.Slice(blks, func(i, j int) bool { return blks[i].index < blks[j].index })
	dirChanged := all || len(blks) != len(s.seen)
	next := make(map[string]fileStamp, len(blks))
	for i, b := range blks {
		next[b.name] = b.stamp
		prev, known := s.seen[b.name]
		if !known || prev.id != b.stamp.id {
			// New, or replaced by a rename (a compaction): its entry is in
			// the directory.
			dirChanged = true
		}
		if all || !known || prev != b.stamp || (newest && i == len(blks)-1) {
			if err := s.fsync(filepath.Join(s.msgsDir, b.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("fsync: %w", err)
			}
		}
	}
	if dirChanged {
		if err := s.fsync(s.msgsDir); err != nil {
			return fmt.Errorf("fsync: %w", err)
		}
	}
	s.seen = next
	return nil
}

func fsyncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", p, err)
	}
	return nil
}
