package upstream

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

const testEnvelope = `{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","dsn":"https://e12d836b15bb49d7bbf99e64295d995b@sentry.io/42"}
{"type":"event","length":41}
{"message":"hello","level":"error","x":1}
`

// captured is one request as the test server saw it.
type captured struct {
	method, path string
	uri          string // the request target as it was on the wire (escaped)
	header       http.Header
	body         []byte // as received on the wire
}

// recorder is an httptest server on 127.0.0.1 that records requests and
// answers with handle (200 {} when nil).
type recorder struct {
	*httptest.Server
	mu     sync.Mutex
	got    []captured
	handle func(w http.ResponseWriter, r *http.Request)
}

func newRecorder(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) *recorder {
	t.Helper()
	rec := &recorder{handle: handle}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("server: read body: %v", err)
		}
		rec.mu.Lock()
		rec.got = append(rec.got, captured{r.Method, r.URL.Path, r.RequestURI, r.Header.Clone(), b})
		rec.mu.Unlock()
		if rec.handle != nil {
			rec.handle(w, r)
			return
		}
		_, _ = io.WriteString(w, `{}`)
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) requests() []captured {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func newClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(c.Close)
	return c
}

func baseRequest() Request {
	return Request{
		ProjectID:    42,
		PublicKey:    "e12d836b15bb49d7bbf99e64295d995b",
		Client:       "sentry.go/0.50.0",
		Version:      7,
		ForwardedFor: "203.0.113.7, 10.0.0.2",
		UserAgent:    "sentry.go/0.50.0",
		Origin:       "https://app.example.com",
		Envelope:     []byte(testEnvelope),
	}
}

func TestSendHeaders(t *testing.T) {
	rec := newRecorder(t, nil)
	c := newClient(t, Config{URL: rec.URL, RelayID: "5e2f9c60-5b24-4d6b-9b86-0e5c3e1e7c31"})

	res := c.Send(context.Background(), baseRequest())
	if res.Class != Accepted || res.Status != 200 || res.Err != nil {
		t.Fatalf("Send = %+v", res)
	}
	got := rec.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests", len(got))
	}
	r := got[0]
	if r.method != http.MethodPost || r.path != "/api/42/envelope/" {
		t.Fatalf("request line %s %s", r.method, r.path)
	}
	want := map[string]string{
		"Content-Type":      "application/x-sentry-envelope",
		"Content-Length":    fmt.Sprint(len(testEnvelope)),
		"X-Sentry-Auth":     "Sentry sentry_key=e12d836b15bb49d7bbf99e64295d995b, sentry_version=7, sentry_client=sentry.go/0.50.0",
		"X-Forwarded-For":   "203.0.113.7, 10.0.0.2",
		"User-Agent":        "sentry.go/0.50.0",
		"Origin":            "https://app.example.com",
		"X-Sentry-Relay-Id": "5e2f9c60-5b24-4d6b-9b86-0e5c3e1e7c31",
	}
	assertHeaders(t, r.header, want)
	if !bytes.Equal(r.body, []byte(testEnvelope)) {
		t.Fatalf("body changed:\n%q", r.body)
	}
}

// assertHeaders checks that h holds exactly want (ignoring the transport's
// own Accept-Encoding, which DisableCompression keeps away anyway).
func assertHeaders(t *testing.T, h http.Header, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := h.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	for k := range h {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected header %s: %q", k, h.Values(k))
		}
	}
}

func TestSendMinimalHeaders(t *testing.T) {
	rec := newRecorder(t, nil)
	c := newClient(t, Config{URL: rec.URL})
	r := Request{ProjectID: 7, PublicKey: "abcdefabcdefabcdefabcdefabcdefab", Envelope: []byte(testEnvelope)}
	if res := c.Send(context.Background(), r); res.Class != Accepted {
		t.Fatalf("Send = %+v", res)
	}
	// Unknown metadata is not invented: no User-Agent (not even Go's), no
	// Origin, no X-Forwarded-For, no sentry_client; version defaults to 7.
	assertHeaders(t, rec.requests()[0].header, map[string]string{
		"Content-Type":   "application/x-sentry-envelope",
		"Content-Length": fmt.Sprint(len(testEnvelope)),
		"X-Sentry-Auth":  "Sentry sentry_key=abcdefabcdefabcdefabcdefabcdefab, sentry_version=7",
	})
}

func TestSendDropsUnsendableHeaderValues(t *testing.T) {
	rec := newRecorder(t, nil)
	c := newClient(t, Config{URL: rec.URL})
	r := baseRequest()
	r.UserAgent = "evil\r\nX-Injected: 1"
	r.Origin = "bad\norigin"
	r.ForwardedFor = "1.2.3.4\x00"
	r.Client = "a, sentry_key=other"
	if res := c.Send(context.Background(), r); res.Class != Accepted {
		t.Fatalf("a bad header value must not fail the envelope: %+v", res)
	}
	assertHeaders(t, rec.requests()[0].header, map[string]string{
		"Content-Type":   "application/x-sentry-envelope",
		"Content-Length": fmt.Sprint(len(testEnvelope)),
		"X-Sentry-Auth":  "Sentry sentry_key=e12d836b15bb49d7bbf99e64295d995b, sentry_version=7",
	})
}

func TestSendInvalidRequestRejectedLocally(t *testing.T) {
	rec := newRecorder(t, nil)
	c := newClient(t, Config{URL: rec.URL})
	for _, r := range []Request{
		{ProjectID: 0, PublicKey: "k", Envelope: []byte(testEnvelope)},
		{ProjectID: 1, PublicKey: "", Envelope: []byte(testEnvelope)},
		{ProjectID: 1, PublicKey: "k\n", Envelope: []byte(testEnvelope)},
		{ProjectID: 1, PublicKey: "k, x=y", Envelope: []byte(testEnvelope)},
		// Keys of the right length that X-Sentry-Auth cannot carry (the rule
		// ingest applies too: envelope.CheckPublicKey).
		{ProjectID: 1, PublicKey: "e12d836b15bb49d7bbf99e64295d995,", Envelope: []byte(testEnvelope)},
		{ProjectID: 1, PublicKey: "e12d836b15bb49d7bbf99e64295d99\r\n", Envelope: []byte(testEnvelope)},
		{ProjectID: 1, PublicKey: " e12d836b15bb49d7bbf99e64295d995", Envelope: []byte(testEnvelope)},
	} {
		if res := c.Send(context.Background(), r); res.Class != Rejected || res.Err == nil || res.Status != 0 {
			t.Errorf("Send(%+v) = %+v, want a local Rejected", r, res)
		}
	}
	if n := len(rec.requests()); n != 0 {
		t.Fatalf("%d requests reached the server", n)
	}
}

func TestUpstreamURL(t *testing.T) {
	tests := []struct {
		url, wantPath string
		wantURI       string // "" = wantPath: the request target on the wire
	}{
		{"", "/api/42/envelope/", ""},
		{"/", "/api/42/envelope/", ""},
		{"/sentry", "/sentry/api/42/envelope/", ""},
		{"/sentry/", "/sentry/api/42/envelope/", ""},
		{"/sentry//", "/sentry/api/42/envelope/", ""},
		{"/a/b/", "/a/b/api/42/envelope/", ""},
		// Send builds the URL without parsing: an escaped prefix must
		// reach the upstream escaped as it was configured.
		{"/a%20b/", "/a b/api/42/envelope/", "/a%20b/api/42/envelope/"},
		{"/x%2Fy", "/x/y/api/42/envelope/", "/x%2Fy/api/42/envelope/"},
		{"/caf%C3%A9/", "/café/api/42/envelope/", "/caf%C3%A9/api/42/envelope/"},
	}
	rec := newRecorder(t, nil)
	for _, tt := range tests {
		c := newClient(t, Config{URL: rec.URL + tt.url})
		if res := c.Send(context.Background(), baseRequest()); res.Class != Accepted {
			t.Fatalf("%q: %+v", tt.url, res)
		}
		got := rec.requests()
		if p := got[len(got)-1].path; p != tt.wantPath {
			t.Errorf("upstream %q: path %q, want %q", tt.url, p, tt.wantPath)
		}
		wantURI := cmp.Or(tt.wantURI, tt.wantPath)
		if u := got[len(got)-1].uri; u != wantURI {
			t.Errorf("upstream %q: request target %q, want %q", tt.url, u, wantURI)
		}
		if err := c.Probe(context.Background()); err != nil {
			t.Fatalf("probe: %v", err)
		}
		got = rec.requests()
		if p, want := got[len(got)-1].path, strings.TrimSuffix(tt.wantPath, "42/envelope/")+"0/relays/live/"; p != want {
			t.Errorf("upstream %q: probe path %q, want %q", tt.url, p, want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	for _, cfg := range []Config{
		{URL: ""},
		{URL: "sentry.io"},
		{URL: "ftp://sentry.io/"},
		{URL: "http://"},
		{URL: "http://user:pw@sentry.io/"},
		{URL: "http://sentry.io/?x=1"},
		{URL: "http://sentry.io/#frag"},
		{URL: "http://sentry.io/", Encoding: "lz4"},
		{URL: "http://sentry.io/", Timeout: -1},
		{URL: "http://sentry.io/", RelayID: "a\nb"},
		{URL: "http://[::1"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	c, err := New(Config{URL: "https://sentry.io/"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.cfg.Encoding != EncodingIdentity || c.base != "https://sentry.io" || c.EnvelopeURL(5) != "https://sentry.io/api/5/envelope/" {
		t.Fatalf("defaults: %q %q %q", c.cfg.Encoding, c.base, c.EnvelopeURL(5))
	}
}

func decode(t testing.TB, encoding string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch encoding {
	case "":
		return b
	case EncodingGzip:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	case EncodingDeflate:
		zr, err := zlib.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("zlib: %v", err)
		}
		r = zr
	case EncodingBrotli:
		r = brotli.NewReader(bytes.NewReader(b))
	case EncodingZstd:
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("zstd: %v", err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("unexpected Content-Encoding %q", encoding)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", encoding, err)
	}
	return out
}

func TestEncodings(t *testing.T) {
	big := bytes.Repeat([]byte(testEnvelope), 5000) // ~0.9 MB, several zstd blocks
	binary := make([]byte, 300<<10)
	for i := range binary {
		binary[i] = byte(i*7919 + i>>8)
	}
	bodies := map[string][]byte{"small": []byte(testEnvelope), "big": big, "binary": binary, "empty": {}}

	rec := newRecorder(t, nil)
	for _, enc := range Encodings() {
		c := newClient(t, Config{URL: rec.URL, Encoding: enc})
		for name, body := range bodies {
			t.Run(enc+"/"+name, func(t *testing.T) {
				r := baseRequest()
				r.Envelope = body
				if res := c.Send(context.Background(), r); res.Class != Accepted {
					t.Fatalf("Send = %+v", res)
				}
				got := rec.requests()
				last := got[len(got)-1]
				ce := last.header.Get("Content-Encoding")
				if enc == EncodingIdentity {
					if _, ok := last.header["Content-Encoding"]; ok {
						t.Fatalf("identity sent Content-Encoding %q", ce)
					}
				} else if ce != enc {
					t.Fatalf("Content-Encoding %q, want %q", ce, enc)
				}
				if dec := decode(t, ce, last.body); !bytes.Equal(dec, body) {
					t.Fatalf("decoded %d bytes differ from the %d sent", len(dec), len(body))
				}
				if name == "big" && enc != EncodingIdentity && len(last.body) > len(body)/10 {
					t.Fatalf("%s did not compress: %d of %d bytes", enc, len(last.body), len(body))
				}
			})
		}
	}
}

func TestEncodingsConcurrent(t *testing.T) {
	rec := newRecorder(t, nil)
	for _, enc := range Encodings() {
		c := newClient(t, Config{URL: rec.URL, Encoding: enc})
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				r := baseRequest()
				r.Envelope = bytes.Repeat([]byte(fmt.Sprintf("payload %d|", i)), 1000+i)
				if res := c.Send(context.Background(), r); res.Class != Accepted {
					t.Errorf("%s: %+v", enc, res)
				}
			})
		}
		wg.Wait()
	}
	for _, r := range rec.requests() {
		dec := decode(t, r.header.Get("Content-Encoding"), r.body)
		var i int
		if _, err := fmt.Sscanf(string(dec), "payload %d|", &i); err != nil {
			t.Fatalf("garbled body %q…", dec[:min(len(dec), 40)])
		}
		if want := bytes.Repeat([]byte(fmt.Sprintf("payload %d|", i)), 1000+i); !bytes.Equal(dec, want) {
			t.Fatalf("body %d mixed with another request's", i)
		}
	}
}

// respond answers with status, headers and body.
func respond(status int, body string, kv ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(kv); i += 2 {
			w.Header().Add(kv[i], kv[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func TestClassification(t *testing.T) {
	const sec = time.Second
	httpDate := time.Now().Add(120 * sec).UTC().Format(http.TimeFormat)
	pastDate := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		handle     func(http.ResponseWriter, *http.Request)
		class      Class
		status     int
		retryAfter time.Duration // compared within a second for HTTP dates
		limitedFor []string      // categories the result's RateLimits must cover
		notLimited []string
		detail     string
	}{
		{name: "200", handle: respond(200, `{"id":"9ec79c33ec9942ab8353589fcb2e04dc"}`), class: Accepted, status: 200},
		{name: "202", handle: respond(202, ``), class: Accepted, status: 202},
		{name: "204", handle: respond(204, ``), class: Accepted, status: 204},
		{name: "200 with rate limits is accepted, limits reported", handle: respond(200, `{}`, "X-Sentry-Rate-Limits", "60:transaction:key"),
			class: Accepted, status: 200, limitedFor: []string{"transaction"}, notLimited: []string{"error"}},
		{name: "400", handle: respond(400, `{"detail":"invalid event envelope","causes":["EOF"]}`), class: Rejected, status: 400, detail: "invalid event envelope"},
		{name: "401", handle: respond(401, `{"detail":"missing authorization information"}`), class: Denied, status: 401, detail: "missing authorization information"},
		{name: "403", handle: respond(403, `{"detail":"event submission rejected with_reason: ProjectId"}`), class: Denied, status: 403, detail: "event submission rejected with_reason: ProjectId"},
		{name: "413", handle: respond(413, `{"detail":"envelope exceeded size limits for type 'event'"}`), class: Rejected, status: 413, detail: "envelope exceeded size limits for type 'event'"},
		{name: "415", handle: respond(415, ``), class: Rejected, status: 415},
		{name: "404 html body", handle: respond(404, `<html>nope</html>`), class: Denied, status: 404},
		{name: "403 detail object", handle: respond(403, `{"detail":{"code":"x"}}`), class: Denied, status: 403, detail: `{"code":"x"}`},
		{name: "429 retry-after seconds", handle: respond(429, `{"detail":"Sentry dropped data"}`, "Retry-After", "5"),
			class: RateLimited, status: 429, retryAfter: 5 * sec, limitedFor: []string{"error", "transaction", "anything"}, detail: "Sentry dropped data"},
		{name: "429 retry-after float", handle: respond(429, ``, "Retry-After", "2.2"), class: RateLimited, status: 429, retryAfter: 3 * sec, limitedFor: []string{"error"}},
		{name: "429 retry-after http date", handle: respond(429, ``, "Retry-After", httpDate), class: RateLimited, status: 429, retryAfter: 120 * sec, limitedFor: []string{"error"}},
		{name: "429 retry-after date in the past", handle: respond(429, ``, "Retry-After", pastDate), class: RateLimited, status: 429, retryAfter: 0, notLimited: []string{"error"}},
		{name: "429 retry-after zero", handle: respond(429, ``, "Retry-After", "0"), class: RateLimited, status: 429, retryAfter: 0, notLimited: []string{"error"}},
		{name: "429 rate limits only", handle: respond(429, ``, "X-Sentry-Rate-Limits", "60:error:organization:quota_exceeded"),
			class: RateLimited, status: 429, retryAfter: 60 * sec, limitedFor: []string{"error"}, notLimited: []string{"transaction"}},
		{name: "429 both headers: the longer wins", handle: respond(429, ``, "Retry-After", "10", "X-Sentry-Rate-Limits", "60:error:key, 30:transaction:key"),
			class: RateLimited, status: 429, retryAfter: 60 * sec, limitedFor: []string{"error", "transaction"}, notLimited: []string{"attachment"}},
		{name: "429 retry-after longer than limits", handle: respond(429, ``, "Retry-After", "90", "X-Sentry-Rate-Limits", "60:error:key"),
			class: RateLimited, status: 429, retryAfter: 90 * sec, limitedFor: []string{"error"}, notLimited: []string{"transaction"}},
		{name: "429 two rate-limit header values", handle: respond(429, ``, "X-Sentry-Rate-Limits", "20:error:key", "X-Sentry-Rate-Limits", "40:transaction:key"),
			class: RateLimited, status: 429, retryAfter: 40 * sec, limitedFor: []string{"error", "transaction"}},
		{name: "429 no headers: 60 s (SDK rule)", handle: respond(429, ``), class: RateLimited, status: 429, retryAfter: 60 * sec, limitedFor: []string{"error", "transaction"}},
		{name: "429 garbage headers: 60 s", handle: respond(429, ``, "Retry-After", "soon", "X-Sentry-Rate-Limits", "x:y:z"),
			class: RateLimited, status: 429, retryAfter: 60 * sec, limitedFor: []string{"error"}},
		{name: "429 only expired limits: synthesised from retry-after", handle: respond(429, ``, "Retry-After", "7", "X-Sentry-Rate-Limits", "0:error:key"),
			class: RateLimited, status: 429, retryAfter: 7 * sec, limitedFor: []string{"transaction"}},
		{name: "408", handle: respond(408, ``), class: Retryable, status: 408},
		{name: "500", handle: respond(500, `{"detail":"internal error"}`), class: Retryable, status: 500, detail: "internal error"},
		{name: "502", handle: respond(502, `bad gateway`), class: Retryable, status: 502},
		{name: "503 with retry-after", handle: respond(503, ``, "Retry-After", "30"), class: Retryable, status: 503, retryAfter: 30 * sec},
		{name: "504", handle: respond(504, ``), class: Retryable, status: 504},
		{name: "301 redirect is kept, not followed", handle: respond(301, ``, "Location", "https://elsewhere/"), class: Retryable, status: 301},
		{name: "308 redirect", handle: respond(308, ``, "Location", "/other/"), class: Retryable, status: 308},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, tt.handle)
			c := newClient(t, Config{URL: rec.URL})
			before := time.Now()
			res := c.Send(context.Background(), baseRequest())
			if res.Class != tt.class || res.Status != tt.status {
				t.Fatalf("Send = class %v status %d, want %v %d (%v)", res.Class, res.Status, tt.class, tt.status, res.Err)
			}
			if (res.Err == nil) != (tt.class == Accepted) {
				t.Fatalf("Err = %v for class %v", res.Err, res.Class)
			}
			if d := res.RetryAfter - tt.retryAfter; d < -time.Second || d > time.Second {
				t.Fatalf("RetryAfter = %v, want %v", res.RetryAfter, tt.retryAfter)
			}
			if tt.retryAfter%time.Second == 0 && !strings.Contains(tt.name, "date") && res.RetryAfter != tt.retryAfter {
				t.Fatalf("RetryAfter = %v, want exactly %v", res.RetryAfter, tt.retryAfter)
			}
			for _, cat := range tt.limitedFor {
				if until, ok := res.RateLimits.IsLimited([]string{cat}, before); !ok || until.Before(before.Add(time.Second)) {
					t.Errorf("category %s not limited: %v %v (%s)", cat, until, ok, res.RateLimits.Format(before))
				}
			}
			for _, cat := range tt.notLimited {
				if _, ok := res.RateLimits.IsLimited([]string{cat}, before); ok {
					t.Errorf("category %s limited: %s", cat, res.RateLimits.Format(before))
				}
			}
			if res.Detail != tt.detail {
				t.Errorf("Detail = %q, want %q", res.Detail, tt.detail)
			}
			if tt.detail != "" && !strings.Contains(res.Err.Error(), tt.detail) {
				t.Errorf("Err %q lacks the detail", res.Err)
			}
			if tt.class == Denied && !strings.Contains(res.Err.Error(), rec.URL) {
				t.Errorf("Err %q does not name the upstream URL (an operator must see where the relay is refused)", res.Err)
			}
			if n := len(rec.requests()); n != 1 {
				t.Fatalf("%d requests: a redirect was followed or a request retried", n)
			}
		})
	}
}

func TestSynthesisedLimitIsGeneric(t *testing.T) {
	rec := newRecorder(t, respond(429, ``, "Retry-After", "5"))
	c := newClient(t, Config{URL: rec.URL})
	res := c.Send(context.Background(), baseRequest())
	ls := res.RateLimits.Limits()
	if len(ls) != 1 || ls[0].ReasonCode != "generic" || ls[0].Scope != ScopeKey || len(ls[0].Categories) != 0 {
		t.Fatalf("synthesised limits = %+v", ls)
	}
	if got := res.RateLimits.Format(ls[0].Until.Add(-5 * time.Second)); got != "5::key:generic" {
		t.Fatalf("Format = %q", got)
	}
}

func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	c := newClient(t, Config{URL: "http://" + addr})
	res := c.Send(context.Background(), baseRequest())
	if res.Class != Retryable || res.Status != 0 || res.Err == nil {
		t.Fatalf("Send = %+v", res)
	}
	if err := c.Probe(context.Background()); err == nil {
		t.Fatal("probe of a closed port succeeded")
	}
}

func TestTimeouts(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slowHeaders := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	stallBody := func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"detail":`)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	for name, h := range map[string]func(http.ResponseWriter, *http.Request){"headers": slowHeaders, "body": stallBody} {
		t.Run(name, func(t *testing.T) {
			rec := newRecorder(t, h)
			c := newClient(t, Config{URL: rec.URL, Timeout: 200 * time.Millisecond})
			start := time.Now()
			res := c.Send(context.Background(), baseRequest())
			took := time.Since(start)
			if took > 3*time.Second {
				t.Fatalf("Send took %v with a 200 ms timeout", took)
			}
			switch name {
			case "headers":
				if res.Class != Retryable || res.Err == nil {
					t.Fatalf("Send = %+v", res)
				}
			case "body":
				// The status arrived: a 400 stays a 400, its detail is lost.
				if res.Class != Rejected || res.Status != 400 || res.Detail != "" {
					t.Fatalf("Send = %+v", res)
				}
			}
		})
	}
}

func TestConnectTimeout(t *testing.T) {
	// 192.0.2.0/24 (TEST-NET-1) is not routed: the SYN goes nowhere. Where
	// the host answers "unreachable" at once instead, the result is the same
	// class, only sooner.
	c := newClient(t, Config{URL: "http://192.0.2.1:9/", ConnectionTimeout: 150 * time.Millisecond})
	start := time.Now()
	res := c.Send(context.Background(), baseRequest())
	if res.Class != Retryable || time.Since(start) > 3*time.Second {
		t.Fatalf("Send = %+v after %v", res, time.Since(start))
	}
}

func TestContextCancelled(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	c := newClient(t, Config{URL: rec.URL})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	res := c.Send(ctx, baseRequest())
	if res.Class != Retryable || !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Fatalf("Send = %+v", res)
	}
}

func TestRejectedDetailBounded(t *testing.T) {
	long := strings.Repeat("x", 10_000)
	rec := newRecorder(t, respond(400, `{"detail":"`+long+`"}`))
	c := newClient(t, Config{URL: rec.URL})
	res := c.Send(context.Background(), baseRequest())
	if res.Class != Rejected || len(res.Detail) > maxDetail+len("…") || !strings.HasPrefix(res.Detail, "xxx") {
		t.Fatalf("Send: class %v, detail of %d bytes", res.Class, len(res.Detail))
	}
}

func TestConnectionsReused(t *testing.T) {
	var conns atomic.Int64
	bigErr := `{"detail":"nope","pad":"` + strings.Repeat("p", 8<<10) + `"}`
	statuses := []int{200, 400, 429, 500, 503, 202}
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s := statuses[n.Add(1)%int64(len(statuses))]
		w.WriteHeader(s)
		if s != 200 && s != 202 {
			_, _ = io.WriteString(w, bigErr)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newClient(t, Config{URL: srv.URL, Encoding: EncodingGzip})
	for range 60 {
		c.Send(context.Background(), baseRequest())
	}
	if got := conns.Load(); got != 1 {
		t.Fatalf("60 sequential sends used %d connections, want 1 (bodies not drained?)", got)
	}
}

func TestProbe(t *testing.T) {
	for _, tt := range []struct {
		status int
		up     bool
	}{{200, true}, {204, true}, {401, true}, {403, true}, {404, true}, {429, true}, {500, false}, {502, false}, {503, false}} {
		rec := newRecorder(t, respond(tt.status, `{"is_healthy":true}`))
		c := newClient(t, Config{URL: rec.URL + "/prefix/", RelayID: "r1"})
		err := c.Probe(context.Background())
		if (err == nil) != tt.up {
			t.Errorf("status %d: Probe = %v, want up=%v", tt.status, err, tt.up)
		}
		r := rec.requests()[0]
		if r.method != http.MethodGet || r.path != "/prefix/api/0/relays/live/" || r.header.Get("X-Sentry-Relay-Id") != "r1" {
			t.Errorf("probe request %s %s %v", r.method, r.path, r.header)
		}
	}
}

func TestProbeHonoursContext(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	c := newClient(t, Config{URL: rec.URL, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Probe(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Probe = %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		v    string
		d    time.Duration
		ok   bool
		name string
	}{
		{"", 0, false, "absent"},
		{"5", 5 * time.Second, true, "seconds"},
		{" 5 ", 5 * time.Second, true, "spaces"},
		{"0.1", time.Second, true, "float rounds up"},
		{"0", 0, true, "zero"},
		{"-3", 0, true, "negative"},
		{"NaN", 0, false, "nan"},
		{"1e300", 0, false, "overflow"},
		{"Mon, 23 Nov 2026 12:01:00 GMT", time.Minute, true, "imf date"},
		{"Monday, 23-Nov-26 12:01:00 GMT", time.Minute, true, "rfc850 date"},
		{"Mon Nov 23 12:01:00 2026", time.Minute, true, "asctime"},
		{"Mon, 23 Nov 2026 11:00:00 GMT", 0, true, "past date"},
		{"tomorrow", 0, false, "garbage"},
	} {
		d, ok := parseRetryAfter(tt.v, now)
		if d != tt.d || ok != tt.ok {
			t.Errorf("%s: parseRetryAfter(%q) = %v, %v; want %v, %v", tt.name, tt.v, d, ok, tt.d, tt.ok)
		}
	}
}

func TestClassString(t *testing.T) {
	for c, want := range map[Class]string{Accepted: "accepted", RateLimited: "rate_limited", Retryable: "retryable", Rejected: "rejected", Denied: "denied", Class(9): "class(9)"} {
		if c.String() != want {
			t.Errorf("%d.String() = %q", int(c), c.String())
		}
	}
}

// TestStaleKeepAlive: an upstream that restarted (or closed idle
// connections) leaves dead connections in the pool; the next Send must not
// fail because it picked one.
func TestStaleKeepAlive(t *testing.T) {
	rec := newRecorder(t, nil)
	c := newClient(t, Config{URL: rec.URL})
	for i := range 50 {
		if res := c.Send(context.Background(), baseRequest()); res.Class != Accepted {
			t.Fatalf("send %d: %+v", i, res)
		}
		rec.CloseClientConnections()
	}
	if n := len(rec.requests()); n != 50 {
		t.Fatalf("server saw %d requests, want 50", n)
	}
}

// TestNoReplayAfterTimeout: the stale-connection replay must not turn a
// slow upstream into two requests and twice the wait.
func TestNoReplayAfterTimeout(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			return // 200, and the connection goes back to the pool
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	c := newClient(t, Config{URL: rec.URL, Timeout: 200 * time.Millisecond})
	if res := c.Send(context.Background(), baseRequest()); res.Class != Accepted {
		t.Fatalf("first: %+v", res)
	}
	start := time.Now()
	res := c.Send(context.Background(), baseRequest())
	if res.Class != Retryable || time.Since(start) > 2*time.Second {
		t.Fatalf("second: %+v after %v", res, time.Since(start))
	}
	time.Sleep(100 * time.Millisecond)
	if n := calls.Load(); n != 2 {
		t.Fatalf("server saw %d requests, want 2", n)
	}
}

// TestZstdFrameWithoutChecksum: the zstd body is a frame without the
// optional content checksum, as libzstd (and so Relay) writes it by default;
// computing one cost an xxhash64 of every envelope on each send.
func TestZstdFrameWithoutChecksum(t *testing.T) {
	comp, err := newCompressor(EncodingZstd)
	if err != nil {
		t.Fatal(err)
	}
	defer comp.close()
	for _, body := range [][]byte{[]byte(testEnvelope), bytes.Repeat([]byte(testEnvelope), 5000)} {
		out, err := comp.compress(body)
		if err != nil {
			t.Fatal(err)
		}
		// RFC 8878 §3.1.1: magic 28 B5 2F FD, then the frame header
		// descriptor, whose bit 2 is the Content_Checksum_flag.
		if len(out) < 5 || !bytes.Equal(out[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
			t.Fatalf("not a zstd frame: % x", out[:min(len(out), 8)])
		}
		if out[4]&0x04 != 0 {
			t.Fatalf("%d-byte body: frame carries a content checksum (descriptor %#02x)", len(body), out[4])
		}
		if dec := decode(t, EncodingZstd, out); !bytes.Equal(dec, body) {
			t.Fatalf("round trip: %d bytes decoded, %d sent", len(dec), len(body))
		}
	}
}

// The request Send builds by hand has what http.NewRequest would have
// given it: the URL (escaped as configured), the Host without an empty
// port, the body with its length, and a GetBody that rewinds it.
func TestEnvelopeRequestShape(t *testing.T) {
	for _, tt := range []struct {
		upstream, wantURL, wantHost string
	}{
		{"https://sentry.io", "https://sentry.io/api/42/envelope/", "sentry.io"},
		{"https://sentry.io:/", "https://sentry.io:/api/42/envelope/", "sentry.io"},
		{"http://127.0.0.1:9000/a%20b/", "http://127.0.0.1:9000/a%20b/api/42/envelope/", "127.0.0.1:9000"},
	} {
		c := newClient(t, Config{URL: tt.upstream})
		body := []byte(testEnvelope)
		req, err := c.newEnvelopeRequest(context.Background(), baseRequest(), body)
		if err != nil {
			t.Fatalf("%s: %v", tt.upstream, err)
		}
		want, err := http.NewRequest(http.MethodPost, tt.wantURL, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if req.URL.String() != want.URL.String() || req.Host != want.Host || req.Host != tt.wantHost ||
			req.Method != want.Method || req.ContentLength != want.ContentLength || req.Proto != want.Proto {
			t.Errorf("%s: got %s %s host %q len %d %s; http.NewRequest gives %s %s host %q len %d %s", tt.upstream,
				req.Method, req.URL, req.Host, req.ContentLength, req.Proto, want.Method, want.URL, want.Host, want.ContentLength, want.Proto)
		}
		for i := range 2 {
			rc, err := req.GetBody()
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := io.ReadAll(rc); !bytes.Equal(b, body) {
				t.Errorf("%s: GetBody #%d gave %q", tt.upstream, i, b)
			}
		}
		if b, _ := io.ReadAll(req.Body); !bytes.Equal(b, body) {
			t.Errorf("%s: Body gave %q", tt.upstream, b)
		}
	}
}
