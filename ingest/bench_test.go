package ingest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/testfixture"
)

// Benchmarks: the ingest handler next to a bare net/http handler that only
// reads the body and answers 200, both over real HTTP on 127.0.0.1 with 64
// concurrent connections, so one run shows the ratio (bare ns/op ÷ handler
// ns/op). Client and server share the machine; allocs/op include the client.
//
//	go test ./ingest -run '^$' -bench 'Handler' -benchmem
//
// The publisher is in memory (counts messages), so this measures ingest's own
// cost; the JetStream cost is the stream package's and the load command's.

// benchConns is the number of concurrent client connections.
const benchConns = 64

// discardPublisher acknowledges at once (the in-memory stand-in for JetStream).
type discardPublisher struct{ n atomic.Int64 }

func (p *discardPublisher) Publish(_ context.Context, m *stream.Message, _ string) error {
	if len(m.Envelope) == 0 {
		panic("empty envelope published")
	}
	p.n.Add(1)
	return nil
}

// bareHandler is the baseline: read the body, answer 200.
var bareHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusOK)
})

func benchmarkLoopback(b *testing.B, h http.Handler) {
	c := parseCaptureHeaders(b, filepath.Join(testfixture.SDKDir(b), "go-event-message.envelope.headers"))
	body := testfixture.SDKFile(b, "go-event-message.envelope")
	srv := httptest.NewServer(h)
	defer srv.Close()
	tr := &http.Transport{MaxIdleConns: benchConns, MaxIdleConnsPerHost: benchConns, MaxConnsPerHost: benchConns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := srv.URL + c.target

	b.SetParallelism((benchConns + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header = c.header // read-only for the client: safe to share
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
}

// BenchmarkHandler is the ingest handler over loopback HTTP, go-event-message
// fixture, in-memory publisher.
func BenchmarkHandler(b *testing.B) {
	pub := &discardPublisher{}
	benchmarkLoopback(b, New(DefaultConfig(), pub, nil, testLogger(b)).Handler())
	if pub.n.Load() == 0 {
		b.Fatal("nothing published")
	}
}

// BenchmarkBareHandler is the baseline: a handler that only reads the body
// and answers 200, same client, same fixture.
func BenchmarkBareHandler(b *testing.B) {
	benchmarkLoopback(b, bareHandler)
}

// BenchmarkServeHTTP calls the handler in-process (no sockets, no client):
// its allocs/op are ingest's own allocations per request.
func BenchmarkServeHTTP(b *testing.B) {
	c := parseCaptureHeaders(b, filepath.Join(testfixture.SDKDir(b), "go-event-message.envelope.headers"))
	body := testfixture.SDKFile(b, "go-event-message.envelope")
	s := New(DefaultConfig(), &discardPublisher{}, nil, testLogger(b))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.RunParallel(func(pb *testing.PB) {
		rd := bytes.NewReader(body)
		req := httptest.NewRequest(http.MethodPost, c.target, rd)
		req.Header = c.header
		req.ContentLength = int64(len(body))
		req.RemoteAddr = "127.0.0.1:40000"
		w := &benchWriter{h: http.Header{}}
		for pb.Next() {
			rd.Reset(body)
			clear(w.h)
			w.status = 0
			s.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				b.Errorf("status %d", w.status)
				return
			}
		}
	})
}

// benchWriter is a reusable ResponseWriter for BenchmarkServeHTTP.
type benchWriter struct {
	h      http.Header
	status int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(code int)        { w.status = code }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkHandlerJetStream is BenchmarkHandler publishing to a real embedded
// JetStream (default sync: fsync on the server's interval), i.e. the whole
// ingest path up to the PubAck.
func BenchmarkHandlerJetStream(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := stream.Open(ctx, stream.Config{StoreDir: b.TempDir()}, testLogger(b))
	if err != nil {
		b.Fatalf("open stream: %v", err)
	}
	defer conn.Close()
	cfg := DefaultConfig()
	cfg.MaxPublishPayload = conn.MaxPayload()
	benchmarkLoopback(b, New(cfg, conn, conn.Ready, testLogger(b)).Handler())
}
