package ingest

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/stream"
)

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

func compress(t testing.TB, enc string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch enc {
	case "gzip":
		return gzipBytes(t, b)
	case "deflate": // zlib, as the RFC says
		zw := zlib.NewWriter(&buf)
		_, _ = zw.Write(b)
		_ = zw.Close()
	case "raw-deflate":
		fw, _ := flate.NewWriter(&buf, flate.DefaultCompression)
		_, _ = fw.Write(b)
		_ = fw.Close()
	case "br":
		bw := brotli.NewWriter(&buf)
		_, _ = bw.Write(b)
		_ = bw.Close()
	case "zstd":
		zw, _ := zstd.NewWriter(&buf)
		_, _ = zw.Write(b)
		_ = zw.Close()
	default:
		return b
	}
	return buf.Bytes()
}

// TestEncodings: every supported Content-Encoding is decoded and the decoded
// body is what gets published, byte for byte.
func TestEncodings(t *testing.T) {
	pub := &fakePublisher{}
	ts := startServer(t, New(testConfig(), pub, nil, testLogger(t)))
	cases := []struct{ header, kind string }{
		{"", "identity"}, {"identity", "identity"}, {"UTF-8", "identity"}, {" ", "identity"},
		{"gzip", "gzip"}, {"GZIP", "gzip"}, {"x-gzip", "gzip"},
		{"deflate", "deflate"}, {"deflate", "raw-deflate"},
		{"br", "br"}, {"zstd", "zstd"},
	}
	for _, tc := range cases {
		t.Run(tc.header+"/"+tc.kind, func(t *testing.T) {
			before := len(pub.messages())
			h := hdr("X-Sentry-Auth", testAuth, "Content-Encoding", tc.header)
			for _, chunked := range []bool{false, true} {
				res := do(t, "POST", ts.URL+"/api/42/envelope/", h, compress(t, tc.kind, validEnvelope), chunked)
				if res.status != 200 {
					t.Fatalf("status %d: %s", res.status, res.body)
				}
				if string(res.body) != `{"id":"`+testEventID+`"}` {
					t.Fatalf("body = %s", res.body)
				}
			}
			msgs := pub.messages()[before:]
			if len(msgs) != 2 {
				t.Fatalf("published %d, want 2", len(msgs))
			}
			for _, m := range msgs {
				if !bytes.Equal(m.Envelope, validEnvelope) {
					t.Fatalf("published %q, want %q", m.Envelope, validEnvelope)
				}
			}
		})
	}
}

// TestMessageMetadata: the stream message carries what Relay records about
// the request (§2.3) and the response id is the envelope's event id.
func TestMessageMetadata(t *testing.T) {
	pub := &fakePublisher{}
	ts := startServer(t, New(testConfig(), pub, nil, testLogger(t)))
	before := time.Now()

	cases := []struct {
		name                       string
		path                       string
		header                     http.Header
		wantClient                 string
		wantVersion                int
		wantOrigin, wantChainStart string
	}{
		{name: "x-sentry-auth", path: "/api/42/envelope/",
			header:     hdr("X-Sentry-Auth", "sentry sentry_key="+testKey+".no-cache , sentry_version=6.1,sentry_client= go/1 ", "User-Agent", "ua/1", "Origin", "https://app.example"),
			wantClient: "go/1", wantVersion: 6, wantOrigin: "https://app.example"},
		{name: "authorization sentry", path: "/api/42/envelope/",
			header:     hdr("Authorization", "Sentry sentry_key="+testKey+", sentry_client=x/2", "User-Agent", "ua/1", "Origin", "null", "Referer", "http://ref.example/page"),
			wantClient: "x/2", wantVersion: 7, wantOrigin: "http://ref.example/page"},
		{name: "basic", path: "/api/42/envelope/",
			header:      hdr("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(testKey+":secret")), "User-Agent", "ua/1", "Origin", "file:///x"),
			wantVersion: 7},
		{name: "query", path: "/api/42/envelope/?sentry_key=" + testKey + "&sentry_version=7&sentry_client=sentry.javascript.browser%2F11.12.0&other=1",
			header:     hdr("User-Agent", "ua/1", "X-Forwarded-For", "203.0.113.7, 10.0.0.1"),
			wantClient: "sentry.javascript.browser/11.12.0", wantVersion: 7, wantChainStart: "203.0.113.7, 10.0.0.1, "},
		{name: "empty x-sentry-auth ignored", path: "/api/42/envelope/?sentry_key=" + testKey,
			header: hdr("X-Sentry-Auth", "", "User-Agent", "ua/1"), wantVersion: 7},
		{name: "non-sentry authorization ignored", path: "/api//42//envelope//",
			header: hdr("X-Sentry-Auth", testAuth, "Authorization", "Bearer abc", "User-Agent", "ua/1"), wantClient: "test/1.0", wantVersion: 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := len(pub.messages())
			res := do(t, "POST", ts.URL+tc.path, tc.header, validEnvelope, false)
			if res.status != 200 {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			msgs := pub.messages()
			if len(msgs) != n+1 {
				t.Fatalf("published %d, want 1", len(msgs)-n)
			}
			m := msgs[n]
			if m.ProjectID != 42 || m.PublicKey != testKey {
				t.Errorf("project/key = %d/%q", m.ProjectID, m.PublicKey)
			}
			if m.Client != tc.wantClient || m.Version != tc.wantVersion {
				t.Errorf("client/version = %q/%d, want %q/%d", m.Client, m.Version, tc.wantClient, tc.wantVersion)
			}
			if m.Origin != tc.wantOrigin {
				t.Errorf("origin = %q, want %q", m.Origin, tc.wantOrigin)
			}
			if m.UserAgent != "ua/1" {
				t.Errorf("user agent = %q", m.UserAgent)
			}
			if m.RemoteAddr != "127.0.0.1" {
				t.Errorf("remote addr = %q", m.RemoteAddr)
			}
			if m.ForwardedFor != tc.wantChainStart+"127.0.0.1" {
				t.Errorf("forwarded for = %q", m.ForwardedFor)
			}
			if m.ReceivedAt.Before(before) || m.ReceivedAt.After(time.Now()) {
				t.Errorf("received at = %v", m.ReceivedAt)
			}
			if m.EventID != testEventID {
				t.Errorf("event id = %q", m.EventID)
			}
			if !bytes.Equal(m.Envelope, validEnvelope) {
				t.Errorf("envelope = %q", m.Envelope)
			}
			// CORS headers answer browsers (requests with Origin) only.
			cors := res.header.Get("Access-Control-Allow-Origin") == "*" &&
				res.header.Get("Access-Control-Expose-Headers") == "x-sentry-error, x-sentry-rate-limits, retry-after"
			if want := tc.header.Get("Origin") != ""; cors != want {
				t.Errorf("CORS headers present %v, want %v: %v", cors, want, res.header)
			}
			assertCommonHeaders(t, res)
		})
	}
	// Every publish had its own message id.
	seen := map[string]bool{}
	for _, id := range pub.ids {
		if !hex32.MatchString(id) || seen[id] {
			t.Fatalf("message ids not fresh 32-hex: %q", pub.ids)
		}
		seen[id] = true
	}
}

// TestEventIDAssigned: an event-like item without a header event_id gets a
// fresh one, the envelope is re-serialised with it, and the answer carries it.
// Envelopes without event-like items keep their bytes and answer {}.
func TestEventIDAssigned(t *testing.T) {
	pub := &fakePublisher{}
	ts := startServer(t, New(testConfig(), pub, nil, testLogger(t)))
	h := hdr("X-Sentry-Auth", testAuth)

	noID := []byte("{\"sent_at\":\"2026-01-01T00:00:00Z\"}\n{\"type\":\"event\"}\n{\"message\":\"m\"}\n")
	res := do(t, "POST", ts.URL+"/api/42/envelope/", h, noID, false)
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	var ans struct{ ID string }
	if err := json.Unmarshal(res.body, &ans); err != nil || !hex32.MatchString(ans.ID) {
		t.Fatalf("answer %s: want a fresh 32-hex id", res.body)
	}
	m := pub.messages()[0]
	if m.EventID != ans.ID {
		t.Fatalf("message event id %q, answer %q", m.EventID, ans.ID)
	}
	env, err := envelope.Parse(m.Envelope)
	if err != nil {
		t.Fatalf("published envelope does not parse: %v", err)
	}
	if env.Header.EventID != ans.ID {
		t.Fatalf("published header event_id %q, want %q", env.Header.EventID, ans.ID)
	}
	if !bytes.Contains(m.Envelope, []byte(`"sent_at":"2026-01-01T00:00:00Z"`)) {
		t.Fatalf("unknown header keys lost: %q", m.Envelope)
	}
	if len(env.Items) != 1 || string(env.Items[0].Payload) != `{"message":"m"}` {
		t.Fatalf("items changed: %q", m.Envelope)
	}

	sessions := []byte("{}\n{\"type\":\"session\"}\n{\"sid\":\"x\"}\n")
	res = do(t, "POST", ts.URL+"/api/42/envelope/", h, sessions, false)
	if res.status != 200 || string(res.body) != "{}" {
		t.Fatalf("session envelope: %d %s", res.status, res.body)
	}
	if m := pub.messages()[1]; !bytes.Equal(m.Envelope, sessions) || m.EventID != "" {
		t.Fatalf("session envelope published as %q (event id %q)", m.Envelope, m.EventID)
	}
}

// TestHeaderOnlyEnvelope: valid, 200, nothing published (Relay newest).
func TestHeaderOnlyEnvelope(t *testing.T) {
	pub := &fakePublisher{}
	ts := startServer(t, New(testConfig(), pub, nil, testLogger(t)))
	h := hdr("X-Sentry-Auth", testAuth)
	for _, tc := range []struct{ body, want string }{
		{"{}\n", "{}"},
		{"{}", "{}"},
		{`{"event_id":"` + testEventID + `"}` + "\n", `{"id":"` + testEventID + `"}`},
	} {
		res := do(t, "POST", ts.URL+"/api/42/envelope/", h, []byte(tc.body), false)
		if res.status != 200 || string(res.body) != tc.want {
			t.Errorf("%q: %d %s, want 200 %s", tc.body, res.status, res.body, tc.want)
		}
	}
	if n := len(pub.messages()); n != 0 {
		t.Fatalf("header-only envelopes published: %d", n)
	}
}

// TestTunnel: without credentials the envelope header dsn authenticates (its
// project must be the path's, see TestEnvelopeProjectIsThePath); other header
// keys are untouched.
func TestTunnel(t *testing.T) {
	pub := &fakePublisher{}
	ts := startServer(t, New(testConfig(), pub, nil, testLogger(t)))
	body := []byte(`{"event_id":"` + testEventID + `","dsn":"https://` + testKey + `@o1.ingest.example/7","client":"tun/1"}` +
		"\n{\"type\":\"event\"}\n{}\n")
	res := do(t, "POST", ts.URL+"/api/7/envelope/", hdr("Origin", "http://localhost:3000"), body, false)
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	m := pub.messages()[0]
	if m.ProjectID != 7 || m.PublicKey != testKey || m.Client != "tun/1" || m.Version != 7 || m.Origin != "http://localhost:3000" {
		t.Fatalf("tunnel message = %+v", m)
	}
	if !bytes.Equal(m.Envelope, body) {
		t.Fatalf("envelope changed: %q", m.Envelope)
	}
}

// TestStore: the store endpoint turns an event into an envelope; GET answers
// the pixel; an envelope Content-Type is parsed as an envelope; legacy
// /api/store/ takes its project from the envelope's dsn.
func TestStore(t *testing.T) {
	pub := &fakePublisher{}
	ts := startServer(t, New(testConfig(), pub, nil, testLogger(t)))
	auth := hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/json")

	event := `{"event_id":"` + testEventID + `","message":"hi"}`
	res := do(t, "POST", ts.URL+"/api/42/store/", auth, []byte(event), false)
	if res.status != 200 || string(res.body) != `{"id":"`+testEventID+`"}` {
		t.Fatalf("store: %d %s", res.status, res.body)
	}
	m := pub.messages()[0]
	env, err := envelope.Parse(m.Envelope)
	if err != nil {
		t.Fatalf("store envelope: %v", err)
	}
	if env.Header.EventID != testEventID || m.EventID != testEventID || len(env.Items) != 1 ||
		env.Items[0].Type != "event" || string(env.Items[0].Payload) != event {
		t.Fatalf("store published %q", m.Envelope)
	}

	// GET pixel: data and auth in the query.
	q := url.Values{"sentry_key": {testKey}, "sentry_version": {"7"}, "sentry_data": {`{"message":"pixel"}`}}
	res = do(t, "GET", ts.URL+"/api/42/store/?"+q.Encode(), nil, nil, false)
	if res.status != 200 || res.header.Get("Content-Type") != "image/gif" || !bytes.Equal(res.body, pixelGIF) {
		t.Fatalf("pixel: %d %q %q", res.status, res.header.Get("Content-Type"), res.body)
	}
	if m := pub.messages()[1]; !bytes.Contains(m.Envelope, []byte(`{"message":"pixel"}`)) || !hex32.MatchString(m.EventID) {
		t.Fatalf("pixel published %q (event id %q)", m.Envelope, m.EventID)
	}

	// Envelope on the store endpoint, and on the legacy one with a dsn.
	envBody := []byte(`{"event_id":"` + testEventID + `","dsn":"http://` + testKey + `@h/42"}` + "\n{\"type\":\"event\"}\n{}\n")
	for _, path := range []string{"/api/42/store/", "/api/store/", "/api//store/"} {
		res = do(t, "POST", ts.URL+path, hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/x-sentry-envelope"), envBody, false)
		if res.status != 200 {
			t.Fatalf("%s envelope: %d %s", path, res.status, res.body)
		}
		msgs := pub.messages()
		if m := msgs[len(msgs)-1]; m.ProjectID != 42 || !bytes.Equal(m.Envelope, envBody) {
			t.Fatalf("%s published project %d %q", path, m.ProjectID, m.Envelope)
		}
	}
}

// TestPreflight: OPTIONS on store-like routes is Relay's CORS preflight.
func TestPreflight(t *testing.T) {
	ts := startServer(t, New(testConfig(), &fakePublisher{}, nil, testLogger(t)))
	for _, path := range []string{"/api/42/envelope/", "/api/42/store/", "/api/store/"} {
		res := do(t, "OPTIONS", ts.URL+path, hdr("Origin", "http://localhost:9131", "Access-Control-Request-Method", "POST"), nil, false)
		assertPreflight(t, res)
	}
}

func assertPreflight(t *testing.T, res response) {
	t.Helper()
	if res.status != 200 || len(res.body) != 0 {
		t.Fatalf("preflight: %d %q", res.status, res.body)
	}
	want := map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": "POST",
		"Access-Control-Allow-Headers": "x-sentry-auth, x-requested-with, x-forwarded-for, origin, referer, accept, content-type, authentication, authorization, content-encoding, transfer-encoding",
		"Access-Control-Max-Age":       "3600",
	}
	for k, v := range want {
		if got := res.header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	assertCommonHeaders(t, res)
}

// TestPublishFailure: whatever the stream says, a failed publish is 503 with
// Retry-After, never 200.
func TestPublishFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"full", fmt.Errorf("stream: publish: %w", stream.ErrFull)},
		{"unavailable", fmt.Errorf("stream: publish: %w", stream.ErrUnavailable)},
		{"other", errors.New("boom")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := &fakePublisher{err: tc.err}
			cfg := testConfig()
			cfg.RetryAfter = 3 * time.Second
			ts := startServer(t, New(cfg, pub, nil, testLogger(t)))
			res := do(t, "POST", ts.URL+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth), validEnvelope, false)
			if res.status != 503 {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			if res.header.Get("Retry-After") != "3" {
				t.Errorf("Retry-After = %q", res.header.Get("Retry-After"))
			}
			e := res.errorBody(t)
			if e.Detail != "failed to queue envelope" || res.header.Get("X-Sentry-Error") != e.Detail {
				t.Errorf("detail %q / header %q", e.Detail, res.header.Get("X-Sentry-Error"))
			}
			if len(e.Causes) != 1 || e.Causes[0] != tc.err.Error() {
				t.Errorf("causes = %q", e.Causes)
			}
		})
	}

	t.Run("timeout", func(t *testing.T) {
		pub := &fakePublisher{block: make(chan struct{})}
		defer close(pub.block)
		cfg := testConfig()
		cfg.PublishTimeout = 50 * time.Millisecond
		ts := startServer(t, New(cfg, pub, nil, testLogger(t)))
		res := do(t, "POST", ts.URL+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth), validEnvelope, false)
		if res.status != 503 || res.header.Get("Retry-After") == "" {
			t.Fatalf("status %d Retry-After %q: %s", res.status, res.header.Get("Retry-After"), res.body)
		}
	})
}

// TestDraining: after StartDraining new requests get 503 and readiness goes
// down, while a request already publishing finishes with 200; the HTTP
// server's Shutdown returns once it has.
func TestDraining(t *testing.T) {
	pub := &fakePublisher{block: make(chan struct{}), calls: make(chan struct{}, 1)}
	s := New(testConfig(), pub, nil, testLogger(t))
	ts := startServer(t, s)

	inflight := make(chan response, 1)
	go func() {
		inflight <- do(t, "POST", ts.URL+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth), validEnvelope, false)
	}()
	<-pub.calls // the request is inside Publish
	s.StartDraining()

	res := do(t, "POST", ts.URL+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth), validEnvelope, false)
	if res.status != 503 || res.errorBody(t).Detail != "failed to queue envelope" || res.header.Get("Retry-After") == "" {
		t.Fatalf("while draining: %d %s", res.status, res.body)
	}
	if res := do(t, "GET", ts.URL+"/api/relay/healthcheck/ready/", nil, nil, false); res.status != 503 || string(res.body) != `{"is_healthy":false}` {
		t.Fatalf("ready while draining: %d %s", res.status, res.body)
	}
	if res := do(t, "GET", ts.URL+"/api/relay/healthcheck/live/", nil, nil, false); res.status != 200 {
		t.Fatalf("live while draining: %d %s", res.status, res.body)
	}

	// The relay's shutdown (http.Server.Shutdown) waits for the publish.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	if err := ts.Config.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown returned while a publish was in flight")
	}
	cancel()
	close(pub.block)
	if res := <-inflight; res.status != 200 {
		t.Fatalf("in-flight request: %d %s", res.status, res.body)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Config.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := len(pub.messages()); n != 1 {
		t.Fatalf("published %d, want only the in-flight one", n)
	}
}

// TestHealth: live, ready (following ready()), and /api/0/relays/live/.
func TestHealth(t *testing.T) {
	var readyErr error
	s := New(testConfig(), &fakePublisher{}, func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("ready called without a deadline")
		}
		return readyErr
	}, testLogger(t))
	ts := startServer(t, s)
	check := func(path string, status int, body string) {
		t.Helper()
		res := do(t, "GET", ts.URL+path, nil, nil, false)
		if res.status != status || string(res.body) != body || res.header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %s", path, res.status, res.body)
		}
		assertCommonHeaders(t, res)
	}
	check("/api/relay/healthcheck/live/", 200, `{"is_healthy":true}`)
	check("/api/relay/healthcheck/ready/", 200, `{"is_healthy":true}`)
	check("/api/0/relays/live/", 200, `{"is_healthy":true}`)
	readyErr = errors.New("jetstream down")
	check("/api/relay/healthcheck/ready/", 503, `{"is_healthy":false}`)
	check("/api/relay/healthcheck/live/", 200, `{"is_healthy":true}`)
	res := do(t, "POST", ts.URL+"/api/relay/healthcheck/live/", nil, nil, false)
	if res.status != 405 {
		t.Fatalf("POST live: %d", res.status)
	}
}

// TestPublishPayloadBound: the stream's message size bounds the body.
func TestPublishPayloadBound(t *testing.T) {
	pub := &fakePublisher{}
	cfg := testConfig()
	cfg.MaxPublishPayload = messageReserve + 1000
	ts := startServer(t, New(cfg, pub, nil, testLogger(t)))
	h := hdr("X-Sentry-Auth", testAuth)
	small := eventEnvelope(testEventID, `{"m":"`+strings.Repeat("a", 800)+`"}`)
	if res := do(t, "POST", ts.URL+"/api/42/envelope/", h, small, false); res.status != 200 {
		t.Fatalf("small: %d %s", res.status, res.body)
	}
	big := eventEnvelope(testEventID, `{"m":"`+strings.Repeat("a", 1000)+`"}`)
	if res := doRaw(t, ts.Listener.Addr().String(), "POST", "/api/42/envelope/", h, big, false); res.status != 413 {
		t.Fatalf("big: %d %s", res.status, res.body)
	}
	// Metadata larger than the reserve is caught by the exact check.
	h2 := hdr("X-Sentry-Auth", testAuth, "User-Agent", strings.Repeat("u", messageReserve))
	if res := doRaw(t, ts.Listener.Addr().String(), "POST", "/api/42/envelope/", h2, small, false); res.status != 413 {
		t.Fatalf("big metadata: %d %s", res.status, res.body)
	}
	if n := len(pub.messages()); n != 1 {
		t.Fatalf("published %d, want 1", n)
	}
}

// TestErrorCORS: a browser can read a refusal (X-Sentry-Error is exposed).
func TestErrorCORS(t *testing.T) {
	ts := startServer(t, New(testConfig(), &fakePublisher{}, nil, testLogger(t)))
	res := do(t, "POST", ts.URL+"/api/42/envelope/", hdr("Origin", "http://localhost:9131"), validEnvelope, false)
	if res.status != 401 || res.header.Get("Access-Control-Allow-Origin") != "*" ||
		res.header.Get("Access-Control-Expose-Headers") != "x-sentry-error, x-sentry-rate-limits, retry-after" ||
		res.header.Get("X-Sentry-Error") != "bad envelope authentication header" {
		t.Fatalf("%d %v %s", res.status, res.header, res.body)
	}
}

// TestEnvelopeOrigin: an envelope header origin equal to the request's (as a
// URL) is accepted.
func TestEnvelopeOrigin(t *testing.T) {
	pub := &fakePublisher{}
	ts := startServer(t, New(testConfig(), pub, nil, testLogger(t)))
	body := []byte(`{"origin":"HTTP://App.Example"}` + "\n{\"type\":\"session\"}\n{}\n")
	res := do(t, "POST", ts.URL+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth, "Origin", "http://app.example/"), body, false)
	if res.status != 200 || len(pub.messages()) != 1 {
		t.Fatalf("%d %s", res.status, res.body)
	}
}

func TestHeaderSafe(t *testing.T) {
	if got := headerSafe("a\r\nb\x00c"); got != "a  b c" {
		t.Fatalf("%q", got)
	}
	if got := headerSafe("plain text"); got != "plain text" {
		t.Fatalf("%q", got)
	}
}

// TestZeroConfig: a zero Config works with Relay's defaults.
func TestZeroConfig(t *testing.T) {
	pub := &fakePublisher{}
	s := New(Config{}, pub, nil, nil)
	if s.cfg.Limits != envelope.DefaultLimits() || s.envelopeLimit != 200<<20 || s.eventLimit != 1<<20 ||
		s.serverHdr[0] != "relay" || s.retryAfterHdr[0] != "2" {
		t.Fatalf("defaults not applied: %+v", s.cfg)
	}
	ts := startServer(t, s)
	if res := do(t, "POST", ts.URL+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth), validEnvelope, false); res.status != 200 {
		t.Fatalf("%d %s", res.status, res.body)
	}
}

// TestStreamFullHeld: after the stream refused a publish as full, ingest
// refuses for fullHold without reading the request or publishing — the same
// 503, Retry-After and X-Sentry-Error, counted as stream_full — and
// publishes again once the hold passed.
func TestStreamFullHeld(t *testing.T) {
	pub := &fakePublisher{err: fmt.Errorf("stream: publish: %w", stream.ErrFull), calls: make(chan struct{}, 8)}
	s := New(testConfig(), pub, nil, testLogger(t))
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ts := startServer(t, s)
	post := func() response {
		return do(t, "POST", ts.URL+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth), validEnvelope, false)
	}
	calls := func() int { return len(pub.calls) }
	full0 := droppedStreamFull.Get()

	steps := []struct {
		name      string
		advance   time.Duration
		fullAgain bool // the stream still refuses
		status    int
		published int // Publish calls so far
	}{
		{"the stream refuses", 0, true, 503, 1},
		{"held: refused without publishing", 0, true, 503, 1},
		{"still held just before the end", fullHold - time.Millisecond, true, 503, 1},
		{"hold over, still full: publishes, refused", time.Millisecond, true, 503, 2},
		{"held again", 0, false, 503, 2},
		{"hold over, room again", fullHold, false, 200, 3},
		{"no hold after a success", 0, false, 200, 4},
	}
	for i, st := range steps {
		mu.Lock()
		now = now.Add(st.advance)
		mu.Unlock()
		pub.mu.Lock()
		if st.fullAgain {
			pub.err = fmt.Errorf("stream: publish: %w", stream.ErrFull)
		} else {
			pub.err = nil
		}
		pub.mu.Unlock()
		res := post()
		if res.status != st.status {
			t.Fatalf("step %d (%s): status %d, want %d: %s", i, st.name, res.status, st.status, res.body)
		}
		if got := calls(); got != st.published {
			t.Fatalf("step %d (%s): %d Publish calls, want %d", i, st.name, got, st.published)
		}
		if res.status == 503 {
			e := res.errorBody(t)
			if e.Detail != "failed to queue envelope" || res.header.Get("X-Sentry-Error") != e.Detail || res.header.Get("Retry-After") == "" {
				t.Fatalf("step %d (%s): detail %q, X-Sentry-Error %q, Retry-After %q", i, st.name, e.Detail,
					res.header.Get("X-Sentry-Error"), res.header.Get("Retry-After"))
			}
		}
	}
	if got := droppedStreamFull.Get() - full0; got != 5 {
		t.Fatalf("stream_full refusals counted: %d, want 5", got)
	}
}
