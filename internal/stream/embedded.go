package stream

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// startEmbedded starts nats-server with JetStream in this process and waits
// until it takes connections. It never hangs: it returns when the server is
// ready, when the server reports a fatal start-up error (e.g. a store it
// cannot use), or when ctx ends.
//
// What nats-server (v2.15.2) does with a damaged store, pinned by
// TestOpenDamagedStore:
//   - a truncated message block (msgs/N.blk): rebuilt from the records that
//     still verify; the messages before the cut are kept, the cut-off ones
//     are gone (a "will rebuild" warning, and not reported in the stream's
//     Lost state). A block truncated to zero loses all its messages the same
//     way: the stream keeps its sequence (FirstSeq = LastSeq+1) and holds
//     nothing — the data was not readable, so this is not "silently empty".
//   - garbage inside a block: the records before the first bad checksum are
//     kept; the rest of that block is dropped (record boundaries after it
//     cannot be trusted). Other blocks are unaffected.
//   - junk files in the stream or msgs directory, a junk index.db, a junk
//     sibling stream directory: ignored or rebuilt from the blocks; nothing
//     is lost.
//   - a damaged or missing meta.inf / meta.sum (the stream's config): the
//     stream is not loaded at all (an error in the log). declareStream then
//     refuses to start (scanStore found blocks) rather than create a new,
//     empty stream over them.
//   - a damaged consumer state (obs/<durable>/o.dat): the consumer does not
//     load; Conn.Consumer sets the file aside and recreates it (see there).
//
// None of the losses above is reliably in StreamState.Lost, and a rebuild
// can bring acked (deleted) messages back, so the stream's counts cannot
// tell either. Open compares the stream with the relay's own record of the
// sequences it acknowledged and no worker acked (record.go), and logs an
// ERROR naming the store directory, how many were lost and their sequences,
// and counts them (LostOnOpen, relay_stream_recovery_lost_total);
// TestStartupLossReported pins it for blocks cut short, cut to zero and
// removed.
//
// trouble receives when the server logs a store write error, so the store
// watch (storewatch.go) need not wait for its next tick.
func startEmbedded(ctx context.Context, cfg Config, log *slog.Logger) (*server.Server, <-chan struct{}, error) {
	sync, err := parseSync(cfg.Sync)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(cfg.StoreDir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("embedded nats-server: store dir: %w", err)
	}
	opts := &server.Options{
		ServerName: "relay-embedded",
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		// "always" is the group fsync barrier of syncer.go on top of the
		// default interval, unless a benchmark asks for nats's own.
		SyncAlways:   sync.always && cfg.nativeSyncAlways,
		SyncInterval: sync.interval, // 0 = server default (2m)
		MaxPayload:   embeddedMaxPayload,
		MaxPending:   embeddedMaxPending,
		NoSigs:       true, // signals belong to cmd/relay
		Host:         "127.0.0.1",
		Port:         server.RANDOM_PORT,
		DontListen:   cfg.Listen == "",
	}
	if cfg.Listen != "" {
		if opts.Host, opts.Port, err = splitListen(cfg.Listen); err != nil {
			return nil, nil, err
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	logger := &serverLogger{log: log.With("component", "nats-server"), fatal: make(chan string, 1), trouble: make(chan struct{}, 1)}
	s.SetLoggerV2(logger, false, false, false)

	// Start blocks while JetStream recovers the store, which can take long on
	// a big store, so it runs aside and we wait for it within ctx.
	started := make(chan struct{})
	go func() {
		s.Start()
		close(started)
	}()
	select {
	case <-started:
	case <-ctx.Done():
		// Shutdown racing a Start in progress is allowed; do not wait for it.
		go s.Shutdown()
		return nil, nil, fmt.Errorf("embedded nats-server: not started (store recovery of %s still running?): %w", cfg.StoreDir, ctx.Err())
	}
	select {
	case msg := <-logger.fatal:
		s.Shutdown()
		return nil, nil, fmt.Errorf("embedded nats-server: %s", msg)
	default:
	}
	if !s.ReadyForConnections(time.Until(deadlineOr(ctx, time.Now().Add(DefaultStartTimeout)))) {
		s.Shutdown()
		return nil, nil, fmt.Errorf("embedded nats-server: not ready for connections (listen %q)", cfg.Listen)
	}
	if !s.JetStreamEnabled() {
		s.Shutdown()
		return nil, nil, errors.New("embedded nats-server: started without JetStream (see its errors above)")
	}
	if cfg.Listen != "" {
		log.Info("embedded nats-server listening", "url", s.ClientURL())
	}
	return s, logger.trouble, nil
}

// serverLogger routes nats-server's log to slog. Notices (the start-up
// banner, per-stream recovery lines) go to debug: the relay logs one summary
// line per stream itself. Fatal start-up errors are also handed to
// startEmbedded, because with a custom logger nats-server does not exit, it
// just stops starting.
type serverLogger struct {
	log     *slog.Logger
	fatal   chan string
	trouble chan struct{} // capacity 1: "a store write failed" (storewatch.go)
}

func (l *serverLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Tracef(string, ...any)           {} // traces carry payloads; never logged
func (l *serverLogger) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	if strings.Contains(msg, "write error") || strings.Contains(msg, "will be DISABLED") || strings.Contains(msg, "no space left") {
		select {
		case l.trouble <- struct{}{}:
		default:
		}
	}
}

func (l *serverLogger) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(msg, "Maximum payloads over") {
		// We raise max_payload on purpose (big envelopes must fit).
		l.log.Debug(msg)
		return
	}
	l.log.Warn(msg)
}

func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg, "fatal", true)
	select {
	case l.fatal <- msg:
	default:
	}
}

// storeScan is what an embedded store held for our stream before start-up.
type storeScan struct {
	dir        string // the stream's directory in the store
	topDir     string // the highest directory whose entries must be fsynced once (see topCreated)
	blocks     int    // message block files (msgs/*.blk)
	blockBytes int64  // their total size
}

// scanStore looks at the stream's message blocks on disk before the server
// starts, so declareStream can tell "new store" from "store the server could
// not load". The layout (<store>/jetstream/$G/streams/<stream>/msgs/N.blk) is
// nats-server's; $G is the global account the embedded server uses.
func scanStore(storeDir, stream string) (storeScan, error) {
	sc := storeScan{
		dir: filepath.Join(storeDir, server.JetStreamStoreDir, server.DEFAULT_GLOBAL_ACCOUNT, "streams", stream),
		// Before start-up creates anything: the store directory's parent
		// (the config directory), or higher when start-up creates more.
		topDir: topCreated(storeDir),
	}
	ents, err := os.ReadDir(filepath.Join(sc.dir, "msgs"))
	if errors.Is(err, fs.ErrNotExist) {
		return sc, nil
	}
	if err != nil {
		return sc, fmt.Errorf("scan store: %w", err)
	}
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".blk") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return sc, fmt.Errorf("scan store: %w", err)
		}
		sc.blocks++
		sc.blockBytes += fi.Size()
	}
	return sc, nil
}

// checkRecovered fails when the store had message blocks but the loaded
// stream has no sequence at all: the server read nothing of a stream that had
// data. (A stream whose messages were all acked keeps its last sequence, so
// this does not fire for a drained stream.)
func checkRecovered(before storeScan, info *jetstream.StreamInfo) error {
	if before.blockBytes > 0 && info.State.LastSeq == 0 && info.State.Msgs == 0 {
		return fmt.Errorf("store %s holds %d bytes in %d message blocks, but stream %s loaded empty with no sequence; "+
			"refusing to start empty — move %s aside to start empty", before.dir, before.blockBytes, before.blocks, info.Config.Name, before.dir)
	}
	return nil
}
