package ingest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/stream"
)

// openStream starts an embedded JetStream in a temporary directory.
func openStream(t *testing.T) *stream.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := stream.Open(ctx, stream.Config{StoreDir: t.TempDir()}, testLogger(t))
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// fetchAll drains the stream through a consumer until it has been quiet for
// a moment, acking everything.
func fetchAll(t *testing.T, conn *stream.Conn, want int) []stream.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := conn.Consumer(ctx, "ingest-test")
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	var out []stream.Message
	for len(out) < want {
		ds, err := cons.Fetch(ctx, want-len(out))
		if err != nil {
			t.Fatalf("fetch after %d of %d: %v", len(out), want, err)
		}
		for _, d := range ds {
			out = append(out, d.Msg)
			if err := d.Ack(ctx); err != nil {
				t.Fatalf("ack: %v", err)
			}
		}
	}
	// Nothing beyond what was expected.
	quiet, cancelQuiet := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelQuiet()
	if ds, err := cons.Fetch(quiet, 10); err == nil && len(ds) > 0 {
		t.Fatalf("stream holds %d more messages than expected; first envelope %q", len(ds), ds[0].Msg.Envelope)
	}
	return out
}

// TestJetStream runs ingest against a real embedded JetStream: every captured
// SDK request is acknowledged only after it is in the stream, and arrives
// there byte for byte; bad input leaves nothing in the stream; when the stream
// is gone the answer is 503 with Retry-After and readiness goes down.
func TestJetStream(t *testing.T) {
	conn := openStream(t)
	cfg := testConfig()
	cfg.MaxPublishPayload = conn.MaxPayload()
	s := New(cfg, conn, conn.Ready, testLogger(t))
	ts := startServer(t, s)

	if res := do(t, "GET", ts.URL+"/api/relay/healthcheck/ready/", nil, nil, false); res.status != 200 {
		t.Fatalf("ready: %d %s", res.status, res.body)
	}

	caps := loadCaptures(t)
	answers := make([][]byte, len(caps))
	for i, c := range caps {
		res := do(t, c.method, ts.URL+replayTarget(c), c.header, c.wire, c.chunked)
		if res.status != 200 {
			t.Fatalf("%s: %d %s", c.name, res.status, res.body)
		}
		answers[i] = res.body
	}
	// Bad input in between: none of it may reach the stream.
	addr := ts.Listener.Addr().String()
	for _, bad := range []struct {
		header http.Header
		body   []byte
	}{
		{hdr("X-Sentry-Auth", testAuth), []byte("{}\n{\"type\":\"event\",\"length\":100}\n{}\n")},
		{hdr("X-Sentry-Auth", testAuth, "Content-Encoding", "gzip"), gzipBomb()},
		{hdr("X-Sentry-Auth", "Sentry sentry_key="+testKey+", sentry_version=8"), validEnvelope},
		{nil, validEnvelope},
	} {
		if res := doRaw(t, addr, "POST", "/api/42/envelope/", bad.header, bad.body, false); res.status == 200 {
			t.Fatalf("bad input accepted: %s", res.body)
		}
	}

	msgs := fetchAll(t, conn, len(caps))
	for i, c := range caps {
		t.Run(c.name, func(t *testing.T) { assertCarried(t, c, msgs[i], answers[i]) })
	}

	// The stream goes away: 503 + Retry-After, never 200; not ready.
	if err := conn.Close(); err != nil {
		t.Fatalf("close stream: %v", err)
	}
	res := do(t, "POST", ts.URL+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth), validEnvelope, false)
	if res.status != 503 || res.header.Get("Retry-After") == "" || res.errorBody(t).Detail != "failed to queue envelope" {
		t.Fatalf("publish to a closed stream: %d %q %s", res.status, res.header.Get("Retry-After"), res.body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		res := do(t, "GET", ts.URL+"/api/relay/healthcheck/ready/", nil, nil, false)
		if res.status == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ready after the stream closed: %d %s", res.status, res.body)
		}
		time.Sleep(100 * time.Millisecond) // readiness is cached for a second
	}
}
