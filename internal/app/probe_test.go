package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/stream"
)

type fakeStreamReady struct{ err error }

func (f fakeStreamReady) Ready(context.Context) error { return f.err }

// Readiness of a worker-only process: stream reachable and worker running;
// a full stream is no reason (the worker is what empties it); a shutdown is.
func TestWorkerProbeReadiness(t *testing.T) {
	for _, tt := range []struct {
		name              string
		streamErr         error
		running, draining bool
		ready             int
	}{
		{"ready", nil, true, false, http.StatusOK},
		{"stream full", fmt.Errorf("ready: %w", stream.ErrFull), true, false, http.StatusOK},
		{"stream unreachable", fmt.Errorf("ready: %w", stream.ErrUnavailable), true, false, http.StatusServiceUnavailable},
		{"worker not running", nil, false, false, http.StatusServiceUnavailable},
		{"shutting down", nil, true, true, http.StatusServiceUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var running atomic.Bool
			running.Store(tt.running)
			p := &workerProbe{stream: fakeStreamReady{tt.streamErr}, running: &running}
			p.draining.Store(tt.draining)
			for path, want := range map[string]int{
				"/api/relay/healthcheck/ready/": tt.ready,
				"/api/relay/healthcheck/live/":  http.StatusOK,
				"/metrics":                      http.StatusOK,
				"/api/42/envelope/":             http.StatusNotFound,
			} {
				rec := httptest.NewRecorder()
				p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				if rec.Code != want {
					t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
				}
			}
			rec := httptest.NewRecorder()
			p.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/relay/healthcheck/live/", nil))
			if rec.Code != http.StatusMethodNotAllowed {
				t.Errorf("POST live: %d", rec.Code)
			}
		})
	}
}

// A worker-only process (ingest.enabled false, what --role worker sets)
// listens on relay.port for probes and scrapes, and takes no envelopes.
func TestRunWorkerRoleServesProbesAndMetrics(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	cfg := proxyConfig(t, t.TempDir(), up.URL(), "")
	if err := cfg.SetRole("worker", "--role"); err != nil {
		t.Fatal(err)
	}
	base := runRelay(t, cfg)

	get := func(path string) (int, string) {
		res, err := http.Get(base + path)
		if err != nil {
			return 0, ""
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	waitStatus(t, "ready", func() int { c, _ := get("/api/relay/healthcheck/ready/"); return c }, http.StatusOK)
	code, body := get("/metrics")
	if code != http.StatusOK || !strings.Contains(body, "relay_stream_recovery_lost_total") {
		t.Fatalf("/metrics: %d %.200q", code, body)
	}
	res, err := http.Post(base+"/api/42/envelope/", "application/x-sentry-envelope", strings.NewReader("{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("an envelope sent to a worker-only process: %d, want 404", res.StatusCode)
	}
}
