package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/stream"
)

// testKey is the DSN key of the captured fixtures.
const testKey = "0123456789abcdef0123456789abcdef"

// testAuth is an X-Sentry-Auth header for testKey.
const testAuth = "Sentry sentry_version=7, sentry_client=test/1.0, sentry_key=" + testKey

// fakePublisher records what ingest publishes (deep copies: ingest reuses its
// buffers once Publish returns). err, when set, fails every publish; block,
// when set, holds each publish until it is closed or ctx ends.
type fakePublisher struct {
	mu    sync.Mutex
	msgs  []stream.Message
	ids   []string
	err   error
	block chan struct{}
	calls chan struct{} // receives one value per Publish call, if set
}

func (p *fakePublisher) Publish(ctx context.Context, m *stream.Message, msgID string) error {
	if p.calls != nil {
		p.calls <- struct{}{}
	}
	if p.block != nil {
		select {
		case <-p.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	c := *m
	c.Envelope = bytes.Clone(m.Envelope)
	p.msgs = append(p.msgs, c)
	p.ids = append(p.ids, msgID)
	return nil
}

func (p *fakePublisher) messages() []stream.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]stream.Message(nil), p.msgs...)
}

// testLogger discards below warnings and writes the rest to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// testConfig is DefaultConfig with a version, so Server headers are known.
func testConfig() Config {
	c := DefaultConfig()
	c.Version = "test"
	c.PublishTimeout = 2 * time.Second
	return c
}

// startServer serves s on 127.0.0.1 for the duration of the test.
func startServer(t testing.TB, s *Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

// response is what a test request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

// detail returns the JSON detail of an error answer.
func (r response) errorBody(t testing.TB) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	return e
}

// do sends one request. contentLength < 0 sends the body chunked.
func do(t testing.TB, method, url string, header http.Header, body []byte, chunked bool) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
		if chunked {
			rd = io.MultiReader(rd) // hides the length: the client sends chunked
		}
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// hdr builds a header from key/value pairs.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// assertCommonHeaders checks what every answer carries.
func assertCommonHeaders(t testing.TB, r response) {
	t.Helper()
	if got := r.header.Get("Server"); got != "relay/test" {
		t.Errorf("Server = %q, want relay/test", got)
	}
	if got := r.header.Get("Cross-Origin-Resource-Policy"); got != "cross-origin" {
		t.Errorf("Cross-Origin-Resource-Policy = %q, want cross-origin", got)
	}
}
