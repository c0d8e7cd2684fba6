package ingest

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// seenRequest is what the fake upstream of the forward tests received.
type seenRequest struct {
	method, uri, host string
	header            http.Header
	body              []byte
	bodyErr           error
}

// forwardUpstream is a real HTTP server on 127.0.0.1 recording every request
// and answering with handle (201 "created" when nil).
type forwardUpstream struct {
	mu     sync.Mutex
	seen   []seenRequest
	handle func(w http.ResponseWriter, r *http.Request)
	ts     *httptest.Server
}

func newForwardUpstream(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) *forwardUpstream {
	t.Helper()
	u := &forwardUpstream{handle: handle}
	u.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, seenRequest{method: r.Method, uri: r.RequestURI, host: r.Host, header: r.Header.Clone(), body: b, bodyErr: err})
		u.mu.Unlock()
		if u.handle != nil {
			u.handle(w, r)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte("created"))
	}))
	t.Cleanup(u.ts.Close)
	return u
}

func (u *forwardUpstream) requests() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenRequest(nil), u.seen...)
}

func (u *forwardUpstream) url(t *testing.T) *url.URL {
	t.Helper()
	p, err := url.Parse(u.ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startForwarding serves an ingest server whose forward fallback goes to up.
func startForwarding(t *testing.T, up *url.URL, mod func(*ForwardConfig)) *httptest.Server {
	t.Helper()
	s := New(testConfig(), &fakePublisher{}, nil, testLogger(t))
	fc := ForwardConfig{Upstream: up, Timeout: 5 * time.Second, ConnectTimeout: time.Second}
	if mod != nil {
		mod(&fc)
	}
	if err := s.EnableForward(fc); err != nil {
		t.Fatalf("EnableForward: %v", err)
	}
	return startServer(t, s)
}

func TestForwardHeaders(t *testing.T) {
	up := newForwardUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Answer-Hop")
		w.Header().Set("X-Answer-Hop", "drop me")
		w.Header().Set("X-Upstream", "yes")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"r1"}`))
	})
	ts := startForwarding(t, up.url(t), nil)

	tests := []struct {
		name    string
		xff     string
		wantXFF string
	}{
		{name: "chain extended", xff: "203.0.113.7, 10.0.0.1", wantXFF: "203.0.113.7, 10.0.0.1, 127.0.0.1"},
		{name: "chain started", wantXFF: "127.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := hdr(
				"Authorization", "Bearer sntrys_token",
				"Content-Type", "application/json",
				"Connection", "X-Request-Hop",
				"X-Request-Hop", "drop me",
				"Proxy-Authorization", "Basic c2VjcmV0",
				"Te", "trailers",
				"Forwarded", "for=198.51.100.1",
				"X-Forwarded-Host", "evil.example",
			)
			if tc.xff != "" {
				h.Set("X-Forwarded-For", tc.xff)
			}
			res := do(t, "PUT", ts.URL+"/api/0/organizations/acme/releases/?x=1", h, []byte(`{"version":"1.0"}`), false)
			if res.status != http.StatusCreated || string(res.body) != `{"id":"r1"}` {
				t.Fatalf("answer = %d %q, want 201 from the upstream", res.status, res.body)
			}
			if res.header.Get("X-Upstream") != "yes" || res.header.Get("X-Answer-Hop") != "" {
				t.Errorf("answer headers %v: want X-Upstream kept, X-Answer-Hop dropped", res.header)
			}
			assertCommonHeaders(t, res)

			reqs := up.requests()
			got := reqs[len(reqs)-1]
			if got.method != "PUT" || got.uri != "/api/0/organizations/acme/releases/?x=1" || string(got.body) != `{"version":"1.0"}` {
				t.Errorf("upstream got %s %s %q", got.method, got.uri, got.body)
			}
			if got.host != up.ts.Listener.Addr().String() {
				t.Errorf("upstream Host = %q, want its own %q", got.host, up.ts.Listener.Addr().String())
			}
			if got.header.Get("Authorization") != "Bearer sntrys_token" || got.header.Get("Content-Type") != "application/json" {
				t.Errorf("end-to-end headers lost: %v", got.header)
			}
			for _, k := range []string{"X-Request-Hop", "Proxy-Authorization", "Te", "Forwarded", "X-Forwarded-Host"} {
				if v := got.header.Values(k); len(v) != 0 {
					t.Errorf("upstream got %s: %q, want it dropped", k, v)
				}
			}
			if got := got.header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != tc.wantXFF {
				t.Errorf("X-Forwarded-For = %q, want %q", got, tc.wantXFF)
			}
		})
	}
}

// Only /api/ paths other than ingest's own are forwarded.
func TestForwardRoutes(t *testing.T) {
	up := newForwardUpstream(t, nil)
	ts := startForwarding(t, up.url(t), nil)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/", 404},
		{"GET", "/foo", 404},
		{"GET", "/api/", 404},
		{"GET", "/api/relay/healthcheck/live/", 200},
		{"POST", "/api/42/envelope/", 401}, // ingest's own: no auth
		{"GET", "/api/42/envelope", 201},   // no trailing slash: not the envelope route (§1)
		{"DELETE", "/api/0/projects/acme/web/releases/1.0/", 201},
		{"GET", "/api//0/projects/", 201},
	} {
		if res := do(t, tc.method, ts.URL+tc.path, nil, nil, false); res.status != tc.status {
			t.Errorf("%s %s = %d %s, want %d", tc.method, tc.path, res.status, res.body, tc.status)
		}
	}
	if n := len(up.requests()); n != 3 {
		t.Errorf("upstream got %d requests, want 3", n)
	}
}

// Without EnableForward the fallback stays off: unknown /api/ paths are 404.
func TestForwardOff(t *testing.T) {
	ts := startServer(t, New(testConfig(), &fakePublisher{}, nil, testLogger(t)))
	if res := do(t, "GET", ts.URL+"/api/0/organizations/", nil, nil, false); res.status != 404 {
		t.Fatalf("status %d, want 404", res.status)
	}
}

func TestForwardBodyLimit(t *testing.T) {
	up := newForwardUpstream(t, nil)
	ts := startForwarding(t, up.url(t), func(c *ForwardConfig) {
		c.MaxPayload = 1000
		c.MaxFileUpload = 3000
		c.MaxChunkUpload = 5000
	})
	tests := []struct {
		name    string
		path    string
		size    int
		chunked bool
		status  int
	}{
		{"api at limit", "/api/0/organizations/acme/releases/", 1000, false, 201},
		{"api over limit", "/api/0/organizations/acme/releases/", 1001, false, 413},
		{"api over limit chunked", "/api/0/organizations/acme/releases/", 1001, true, 413},
		{"release file", "/api/0/projects/acme/web/releases/1.0/files/", 3000, false, 201},
		{"release file over", "/api/0/projects/acme/web/releases/1.0/files/", 3001, true, 413},
		{"dsyms", "/api/0/projects/acme/web/files/dsyms/", 3000, true, 201},
		{"chunk upload", "/api/0/organizations/acme/chunk-upload/", 5000, true, 201},
		{"chunk upload over", "/api/0/organizations/acme/chunk-upload/", 5001, false, 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(up.requests())
			res := do(t, "POST", ts.URL+tc.path, nil, bytes.Repeat([]byte("x"), tc.size), tc.chunked)
			if res.status != tc.status {
				t.Fatalf("status %d %s, want %d", res.status, res.body, tc.status)
			}
			reqs := up.requests()[before:]
			if tc.status == 413 {
				assertCommonHeaders(t, res)
				if d := res.errorBody(t).Detail; d != "request body too large" {
					t.Errorf("detail %q", d)
				}
				// A body refused by its length never leaves; a chunked one is
				// cut off, so the upstream never sees it complete.
				for _, r := range reqs {
					if r.bodyErr == nil && len(r.body) == tc.size {
						t.Errorf("upstream received the whole %d-byte body", tc.size)
					}
				}
				return
			}
			// Only whole requests count: the previous case's cut-off upload
			// may reach the upstream's log (with its read error) only now.
			var whole []seenRequest
			for _, r := range reqs {
				if r.bodyErr == nil {
					whole = append(whole, r)
				}
			}
			if len(whole) != 1 || len(whole[0].body) != tc.size {
				t.Fatalf("upstream got %d whole requests, want 1 with %d bytes", len(whole), tc.size)
			}
		})
	}
}

func TestForwardUpstreamUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now: connection refused
	ts := startForwarding(t, &url.URL{Scheme: "http", Host: addr}, nil)
	res := do(t, "GET", ts.URL+"/api/0/organizations/", nil, nil, false)
	if res.status != http.StatusBadGateway {
		t.Fatalf("status %d %s, want 502", res.status, res.body)
	}
	assertCommonHeaders(t, res)
	if d := res.errorBody(t).Detail; d != "upstream request failed" {
		t.Errorf("detail %q", d)
	}
}

func TestForwardUpstreamTimeout(t *testing.T) {
	release := make(chan struct{})
	up := newForwardUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release) // before the upstream's Close (cleanup) waits for the handler
	ts := startForwarding(t, up.url(t), func(c *ForwardConfig) { c.Timeout = 200 * time.Millisecond })
	res := do(t, "POST", ts.URL+"/api/0/organizations/acme/releases/", nil, []byte("{}"), false)
	if res.status != http.StatusGatewayTimeout {
		t.Fatalf("status %d %s, want 504", res.status, res.body)
	}
	assertCommonHeaders(t, res)
}

// Forwarded requests beyond MaxConcurrent are refused at once (503), so a
// slow upstream API cannot pile up sockets and goroutines in the relay.
func TestForwardConcurrencyBound(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	up := newForwardUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		w.WriteHeader(http.StatusOK)
	})
	ts := startForwarding(t, up.url(t), func(c *ForwardConfig) { c.MaxConcurrent = 1 })
	first := make(chan response, 1)
	go func() { first <- do(t, "GET", ts.URL+"/api/0/slow/", nil, nil, false) }()
	<-entered
	res := do(t, "GET", ts.URL+"/api/0/other/", nil, nil, false)
	close(release)
	if res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" {
		t.Errorf("second request: %d (Retry-After %q), want 503 with Retry-After", res.status, res.header.Get("Retry-After"))
	}
	if r := <-first; r.status != http.StatusOK {
		t.Errorf("first request: %d, want 200", r.status)
	}
	// The slot is free again.
	if res := do(t, "GET", ts.URL+"/api/0/other/", nil, nil, false); res.status != http.StatusOK {
		t.Errorf("third request: %d, want 200", res.status)
	}
}

func TestEnableForwardRefusesBadConfig(t *testing.T) {
	s := New(testConfig(), &fakePublisher{}, nil, testLogger(t))
	for _, c := range []ForwardConfig{
		{},
		{Upstream: &url.URL{Scheme: "ftp", Host: "x"}, Timeout: time.Second, ConnectTimeout: time.Second},
		{Upstream: &url.URL{Scheme: "https", Host: "x"}},
	} {
		if err := s.EnableForward(c); err == nil || !strings.Contains(err.Error(), "forward") {
			t.Errorf("EnableForward(%+v) = %v, want an error", c, err)
		}
	}
}
