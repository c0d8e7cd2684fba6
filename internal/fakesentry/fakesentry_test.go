package fakesentry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"

	"github.com/relayhq/relay/internal/upstream"
)

const (
	key      = "0123456789abcdef0123456789abcdef"
	authHdr  = "Sentry sentry_key=" + key + ", sentry_version=7, sentry_client=sentry.go/0.50.0"
	eventID  = "9ec79c33ec9942ab8353589fcb2e04dc"
	envelope = `{"event_id":"9ec79c33-ec99-42ab-8353-589fcb2e04dc","sent_at":"2026-11-22T18:00:00Z"}
{"type":"event","length":16}
{"message":"hi"}
{"type":"attachment","length":4,"filename":"b.bin"}
a
b` + "\x00" + `
{"type":"client_report"}
{"discarded_events":[]}
`
)

func newServer(t *testing.T, opts Options) *Server {
	t.Helper()
	s := New(opts)
	t.Cleanup(s.Close)
	return s
}

// client has a short timeout so a broken fake fails the test, not hangs it.
// No keep-alive: a connection pooled before Down would fail with EOF after
// it, which is the client's business, not the fake's.
var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

type req struct {
	method, path string
	header       map[string]string
	body         []byte
}

func post(body string) req {
	return req{
		method: http.MethodPost,
		path:   "/api/42/envelope/",
		header: map[string]string{"Content-Type": "application/x-sentry-envelope", "X-Sentry-Auth": authHdr},
		body:   []byte(body),
	}
}

func (r req) with(k, v string) req {
	h := make(map[string]string, len(r.header)+1)
	for kk, vv := range r.header {
		h[kk] = vv
	}
	if v == "" {
		delete(h, k)
	} else {
		h[k] = v
	}
	r.header = h
	return r
}

func do(t *testing.T, base string, r req) (int, http.Header, string) {
	t.Helper()
	hr, err := http.NewRequest(r.method, base+r.path, bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	resp, err := client.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestAccept(t *testing.T) {
	s := newServer(t, Options{})
	status, h, body := do(t, s.URL(), post(envelope).with("X-Forwarded-For", "1.2.3.4, 10.0.0.1").with("User-Agent", "sentry.go/0.50.0"))
	if status != 200 || body != `{"id":"`+eventID+`"}` || h.Get("Content-Type") != "application/json" {
		t.Fatalf("answer %d %q %v", status, body, h)
	}
	got := s.Received()
	if len(got) != 1 {
		t.Fatalf("%d received", len(got))
	}
	r := got[0]
	if r.ProjectID != 42 || r.PublicKey != key || r.EventID != eventID || r.Encoding != "" || string(r.Body) != envelope || r.WireSize != len(envelope) {
		t.Fatalf("received %+v", r)
	}
	if r.Auth["sentry_client"] != "sentry.go/0.50.0" || r.Auth["sentry_version"] != "7" {
		t.Fatalf("auth %v", r.Auth)
	}
	if r.Header.Get("X-Forwarded-For") != "1.2.3.4, 10.0.0.1" || r.Header.Get("User-Agent") != "sentry.go/0.50.0" {
		t.Fatalf("headers %v", r.Header)
	}
	if string(r.EnvelopeHeader) != `{"event_id":"9ec79c33-ec99-42ab-8353-589fcb2e04dc","sent_at":"2026-11-22T18:00:00Z"}` {
		t.Fatalf("envelope header %s", r.EnvelopeHeader)
	}
	want := []struct{ typ, payload string }{{"event", `{"message":"hi"}`}, {"attachment", "a\nb\x00"}, {"client_report", `{"discarded_events":[]}`}}
	if len(r.Items) != len(want) {
		t.Fatalf("items %+v", r.Items)
	}
	for i, w := range want {
		if r.Items[i].Type != w.typ || string(r.Items[i].Payload) != w.payload {
			t.Errorf("item %d = %s %q, want %s %q", i, r.Items[i].Type, r.Items[i].Payload, w.typ, w.payload)
		}
	}
	if ids := s.EventIDs(); len(ids) != 1 || ids[eventID] != 1 {
		t.Fatalf("EventIDs %v", ids)
	}
	reqs := s.Requests()
	if len(reqs) != 1 || reqs[0].Status != 200 || reqs[0].EventID != eventID || reqs[0].Path != "/api/42/envelope/" {
		t.Fatalf("requests %+v", reqs)
	}
}

// DropPayloads keeps what a test asserts on, not the envelope's bytes.
func TestAcceptDropPayloads(t *testing.T) {
	s := newServer(t, Options{DropPayloads: true})
	if status, _, body := do(t, s.URL(), post(envelope)); status != 200 || body != `{"id":"`+eventID+`"}` {
		t.Fatalf("answer %d %q", status, body)
	}
	got := s.Received()
	if len(got) != 1 {
		t.Fatalf("%d received", len(got))
	}
	r := got[0]
	if r.EventID != eventID || r.WireSize != len(envelope) || r.Body != nil || len(r.Items) != 3 || r.Items[0].Type != "event" || len(r.EnvelopeHeader) == 0 {
		t.Fatalf("received %+v", r)
	}
	for i, it := range r.Items {
		if it.Payload != nil {
			t.Errorf("item %d kept its payload %q", i, it.Payload)
		}
	}
}

func TestAcceptWithoutEventID(t *testing.T) {
	s := newServer(t, Options{})
	status, _, body := do(t, s.URL(), post("{}\n{\"type\":\"sessions\"}\n{\"aggregates\":[]}"))
	if status != 200 || body != `{}` {
		t.Fatalf("answer %d %q", status, body)
	}
	if len(s.EventIDs()) != 0 || s.Count() != 1 {
		t.Fatalf("ids %v count %d", s.EventIDs(), s.Count())
	}
}

func encode(t *testing.T, enc string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch enc {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "deflate":
		w = zlib.NewWriter(&buf)
	case "br":
		w = brotli.NewWriter(&buf)
	case "zstd":
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	default:
		return b
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestEncodings(t *testing.T) {
	s := newServer(t, Options{})
	for _, enc := range []string{"", "identity", "gzip", "deflate", "br", "zstd"} {
		t.Run("enc="+enc, func(t *testing.T) {
			s.Reset()
			r := post("").with("Content-Encoding", enc)
			r.body = encode(t, enc, []byte(envelope))
			if status, _, body := do(t, s.URL(), r); status != 200 {
				t.Fatalf("%d %s", status, body)
			}
			got := s.Received()[0]
			if string(got.Body) != envelope || got.Encoding != enc || got.WireSize != len(r.body) {
				t.Fatalf("decoded %q (enc %q, wire %d)", got.Body, got.Encoding, got.WireSize)
			}
		})
	}
}

func TestRequireEncoding(t *testing.T) {
	s := newServer(t, Options{RequireEncoding: "zstd"})
	if status, _, body := do(t, s.URL(), post(envelope)); status != 400 || !strings.Contains(body, "zstd") {
		t.Fatalf("uncompressed: %d %s", status, body)
	}
	r := post("").with("Content-Encoding", "zstd")
	r.body = encode(t, "zstd", []byte(envelope))
	if status, _, body := do(t, s.URL(), r); status != 200 {
		t.Fatalf("zstd: %d %s", status, body)
	}
	id := newServer(t, Options{RequireEncoding: "identity"})
	if status, _, _ := do(t, id.URL(), post(envelope)); status != 200 {
		t.Fatalf("identity required, none sent: %d", status)
	}
}

func TestRejections(t *testing.T) {
	gz := encode(t, "gzip", []byte(envelope))
	tests := []struct {
		name   string
		r      req
		status int
		detail string
	}{
		{"no auth", post(envelope).with("X-Sentry-Auth", ""), 401, "missing authorization information"},
		{"wrong scheme", post(envelope).with("X-Sentry-Auth", "Bearer x"), 401, "bad x-sentry-auth header"},
		{"no key", post(envelope).with("X-Sentry-Auth", "Sentry sentry_version=7"), 401, "missing authorization information"},
		{"pair without =", post(envelope).with("X-Sentry-Auth", "Sentry sentry_key"), 401, "bad x-sentry-auth header"},
		{"short key", post(envelope).with("X-Sentry-Auth", "Sentry sentry_key=abc"), 400, "bad sentry DSN public key"},
		{"non-hex key", post(envelope).with("X-Sentry-Auth", "Sentry sentry_key="+strings.Repeat("z", 32)), 400, "bad sentry DSN public key"},
		{"version 8", post(envelope).with("X-Sentry-Auth", "Sentry sentry_key="+key+", sentry_version=8"), 400, "unsupported protocol version (8)"},
		{"no content type", post(envelope).with("Content-Type", ""), 400, "Content-Type"},
		{"text/plain", post(envelope).with("Content-Type", "text/plain;charset=UTF-8"), 400, "Content-Type"},
		{"bad project", func() req { r := post(envelope); r.path = "/api/abc/envelope/"; return r }(), 400, "bad project path parameter"},
		{"project 0", func() req { r := post(envelope); r.path = "/api/0/envelope/"; return r }(), 400, "bad project path parameter"},
		{"empty body", post(""), 400, "empty request body"},
		{"corrupt gzip", func() req { r := post("").with("Content-Encoding", "gzip"); r.body = gz[:len(gz)/2]; return r }(), 400, "invalid gzip body"},
		{"not gzip", post(envelope).with("Content-Encoding", "gzip"), 400, "invalid gzip body"},
		{"unknown encoding", post(envelope).with("Content-Encoding", "lz4"), 415, "unsupported Content-Encoding"},
		{"header not json", post("nope\n"), 400, "invalid event envelope"},
		{"header array", post("[]\n"), 400, "invalid event envelope"},
		{"bad event id", post(`{"event_id":"xyz"}` + "\n"), 400, "invalid event envelope"},
		{"item without type", post("{}\n{\"length\":2}\nab\n"), 400, "no type"},
		{"length too long", post("{}\n{\"type\":\"event\",\"length\":20}\nab\n"), 400, "unexpected end of file"},
		{"no newline after payload", post("{}\n{\"type\":\"event\",\"length\":1}\nab\n"), 400, "missing newline"},
		{"negative length", post("{}\n{\"type\":\"event\",\"length\":-1}\nab\n"), 400, "bad length"},
		{"double trailing newline", post("{}\n{\"type\":\"event\",\"length\":2}\nab\n\n"), 400, "invalid event envelope"},
		{"GET envelope", func() req { r := post(envelope); r.method = http.MethodGet; return r }(), 405, "method not allowed"},
		{"unknown path", func() req { r := post(envelope); r.path = "/api/42/store/"; return r }(), 404, "not found"},
		{"no trailing slash", func() req { r := post(envelope); r.path = "/api/42/envelope"; return r }(), 404, "not found"},
	}
	s := newServer(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := do(t, s.URL(), tt.r)
			var e struct{ Detail string }
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("error body %q is not Sentry's JSON: %v", body, err)
			}
			if status != tt.status || !strings.Contains(e.Detail, tt.detail) {
				t.Fatalf("got %d %q, want %d containing %q", status, e.Detail, tt.status, tt.detail)
			}
		})
	}
	if n := s.Count(); n != 0 {
		t.Fatalf("%d rejected envelopes were recorded as received", n)
	}
	if n := len(s.Requests()); n != len(tests) {
		t.Fatalf("request log has %d entries, want %d", n, len(tests))
	}
}

func TestBodyLimit(t *testing.T) {
	s := newServer(t, Options{MaxBodySize: 1000})
	big := "{}\n{\"type\":\"attachment\",\"length\":2000}\n" + strings.Repeat("x", 2000) + "\n"
	if status, _, _ := do(t, s.URL(), post(big)); status != 413 {
		t.Fatalf("plain oversize: %d", status)
	}
	r := post("").with("Content-Encoding", "gzip")
	r.body = encode(t, "gzip", []byte(big)) // small on the wire, big decoded
	if status, _, _ := do(t, s.URL(), r); status != 413 {
		t.Fatalf("gzip bomb: %d", status)
	}
}

func TestPathPrefix(t *testing.T) {
	s := newServer(t, Options{PathPrefix: "sentry/"})
	if !strings.HasSuffix(s.URL(), "/sentry") {
		t.Fatalf("URL %s", s.URL())
	}
	if status, _, _ := do(t, s.URL(), post(envelope)); status != 200 {
		t.Fatalf("prefixed: %d", status)
	}
	if status, _, _ := do(t, "http://"+s.Addr(), post(envelope)); status != 404 {
		t.Fatalf("unprefixed: %d", status)
	}
	if status, _, _ := do(t, s.URL(), req{method: http.MethodGet, path: "/api/0/relays/live/"}); status != 200 {
		t.Fatalf("live: %d", status)
	}
}

func TestFailingMode(t *testing.T) {
	s := newServer(t, Options{})
	s.SetMode(Failing(503, 2))
	live := req{method: http.MethodGet, path: "/api/0/relays/live/"}
	if status, _, _ := do(t, s.URL(), live); status != 503 {
		t.Fatalf("probe while failing: %d", status)
	}
	for i := range 2 {
		// Even a malformed request gets the 503: the upstream fails first.
		r := post(envelope)
		if i == 1 {
			r = r.with("X-Sentry-Auth", "")
		}
		if status, _, _ := do(t, s.URL(), r); status != 503 {
			t.Fatalf("request %d: %d", i, status)
		}
	}
	if m, _ := s.Mode(); m.Status != 0 {
		t.Fatalf("mode after Count answers: %+v", m)
	}
	if status, _, _ := do(t, s.URL(), post(envelope)); status != 200 {
		t.Fatalf("after failures: %d", status)
	}
	if status, _, _ := do(t, s.URL(), live); status != 200 {
		t.Fatalf("probe after failures: %d", status)
	}

	s.SetMode(Mode{Status: 500, RetryAfter: "3"}) // until changed
	for range 5 {
		if status, h, _ := do(t, s.URL(), post(envelope)); status != 500 || h.Get("Retry-After") != "3" {
			t.Fatalf("500 mode: %d %v", status, h)
		}
	}
	s.SetMode(Normal())
	if status, _, _ := do(t, s.URL(), post(envelope)); status != 200 {
		t.Fatalf("normal again: %d", status)
	}
	if s.Count() != 2 {
		t.Fatalf("received %d, want the 2 accepted", s.Count())
	}
}

func TestRateLimitedMode(t *testing.T) {
	s := newServer(t, Options{})
	s.SetMode(RateLimited("2", "2:error:key:quota_exceeded", 1))
	status, h, body := do(t, s.URL(), post(envelope))
	if status != 429 || h.Get("Retry-After") != "2" || h.Get("X-Sentry-Rate-Limits") != "2:error:key:quota_exceeded" || !strings.Contains(body, "quota") {
		t.Fatalf("429: %d %v %s", status, h, body)
	}
	if status, _, _ := do(t, s.URL(), post(envelope)); status != 200 {
		t.Fatalf("after the one 429: %d", status)
	}
	s.SetMode(RateLimited("", "", 0))
	if status, h, _ := do(t, s.URL(), post(envelope)); status != 429 || h.Get("Retry-After") != "" || h.Get("X-Sentry-Rate-Limits") != "" {
		t.Fatalf("bare 429: %d %v", status, h)
	}
	reqs := s.Requests()
	if len(reqs) != 3 || reqs[0].Status != 429 || reqs[1].Status != 200 || reqs[2].Status != 429 || reqs[0].EventID != eventID {
		t.Fatalf("request log %+v", reqs)
	}
	for i := 1; i < len(reqs); i++ {
		if reqs[i].At.Before(reqs[i-1].At) {
			t.Fatalf("request times out of order: %+v", reqs)
		}
	}
}

func TestRejectingMode(t *testing.T) {
	s := newServer(t, Options{})
	s.SetMode(Rejecting(400, "invalid event envelope: nope", 0))
	for range 3 {
		if status, _, body := do(t, s.URL(), post(envelope)); status != 400 || !strings.Contains(body, "nope") {
			t.Fatalf("%d %s", status, body)
		}
	}
	s.SetMode(Rejecting(403, "", 1))
	if status, _, _ := do(t, s.URL(), post(envelope)); status != 403 {
		t.Fatalf("403: %d", status)
	}
	if status, _, _ := do(t, s.URL(), post(envelope)); status != 200 {
		t.Fatalf("after: %d", status)
	}
}

func TestDownUp(t *testing.T) {
	s := newServer(t, Options{})
	url := s.URL()
	if status, _, _ := do(t, url, post(envelope)); status != 200 {
		t.Fatal(status)
	}
	s.Down()
	s.Down() // idempotent
	if !s.IsDown() {
		t.Fatal("IsDown false after Down")
	}
	_, err := client.Post(url+"/api/42/envelope/", "application/x-sentry-envelope", strings.NewReader(envelope))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("request while down: %v, want connection refused", err)
	}
	if err := s.Up(); err != nil {
		t.Fatal(err)
	}
	if s.URL() != url {
		t.Fatalf("URL changed: %s -> %s", url, s.URL())
	}
	if status, _, _ := do(t, url, post(envelope)); status != 200 {
		t.Fatalf("after Up: %d", status)
	}
	if s.Count() != 2 {
		t.Fatalf("received %d, want 2 (kept across Down)", s.Count())
	}
	if err := s.Up(); err != nil {
		t.Fatalf("Up when up: %v", err)
	}
}

func TestDownCutsRequestsInFlight(t *testing.T) {
	s := newServer(t, Options{})
	s.SetDelay(10 * time.Second)
	errc := make(chan error, 1)
	go func() {
		resp, err := client.Post(s.URL()+"/api/42/envelope/", "application/x-sentry-envelope", strings.NewReader(envelope))
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("got status %d", resp.StatusCode)
		}
		errc <- err
	}()
	waitUntil(t, func() bool { return s.InFlight() == 1 })
	start := time.Now()
	s.Down()
	select {
	case err := <-errc:
		if err == nil || strings.Contains(err.Error(), "status") {
			t.Fatalf("in-flight request: %v, want a connection error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight request not cut by Down")
	}
	if time.Since(start) > 5*time.Second || s.Count() != 0 {
		t.Fatalf("count %d", s.Count())
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDelay(t *testing.T) {
	s := newServer(t, Options{})
	s.SetDelay(300 * time.Millisecond)
	start := time.Now()
	if status, _, _ := do(t, s.URL(), post(envelope)); status != 200 {
		t.Fatal(status)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("answered after %v, delay 300 ms", took)
	}
	start = time.Now()
	if status, _, _ := do(t, s.URL(), req{method: http.MethodGet, path: "/api/0/relays/live/"}); status != 200 || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("probe not delayed: %d after %v", status, time.Since(start))
	}
	s.SetDelay(0)
	start = time.Now()
	do(t, s.URL(), post(envelope))
	if took := time.Since(start); took > 250*time.Millisecond {
		t.Fatalf("no delay took %v", took)
	}
}

func TestCloseDuringDelay(t *testing.T) {
	s := New(Options{})
	s.SetDelay(time.Minute)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := client.Post(s.URL()+"/api/42/envelope/", "application/x-sentry-envelope", strings.NewReader(envelope))
		if err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	s.Close()
	s.Close() // idempotent
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Close took %v with a delayed request", took)
	}
	<-done
	if err := s.Up(); err == nil {
		t.Fatal("Up after Close succeeded")
	}
}

func TestWaitForAndDuplicates(t *testing.T) {
	s := newServer(t, Options{})
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("%032x", i%15) // 5 duplicates
			r := post(`{"event_id":"` + id + `"}` + "\n{\"type\":\"event\"}\n{}\n")
			if status, _, body := do(t, s.URL(), r); status != 200 {
				t.Errorf("%d %s", status, body)
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := s.WaitFor(ctx, n)
	if err != nil || len(got) < n {
		t.Fatalf("WaitFor: %d, %v", len(got), err)
	}
	wg.Wait()
	ids := s.EventIDs()
	if len(ids) != 15 {
		t.Fatalf("%d distinct ids", len(ids))
	}
	dups := 0
	for _, c := range ids {
		dups += c - 1
	}
	if dups != 5 {
		t.Fatalf("%d duplicates", dups)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := s.WaitFor(short, n+1); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), fmt.Sprintf("%d of %d", n, n+1)) {
		t.Fatalf("WaitFor beyond: %v", err)
	}
	s.Reset()
	if s.Count() != 0 || len(s.Requests()) != 0 {
		t.Fatal("Reset kept records")
	}
}

// TestUpstreamClient runs the relay's own client against the fake for every
// encoding: the two were written from the same spec, independently.
func TestUpstreamClient(t *testing.T) {
	for _, enc := range upstream.Encodings() {
		t.Run(enc, func(t *testing.T) {
			want := enc
			if enc == upstream.EncodingIdentity {
				want = "identity"
			}
			s := newServer(t, Options{PathPrefix: "/prefix", RequireEncoding: want})
			c, err := upstream.New(upstream.Config{URL: s.URL() + "/", Encoding: enc, RelayID: "relay-1"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r := upstream.Request{ProjectID: 42, PublicKey: key, Client: "sentry.go/0.50.0", Version: 7,
				ForwardedFor: "1.2.3.4", UserAgent: "sentry.go/0.50.0", Envelope: []byte(envelope)}
			if res := c.Send(context.Background(), r); res.Class != upstream.Accepted {
				t.Fatalf("Send: %+v", res)
			}
			if err := c.Probe(context.Background()); err != nil {
				t.Fatalf("Probe: %v", err)
			}
			got := s.Received()[0]
			if string(got.Body) != envelope || got.PublicKey != key || got.EventID != eventID || got.Header.Get("X-Sentry-Relay-Id") != "relay-1" {
				t.Fatalf("received %+v", got)
			}

			s.SetMode(RateLimited("", "5:error:key:quota_exceeded", 1))
			if res := c.Send(context.Background(), r); res.Class != upstream.RateLimited || res.RetryAfter != 5*time.Second {
				t.Fatalf("429: %+v", res)
			}
			s.SetMode(Failing(503, 1))
			if res := c.Send(context.Background(), r); res.Class != upstream.Retryable || res.Status != 503 {
				t.Fatalf("503: %+v", res)
			}
			s.SetMode(Rejecting(400, "", 1))
			if res := c.Send(context.Background(), r); res.Class != upstream.Rejected || res.Detail != detailRejected {
				t.Fatalf("400: %+v", res)
			}
			s.Down()
			if res := c.Send(context.Background(), r); res.Class != upstream.Retryable || res.Status != 0 {
				t.Fatalf("down: %+v", res)
			}
			if err := c.Probe(context.Background()); err == nil {
				t.Fatal("probe while down succeeded")
			}
			if err := s.Up(); err != nil {
				t.Fatal(err)
			}
			if res := c.Send(context.Background(), r); res.Class != upstream.Accepted {
				t.Fatalf("after Up: %+v", res)
			}
			if s.Count() != 2 {
				t.Fatalf("received %d", s.Count())
			}
		})
	}
}

func TestSetDelayReleasesHeldAnswers(t *testing.T) {
	s := newServer(t, Options{})
	s.SetDelay(time.Hour)
	const n = 5
	errc := make(chan error, n)
	for range n {
		go func() {
			resp, err := client.Post(s.URL()+"/api/42/envelope/", "application/x-sentry-envelope", nil)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
	}
	waitUntil(t, func() bool { return s.InFlight() == n })
	s.SetDelay(200 * time.Millisecond) // shorter: they answer 200 ms after arrival
	for range n {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("held answers not released by a shorter delay")
		}
	}
	if reqs := s.Requests(); len(reqs) != n {
		t.Fatalf("%d answers logged", len(reqs))
	}
}
