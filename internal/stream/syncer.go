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
//     whose size or mtime changed since the last round, and the msgs
//     directory when block files appeared or vanished (so a new block's
//     directory entry survives too). Open fsyncs the stream's metadata once.
//
// What it does not cover (each costs a duplicate after a power loss, never a
// loss of an acknowledged envelope): consumer state and deletions (acks) are
// synced on nats's interval, so acknowledged-and-forwarded messages can come
// back; the index file is rebuilt from the blocks.
var (
	syncRounds  = metrics.NewCounter(`relay_stream_sync_rounds_total`)
	syncWaiters = metrics.NewCounter(`relay_stream_sync_waiters_total`)
	syncErrors  = metrics.NewCounter(`relay_stream_sync_errors_total`)
)

var errSyncerStopped = errors.New("store syncer stopped")

type fileStamp struct {
	size  int64
	mtime time.Time
}

// storeSyncer runs the group fsyncs of one stream's message blocks.
type storeSyncer struct {
	streamDir string
	msgsDir   string
	log       *slog.Logger

	mu      sync.Mutex
	waiting []chan error // waiters for the next round

	kick chan struct{} // capacity 1: "a waiter is queued"
	stop chan struct{}
	done chan struct{}

	seen map[string]fileStamp // owned by run: blocks as of the last round
}

func newStoreSyncer(streamDir string, log *slog.Logger) (*storeSyncer, error) {
	s := &storeSyncer{
		streamDir: streamDir,
		msgsDir:   filepath.Join(streamDir, "msgs"),
		log:       log,
		kick:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		seen:      map[string]fileStamp{},
	}
	// The stream's metadata and directories, as written when it was created
	// (without fsync under nats's interval setting).
	for _, p := range []string{filepath.Join(streamDir, "meta.inf"), filepath.Join(streamDir, "meta.sum"),
		s.msgsDir, streamDir, filepath.Dir(streamDir), filepath.Dir(filepath.Dir(streamDir)), filepath.Dir(filepath.Dir(filepath.Dir(streamDir)))} {
		if err := fsyncPath(p); err != nil {
			return nil, fmt.Errorf("store syncer: %w", err)
		}
	}
	if err := s.syncOnce(true); err != nil {
		return nil, fmt.Errorf("store syncer: %w", err)
	}
	go s.run()
	return s, nil
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
	for {
		select {
		case <-s.kick:
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
func (s *storeSyncer) syncOnce(all bool) error {
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
		blks = append(blks, blk{n, idx, fileStamp{fi.Size(), fi.ModTime()}})
	}
	sort.Slice(blks, func(i, j int) bool { return blks[i].index < blks[j].index })
	dirChanged := all || len(blks) != len(s.seen)
	next := make(map[string]fileStamp, len(blks))
	for i, b := range blks {
		next[b.name] = b.stamp
		prev, known := s.seen[b.name]
		if !known {
			dirChanged = true
		}
		if all || !known || prev != b.stamp || i == len(blks)-1 {
			if err := fsyncPath(filepath.Join(s.msgsDir, b.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("fsync: %w", err)
			}
		}
	}
	if dirChanged {
		if err := fsyncPath(s.msgsDir); err != nil {
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
