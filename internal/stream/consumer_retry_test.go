package stream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A worker that starts while its JetStream API does not answer (a cluster
// electing the consumer's leader after a node died, a server restarting)
// waits for it instead of failing: Consumer retries until the server is
// back. The server here is away for longer than one API request's timeout
// (5 s), so a single attempt fails; the e2e cluster test saw exactly that
// ("consumer relay-worker on RELAY_ENVELOPES: context deadline exceeded"),
// and the restarted worker exited.
func TestConsumerWaitsForTheAPI(t *testing.T) {
	store := t.TempDir()
	s := serverAt(t, server.RANDOM_PORT, store)
	port := serverPort(s)
	start := func() *server.Server { return serverAt(t, port, store) }
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	c, err := Open(ctxT(t, 10*time.Second), Config{URL: url, AckWait: 2 * time.Second, FetchWait: 300 * time.Millisecond}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	s.Shutdown()
	s.WaitForShutdown()
	retries := consumerDeclareRetries.Get()
	done := make(chan error, 1)
	go func() {
		// No deadline, as the worker's run context: each API request then
		// gets the library's own 5 s timeout.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, err := c.Consumer(ctx, "relay-worker")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Consumer returned while the server was down: %v", err)
	case <-time.After(6 * time.Second):
	}
	s = start()
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Consumer after the server came back: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Consumer did not return within 60 s of the server coming back")
	}
	if consumerDeclareRetries.Get() == retries {
		t.Error("relay_stream_consumer_declare_retries_total did not grow: the first attempt was not the one that failed")
	}
}

// A refusal is not retried: only an API that did not answer is.
func TestConsumerAPIUnanswered(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{fmt.Errorf("look up: %w: %w", ErrUnavailable, nats.ErrTimeout), true},
		{nats.ErrNoResponders, true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream cluster not available"}, true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10012, Description: "consumer config invalid"}, false},
		{errors.New("existing consumer has settings that break the relay's guarantees"), false},
		{context.Canceled, false},
	}
	for _, tc := range tests {
		if got := apiUnanswered(tc.err); got != tc.want {
			t.Errorf("apiUnanswered(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// Open waits for the stream lookup while the server has no JetStream yet
// (a node restarting, a cluster re-forming) instead of exiting: here the
// server first runs without JetStream, then comes back with it on the same
// port.
func TestStreamLookupWaitsForTheAPI(t *testing.T) {
	s := serverAt(t, server.RANDOM_PORT, "") // no JetStream
	port := serverPort(s)
	retries := streamLookupRetries.Get()
	done := make(chan error, 1)
	var c *Conn
	go func() {
		var err error
		c, err = Open(ctxT(t, 60*time.Second), Config{URL: fmt.Sprintf("nats://127.0.0.1:%d", port), AckWait: 2 * time.Second, FetchWait: 300 * time.Millisecond}, testLog(t))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Open returned while the server had no JetStream: %v", err)
	case <-time.After(3 * time.Second):
	}
	s.Shutdown()
	s.WaitForShutdown()
	s = serverAt(t, port, t.TempDir())
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Open after JetStream came: %v", err)
		}
		defer c.Close()
	case <-time.After(50 * time.Second):
		t.Fatal("Open did not return within 50 s of JetStream coming")
	}
	if streamLookupRetries.Get() == retries {
		t.Error("relay_stream_lookup_retries_total did not grow: the first lookup was not the one that failed")
	}
}

// serverPort is the client port s listens on, to start its successor on.
func serverPort(s *server.Server) int { return s.Addr().(*net.TCPAddr).Port }

// serverAt starts a nats-server standing in for someone else's on port
// (server.RANDOM_PORT for any), with JetStream in store, or without
// JetStream when store is "". The caller shuts it down.
func serverAt(t *testing.T, port int, store string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		ServerName: "external", JetStream: store != "", StoreDir: store,
		Host: "127.0.0.1", Port: port, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return s
}
