// Package app wires the relay's stages into one running process:
//
//	ingest (HTTP) ──publish──▶ JetStream ──fetch──▶ worker ──▶ upstream
//	                                                   └──▶ spool ──drain──▶ upstream
//
// It holds no protocol logic; each stage lives in its own package. Ingest and
// worker can be switched on and off independently (ingest.enabled,
// worker.enabled), so the same binary runs either half against an external
// NATS cluster.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/ingest"
	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/credentials"
	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/project"
	"github.com/relayhq/relay/internal/status"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/telemetry"
	"github.com/relayhq/relay/internal/upstream"
	"github.com/relayhq/relay/scrub"
	"github.com/relayhq/relay/spool"
	"github.com/relayhq/relay/worker"
)

// Version is the relay's version, set at build time with
// -ldflags "-X github.com/relayhq/relay/internal/app.Version=…".
var Version = "0.1.0-dev"

// consumerName is the durable JetStream consumer every worker (goroutine or
// process) shares; the stream hands each message to one of them.
const consumerName = "relay-worker"

// Run starts the relay described by cfg and blocks until ctx is cancelled
// (SIGTERM/SIGINT) or a stage fails. Shutdown follows the hand-offs of the
// durability contract, bounded as a whole by limits.shutdown_timeout:
//
//  1. ingest stops accepting (503) and waits for in-flight publishes, so every
//     200 it gave is backed by a PubAck;
//  2. workers stop; messages they had not acked are redelivered later;
//  3. with spool.hand_back, what the spool holds is published back to the
//     stream, each record deleted after its PubAck (handback.go);
//  4. the spool and the stream are closed, flushing what they hold.
func Run(ctx context.Context, cfg *config.Config, creds *credentials.Credentials, log *slog.Logger) error {
	if !cfg.Ingest.Enabled && !cfg.Worker.Enabled {
		return errors.New("neither ingest nor worker is enabled: nothing to run")
	}
	rl := newReloader(cfg, log) // SIGHUP (reload.go)
	defer rl.stop()
	reg, regClient, err := newRegistration(cfg, creds, log) // managed mode only
	if err != nil {
		return err
	}
	if regClient != nil {
		defer regClient.Close()
	}

	projects, projectFiles, err := openProjects(cfg, log)
	if err != nil {
		return err
	}
	rl.files = projectFiles
	tunnel, err := newTunnelSetup(cfg, projects)
	if err != nil {
		return err
	}
	tlsCfg, err := serverTLS(cfg) // nil without relay.tls_port
	if err != nil {
		return err
	}

	sc, err := streamConfig(cfg)
	if err != nil {
		return err
	}
	st, err := stream.Open(ctx, sc, log)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	log.Info("jetstream ready", "role", cfg.Role(), "embedded", cfg.JetStream.Embedded(), "stream", st.StreamName(),
		"sync", syncLabel(cfg.JetStream.Sync), "client_url", st.ClientURL())
	defer registerSet(st.MetricsSet(consumerName))() // stream depth on /metrics
	var workerRunning atomic.Bool
	var probe *workerProbe // worker only: health checks and metrics on relay.port
	if !cfg.Ingest.Enabled {
		if probe, err = startWorkerProbe(cfg.ListenAddr(), st, &workerRunning, log); err != nil {
			closeStream(st, cfg.Limits.ShutdownTimeout, log)
			return err
		}
		defer probe.stop(log)
	}

	// Everything below is stopped before the stream is closed.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	fetch, err := newProjectFetch(runCtx, cfg, projects, regClient, reg, st, log) // managed mode only
	if err != nil {
		closeStream(st, cfg.Limits.ShutdownTimeout, log)
		return fmt.Errorf("project configs: %w", err)
	}

	limits := openRateLimits(runCtx, st, log) // nil: not shared, not enforced at ingest

	var (
		wg   sync.WaitGroup
		errs = make(chan error, 4) // one per sender: worker, ingest, ingest TLS, project files
		sp   *spool.Spool
		srv  *http.Server
		// the server's connections that have sent nothing yet (conns.go)
		unused = newUnusedConns()
		ing    *ingest.Server
		wk     *worker.Worker // nil without a worker: for the status page
	)

	if cfg.Worker.Enabled {
		sp, err = openSpool(cfg, log)
		if err != nil {
			closeStream(st, cfg.Limits.ShutdownTimeout, log)
			return err
		}
		var gate authWaiter // nil in proxy and static modes: no registration to wait for
		if reg != nil {
			gate = reg
		}
		w, err := newWorker(runCtx, cfg, creds, st, sp, gate, projects, rl, log)
		if err != nil {
			closeSpool(sp, log)
			closeStream(st, cfg.Limits.ShutdownTimeout, log)
			return err
		}
		if limits != nil {
			w.ShareRateLimits(limits)
		}
		wk = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			workerRunning.Store(true)
			defer workerRunning.Store(false)
			if err := w.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("worker: %w", err)
			}
		}()
	}

	if reg != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = reg.Run(runCtx) // returns nil: on shutdown, or after a denial it has logged
		}()
	}
	if fetch != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = fetch.Run(runCtx) // returns runCtx's error, on shutdown only
		}()
	}

	wg.Add(1)
	go func() {
		defer wg.Done()
		rl.Run(runCtx) // returns on shutdown
	}()

	// Project files are re-read until shutdown, so a file added or changed
	// while the relay runs takes effect without a restart.
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Returns when runCtx ends; scan errors are logged inside.
		if err := projectFiles.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			errs <- err
		}
	}()

	statusPage := startStatus(runCtx, &wg, cfg, st, sp, wk, reg, log) // status.go
	if probe != nil {
		probe.setStatus(statusPage)
	}

	if cfg.Ingest.Enabled {
		ic := ingestConfig(cfg, st)
		ic.Projects = projects
		ic.RateLimits = ingestLimits{shared: limits, projects: projects}
		ing = ingest.New(ic, publisher(cfg, st), readiness(cfg, st, reg), log.With("component", "ingest"))
		err := tunnel.enable(ing, cfg, log)
		if err == nil {
			err = enableForward(ing, cfg, log)
		}
		var ln, tlsLn net.Listener
		if err == nil {
			if ln, err = net.Listen("tcp", cfg.ListenAddr()); err != nil {
				err = fmt.Errorf("ingest: listen on %s: %w", cfg.ListenAddr(), err)
			}
		}
		if err == nil && tlsCfg != nil {
			if tlsLn, err = listenTLS(cfg); err != nil {
				_ = ln.Close()
			}
		}
		if err != nil {
			cancel()
			wg.Wait()
			closeSpool(sp, log)
			closeStream(st, cfg.Limits.ShutdownTimeout, log)
			return err
		}
		// GET /metrics is served beside the ingest routes.
		srv = &http.Server{
			Handler:           status.Mount(statusPage, telemetry.Mount(ing.Handler())),
			ReadHeaderTimeout: 5 * time.Second, // Relay: request headers within 5 s
			IdleTimeout:       5 * time.Second, // Relay: limits.keepalive_timeout
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
			TLSConfig:         tlsCfg,
			ConnState:         unused.track,
		}
		if tlsLn != nil {
			log.Info("listening", "addr", "https://"+tlsLn.Addr().String())
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := serveTLS(srv, tlsLn); err != nil {
					errs <- err
				}
			}()
		}
		log.Info("listening", "addr", "http://"+ln.Addr().String(), "dsn_host", ln.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("ingest: serve: %w", err)
			}
		}()
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", cfg.Limits.ShutdownTimeout)
	case runErr = <-errs:
		log.Error("stage failed, shutting down", "err", runErr)
	}

	deadline := time.Now().Add(cfg.Limits.ShutdownTimeout)
	shutCtx, shutCancel := context.WithDeadline(context.Background(), deadline)
	defer shutCancel()
	if probe != nil {
		probe.draining.Store(true)
	}
	if srv != nil {
		// New requests get 503 from here on; Shutdown waits for in-flight
		// ones, whose publishes are bounded by the ingest publish timeout.
		ing.StartDraining()
		// Connections that never sent a request are closed while Shutdown
		// waits, rather than waited for (conns.go); repeatedly, since one
		// accepted just as the listener closed is tracked a moment later.
		stopSweep := make(chan struct{})
		swept := make(chan struct{})
		go func() {
			defer close(swept)
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				unused.closeAll()
				select {
				case <-stopSweep:
					return
				case <-t.C:
				}
			}
		}()
		err := srv.Shutdown(shutCtx)
		close(stopSweep)
		<-swept
		if err != nil {
			log.Warn("ingest: in-flight requests outlived the shutdown timeout", "err", err)
			_ = srv.Close()
		}
	}
	cancel() // workers: stop fetching, nak what they hold
	// Every step below is bounded by the one deadline. A worker stuck where
	// no context reaches (a bbolt fsync on a hung disk, a stage that does not
	// return) must not keep the process alive past limits.shutdown_timeout:
	// an orchestrator would kill it anyway, and exiting is safe — whatever
	// such a worker holds is not acked, so JetStream redelivers it after the
	// restart, and a spool commit that did not finish was never promised.
	if !waitUntil(deadline, wg.Wait) {
		log.Error("shutdown timeout: workers still busy (a stuck disk or stage?); exiting without waiting for them — what they hold is not acked and will be redelivered",
			"timeout", cfg.Limits.ShutdownTimeout)
		return errors.Join(runErr, ErrShutdownTimeout)
	}
	if sp != nil && cfg.HandBackOnShutdown() {
		handBackSpool(deadline, st, sp, log)
	}
	if sp != nil && !waitUntil(deadline, func() { closeSpool(sp, log) }) {
		log.Error("shutdown timeout: the spool did not close in time (a stuck disk?); exiting — committed records are on disk, the rest was never acknowledged",
			"timeout", cfg.Limits.ShutdownTimeout)
		return errors.Join(runErr, ErrShutdownTimeout)
	}
	closeStream(st, time.Until(deadline), log)
	log.Info("stopped")
	return runErr
}

// ErrShutdownTimeout is returned by Run when a part of the relay did not stop
// within limits.shutdown_timeout and was left behind; the caller should exit.
var ErrShutdownTimeout = errors.New("shutdown timed out")

// waitUntil runs fn and reports whether it returned before deadline. When it
// did not, fn's goroutine is left running: the caller is about to exit the
// process, which is the only owner that can stop something stuck where no
// context reaches.
func waitUntil(deadline time.Time, fn func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

func syncLabel(s string) string {
	if s == "" {
		return "default (2m)"
	}
	return s
}

func openSpool(cfg *config.Config, log *slog.Logger) (*spool.Spool, error) {
	sp, err := spool.Open(cfg.Spool.Path, spool.Options{
		MaxDiskSize:    cfg.Spool.MaxDiskSize.Bytes(),
		MaxBatch:       cfg.Spool.MaxBatch,
		MaxBuried:      cfg.Spool.MaxDeadCount,
		MaxBuriedBytes: cfg.Spool.MaxDeadSize.Bytes(),
		Logger:         log.With("component", "spool"),
	})
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	metrics.RegisterSet(sp.Metrics()) // unregistered by closeSpool
	st := sp.Stats()
	log.Info("spool ready", "path", cfg.Spool.Path, "records", st.Records, "buried", st.Buried)
	return sp, nil
}

func newWorker(ctx context.Context, cfg *config.Config, creds *credentials.Credentials, st *stream.Conn, sp *spool.Spool, reg authWaiter, projects *project.Registry, rl *reloader, log *slog.Logger) (*worker.Worker, error) {
	up, err := newUpstream(cfg, creds)
	if err != nil {
		return nil, err
	}
	cons, err := st.Consumer(ctx, consumerName)
	if err != nil {
		return nil, fmt.Errorf("jetstream consumer: %w", err)
	}
	stages, err := workerStages(cfg, projects, log)
	if err != nil {
		return nil, err
	}
	rl.attach(stages) // the relay-wide scrubber is replaced on SIGHUP
	stages = append(projectStages(cfg, projects, reg, log), stages...)
	stages = append(stages, testStages...)
	return worker.New(worker.Config{
		Concurrency:       cfg.Worker.Concurrency,
		RetryDelay:        cfg.HTTP.RetryDelay,
		MaxRetryInterval:  cfg.HTTP.MaxRetryInterval,
		OutageGracePeriod: cfg.HTTP.OutageGracePeriod,
		AckWait:           cfg.JetStream.AckWait,
		MaxEnvelopeDelay:  cfg.Spool.MaxEnvelopeDelay,
	}, cons, sender(up, reg), sp, log, stages...)
}

// testStages are appended to the worker's stages by tests in this package,
// to put the running relay into states no configuration reaches (a stage
// stuck where no context reaches it). Always empty in the relay.
var testStages []worker.Stage

// workerStages builds the worker's processing stages in data-path order:
// filter → scrub. Filtering goes first so that nothing is scrubbed only to be
// dropped. Both stages are always there: a project file with filter or
// scrubbing settings may appear while the relay runs, and for a key without
// settings either stage costs one lookup per message.
func workerStages(cfg *config.Config, projects *project.Registry, log *slog.Logger) ([]worker.Stage, error) {
	s, err := Scrubber(cfg)
	if err != nil {
		return nil, err
	}
	log.Info("worker stages", "filter", "from project files", "scrub_relay_wide", !s.Noop(), "scrub_project_rules", "from project files")
	return []worker.Stage{
		worker.NewFilterStage(projects, log.With("stage", "filter")),
		worker.NewScrubStage(s).WithProjects(projects),
	}, nil
}

// Scrubber compiles the relay-wide scrubber from the config's scrub section.
// `relay scrub` uses it too, so what it shows is what the worker forwards.
func Scrubber(cfg *config.Config) (*scrub.Scrubber, error) {
	s, err := cfg.CompileScrubber()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.File(), err)
	}
	return s, nil
}

// publisher is what ingest publishes through: the stream itself, or with
// jetstream.publish_group_max above 1 the group publish (ingest/group.go),
// which lets concurrent requests for one project share one publish.
func publisher(cfg *config.Config, st *stream.Conn) ingest.Publisher {
	if cfg.JetStream.PublishGroupMax <= 1 {
		return st
	}
	return ingest.NewGrouper(st, ingest.GroupConfig{MaxMembers: cfg.JetStream.PublishGroupMax})
}

// The config's limit on publish_group_max is a group's.
const (
	_ = uint(config.MaxPublishGroup - stream.MaxGroupMembers)
	_ = uint(stream.MaxGroupMembers - config.MaxPublishGroup)
)

func ingestConfig(cfg *config.Config, st *stream.Conn) ingest.Config {
	l := cfg.Limits
	return ingest.Config{
		MaxEnvelopeSize:   l.MaxEnvelopeSize.Bytes(),
		MaxEventSize:      l.MaxEventSize.Bytes(),
		MaxPublishPayload: st.MaxPayload(),
		// limits.max_concurrent_requests: enforced by ingest (admission.go).
		MaxConcurrentRequests: l.MaxConcurrentRequests,
		Limits: envelope.Limits{
			MaxEventSize:            l.MaxEventSize.Bytes(),
			MaxAttachmentSize:       l.MaxAttachmentSize.Bytes(),
			MaxAttachmentCount:      int64(l.MaxAttachmentCount),
			MaxAttachmentsSize:      l.MaxAttachmentsSize.Bytes(),
			MaxReplayCompressedSize: l.MaxReplayCompressedSize.Bytes(),
			MaxSessionsSize:         l.MaxSessionsSize.Bytes(),
			MaxSessionCount:         int64(l.MaxSessionCount),
			MaxClientReportsSize:    l.MaxClientReportsSize.Bytes(),
			MaxClientReportsCount:   int64(l.MaxClientReportsCount),
			MaxProfileSize:          l.MaxProfileSize.Bytes(),
			MaxCheckInSize:          l.MaxCheckInSize.Bytes(),
			MaxStatsdSize:           l.MaxStatsdSize.Bytes(),
			MaxMetricBucketsSize:    l.MaxMetricBucketsSize.Bytes(),
			MaxLogSize:              l.MaxLogSize.Bytes(),
			MaxTraceMetricSize:      l.MaxTraceMetricSize.Bytes(),
			MaxSpanSize:             l.MaxSpanSize.Bytes(),
			MaxStandaloneSpanCount:  int64(l.MaxStandaloneSpanCount),
			MaxContainerSize:        l.MaxContainerSize.Bytes(),
		},
		Version: Version,
	}
}

func closeSpool(sp *spool.Spool, log *slog.Logger) {
	if sp == nil {
		return
	}
	metrics.UnregisterSet(sp.Metrics(), true)
	if err := sp.Close(); err != nil {
		log.Error("spool: close", "err", err)
	}
}

func closeStream(st *stream.Conn, within time.Duration, log *slog.Logger) {
	if within < time.Second {
		within = time.Second // always give the embedded server a moment to flush
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := st.CloseContext(ctx); err != nil {
		log.Error("jetstream: close", "err", err)
	}
}

// sender is the worker's Sender: up itself, or in managed mode up behind
// the registration gate (managed.go).
func sender(up *upstream.Client, reg authWaiter) worker.Sender {
	if reg == nil {
		return up
	}
	return gatedSender{Sender: up, auth: reg}
}
