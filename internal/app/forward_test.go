package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/fakesentry"
)

// runProxyRelay runs a proxy-mode relay (config extra appended) against up
// until the test ends, and returns its base URL once it serves.
func runProxyRelay(t *testing.T, upstreamURL, extra string) string {
	t.Helper()
	return runRelay(t, proxyConfig(t, t.TempDir(), upstreamURL, extra))
}

// proxyConfig writes and loads a proxy-mode config in dir (extra appended:
// its relay keys may continue the relay section).
func proxyConfig(t *testing.T, dir, upstreamURL, extra string) *config.Config {
	t.Helper()
	port := freePort(t)
	yml := fmt.Sprintf("limits:\n  shutdown_timeout: 3s\nrelay:\n  mode: proxy\n  upstream: %s\n  host: 127.0.0.1\n  port: %d\n%s", upstreamURL, port, extra)
	return loadConfigIn(t, dir, yml)
}

// runRelay runs cfg until the test ends and returns the plain HTTP base URL
// once it serves.
func runRelay(t *testing.T, cfg *config.Config) string {
	t.Helper()
	port := cfg.Relay.Port
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitStatus(t, "live", func() int {
		res, err := http.Get(base + "/api/relay/healthcheck/live/")
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}, http.StatusOK)
	return base
}

// The running relay sends other /api/ requests to relay.upstream unless
// http.forward is off.
func TestRunForwardsOtherAPIRequests(t *testing.T) {
	for _, tc := range []struct {
		name    string
		extra   string
		forward bool
	}{
		{name: "default on", forward: true},
		{name: "off", extra: "http:\n  forward: false\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := fakesentry.New(fakesentry.Options{})
			t.Cleanup(up.Close)
			base := runProxyRelay(t, up.URL(), tc.extra)

			const path = "/api/0/organizations/acme/releases/"
			res, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusNotFound { // fakesentry has no release API; the relay has no such route
				t.Fatalf("status %d, want 404", res.StatusCode)
			}
			var seen bool
			for _, r := range up.Requests() {
				seen = seen || strings.HasPrefix(r.Path, path)
			}
			if seen != tc.forward {
				t.Errorf("upstream saw the request: %v, want %v", seen, tc.forward)
			}
		})
	}
}
