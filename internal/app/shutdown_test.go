package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/worker"
)

// stuckStage stands for a worker stuck where no context reaches it (a bbolt
// fsync on a hung disk, a stage that never returns): it ignores ctx and
// blocks until release is closed.
type stuckStage struct {
	entered chan struct{}
	release chan struct{}
}

func (s *stuckStage) Name() string { return "stuck" }

func (s *stuckStage) Process(context.Context, *stream.Message) (worker.Verdict, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.release
	return worker.Keep(), nil
}

// Shutdown is bounded by limits.shutdown_timeout even when a worker never
// comes back: Run returns ErrShutdownTimeout instead of waiting forever.
func TestRunShutdownBoundedWithAStuckWorker(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)

	stage := &stuckStage{entered: make(chan struct{}, 1), release: make(chan struct{})}
	testStages = []worker.Stage{stage}
	t.Cleanup(func() {
		close(stage.release) // let the abandoned goroutine finish
		testStages = nil
	})

	port := freePort(t)
	cfg := loadConfig(t, fmt.Sprintf("relay:\n  mode: proxy\n  upstream: %s\n  host: 127.0.0.1\n  port: %d\nlimits:\n  shutdown_timeout: 1s\n", up.URL(), port))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil))) }()

	// One envelope reaches the stuck stage.
	postUntilAccepted(t, port, "0123456789abcdef0123456789abcdef")
	select {
	case <-stage.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the envelope never reached the worker's stage")
	}

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, ErrShutdownTimeout) {
			t.Fatalf("Run returned %v, want ErrShutdownTimeout", err)
		}
		// The bound is 1 s; anything near it passes, a hang does not.
		if took := time.Since(start); took > 15*time.Second {
			t.Fatalf("shutdown took %s with shutdown_timeout 1s", took)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return: shutdown is not bounded by limits.shutdown_timeout")
	}
}

// A connection that never sent a byte does not hold up a graceful stop:
// http.Server.Shutdown alone waits for such a connection until it is 5 s
// old, which used up a 3 s shutdown_timeout and left the workers (and the
// spool hand-back) no time — e2e TestHandBackKilled failed on exactly that.
// Run must stop cleanly (nil, not ErrShutdownTimeout), the connection
// closed.
func TestRunShutdownClosesUnusedConnections(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	port := freePort(t)
	cfg := loadConfig(t, fmt.Sprintf("relay:\n  mode: proxy\n  upstream: %s\n  host: 127.0.0.1\n  port: %d\nlimits:\n  shutdown_timeout: 3s\n", up.URL(), port))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil))) }()

	ready := fmt.Sprintf("http://127.0.0.1:%d/api/relay/healthcheck/ready/", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay never became ready (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	idle, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	time.Sleep(100 * time.Millisecond) // accepted and tracked by the server

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v, want a clean stop", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := idle.Read(make([]byte, 1)); err == nil {
		t.Fatalf("the unused connection is still open (read %d bytes)", n)
	}
}
