package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
)

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
	postUntilAccepted(t, ingestPort, eventID)

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
