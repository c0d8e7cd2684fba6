package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/relayhq/relay/internal/status"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/telemetry"
)

// workerProbe is the HTTP side of a worker-only process (--role worker): it
// has no SDK endpoints, but an orchestrator must still be able to probe it
// and Prometheus to scrape it, so it serves on relay.host:relay.port
//
//   - /api/relay/healthcheck/live/: 200 while the process serves (as ingest);
//   - /api/relay/healthcheck/ready/: 200 while the stream is reachable and
//     the worker runs; 503 otherwise and from the start of a shutdown;
//   - /metrics: the process's metrics in the Prometheus text format, the
//     same handler ingest serves;
//   - /relay/status and its JSON view, once the status page is set up;
//
// and 404 for everything else, so an SDK pointed at a worker by mistake is
// told so instead of being answered as if its envelope were stored.
type workerProbe struct {
	stream   streamReady
	running  *atomic.Bool // the worker's Run has started and not returned
	draining atomic.Bool  // shutdown started: not ready any more
	status   atomic.Pointer[status.Handler]

	srv  *http.Server
	done chan struct{} // closed when Serve returned
	err  error         // Serve's error, read after done
}

// streamReady is what the probe needs of the stream.
type streamReady interface {
	Ready(ctx context.Context) error
}

var _ streamReady = (*stream.Conn)(nil)

// probeReadyTimeout bounds one readiness check of the stream.
const probeReadyTimeout = 2 * time.Second

// ready reports why the worker process is not ready, or nil. A full stream
// does not make a worker unready: it is the worker that empties it.
func (p *workerProbe) ready(ctx context.Context) error {
	if p.draining.Load() {
		return errors.New("shutting down")
	}
	if !p.running.Load() {
		return errors.New("worker not running")
	}
	ctx, cancel := context.WithTimeout(ctx, probeReadyTimeout)
	defer cancel()
	if err := p.stream.Ready(ctx); err != nil && !errors.Is(err, stream.ErrFull) {
		return err
	}
	return nil
}

var (
	bodyHealthy   = []byte(`{"is_healthy":true}`)
	bodyUnhealthy = []byte(`{"is_healthy":false}`)
)

// setStatus serves the status page from here on; it is built after the
// probe, which must answer from the start.
func (p *workerProbe) setStatus(h *status.Handler) { p.status.Store(h) }

func (p *workerProbe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := p.status.Load(); h != nil && status.Serves(r.URL.Path) {
		h.ServeHTTP(w, r)
		return
	}
	switch r.URL.Path {
	case "/api/relay/healthcheck/live/", "/api/relay/healthcheck/ready/", "/metrics":
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/metrics" {
		telemetry.Handler().ServeHTTP(w, r)
		return
	}
	healthy := true
	if r.URL.Path == "/api/relay/healthcheck/ready/" {
		healthy = p.ready(r.Context()) == nil
	}
	w.Header().Set("Content-Type", "application/json")
	if !healthy {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write(bodyUnhealthy)
		return
	}
	_, _ = w.Write(bodyHealthy)
}

// startWorkerProbe listens on relay.host:relay.port and serves the probe
// until stop. It owns its serving goroutine.
func startWorkerProbe(addr string, st streamReady, running *atomic.Bool, log *slog.Logger) (*workerProbe, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("worker: listen on %s: %w", addr, err)
	}
	p := &workerProbe{stream: st, running: running, done: make(chan struct{})}
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	log.Info("listening for health checks and metrics (worker only: no SDK endpoints)", "addr", "http://"+ln.Addr().String())
	go func() {
		defer close(p.done)
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.err = fmt.Errorf("worker: serve health checks: %w", err)
		}
	}()
	return p, nil
}

// stop shuts the probe down (probes in flight get a second) and waits for
// its goroutine. It is the last thing a worker-only process stops, so that
// liveness holds until the end.
func (p *workerProbe) stop(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	if err != nil {
		_ = p.srv.Close()
	}
	<-p.done
	if err = errors.Join(err, p.err); err != nil {
		log.Warn("worker: health check server", "err", err)
	}
}
