package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/fakesentry"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func loadConfig(t *testing.T, yml string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// jetstream.listen opens the embedded server to other processes: an
// ingest-only relay holds the stream, a worker-only relay with jetstream.url
// pointing at it forwards what the first one accepted. Without the key
// wired, the second relay finds nothing listening and never starts.
func TestRunWorkerReachesEmbeddedStreamThroughListen(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	natsPort, ingestPort := freePort(t), freePort(t)
	ingestCfg := loadConfig(t, fmt.Sprintf("relay:\n  mode: proxy\n  upstream: %s\n  port: %d\nworker:\n  enabled: false\njetstream:\n  listen: 127.0.0.1:%d\nlimits:\n  shutdown_timeout: 5s\n",
		up.URL(), ingestPort, natsPort))
	workerCfg := loadConfig(t, fmt.Sprintf("relay:\n  mode: proxy\n  upstream: %s\n  port: 0\ningest:\n  enabled: false\njetstream:\n  url: nats://127.0.0.1:%d\nlimits:\n  shutdown_timeout: 5s\n",
		up.URL(), natsPort))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// Two contexts: the worker stops first, as an orchestrator drains a
	// pool before it removes the process that holds the stream.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	workerCtx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	ingestDone, workerDone := make(chan error, 1), make(chan error, 1)
	go func() { ingestDone <- Run(ctx, ingestCfg, nil, log) }()

	eventID := "0123456789abcdef0123456789abcdef"
	body := `{"event_id":"` + eventID + `"}` + "\n" + `{"type":"event","length":2}` + "\n{}\n"
	url := fmt.Sprintf("http://127.0.0.1:%d/api/42/envelope/", ingestPort)
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("X-Sentry-Auth", "Sentry sentry_key=0123456789abcdef0123456789abcdef, sentry_version=7")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ingest relay never accepted the envelope (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	go func() { workerDone <- Run(workerCtx, workerCfg, nil, log) }()
	waitCtx, waitCancel := context.WithTimeout(ctx, 30*time.Second)
	defer waitCancel()
	if _, err := up.WaitFor(waitCtx, 1); err != nil {
		select {
		case werr := <-workerDone:
			t.Fatalf("the worker relay stopped (%v): %v", werr, err)
		default:
			t.Fatalf("the worker relay delivered nothing: %v", err)
		}
	}
	if ids := up.EventIDs(); ids[eventID] != 1 {
		t.Fatalf("upstream got %v, want the envelope the ingest relay accepted", ids)
	}
	for _, step := range []struct {
		stop func()
		done chan error
	}{{stopWorker, workerDone}, {cancel, ingestDone}} {
		step.stop()
		select {
		case err := <-step.done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
}
