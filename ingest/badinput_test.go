package ingest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// eventEnvelope is a small valid envelope with one event item.
func eventEnvelope(eventID string, payload string) []byte {
	h := `{}`
	if eventID != "" {
		h = `{"event_id":"` + eventID + `"}`
	}
	return []byte(h + "\n" + `{"type":"event","length":` + strconv.Itoa(len(payload)) + "}\n" + payload + "\n")
}

const testEventID = "9ec79c33ec9942ab8353589fcb2e04dc"

var validEnvelope = eventEnvelope(testEventID, `{"message":"hello","level":"error"}`)

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gzipBomb is 1 GiB of zeros, gzipped (about 1 MB): one gzip member holding
// 1 MiB of zeros, repeated 1024 times (gzip readers decode concatenated
// members as one stream), so building it costs one 1 MiB compression.
var gzipBomb = sync.OnceValue(func() []byte {
	var member bytes.Buffer
	zw, err := gzip.NewWriterLevel(&member, gzip.BestCompression)
	if err != nil {
		panic(err)
	}
	if _, err := zw.Write(make([]byte, 1<<20)); err != nil {
		panic(err)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return bytes.Repeat(member.Bytes(), 1024)
})

// doRaw sends a request over its own connection and reads the answer even
// when the server answers before reading the whole body (413 on a large or
// bomb body) and closes: net/http's client may report the write error instead
// of the response in that race, so this client writes in the background and
// only reads.
func doRaw(t testing.TB, addr, method, target string, header http.Header, body []byte, chunked bool) response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
		if chunked {
			rd = io.MultiReader(rd)
		}
	}
	req, err := http.NewRequest(method, "http://"+addr+target, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	written := make(chan struct{})
	go func() {
		defer close(written)
		_ = req.Write(conn) // fails when the server closes early: expected
	}()
	res, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("%s %s: read response: %v", method, target, err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read response body: %v", err)
	}
	conn.Close()
	<-written
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// TestBadInput is the bad-input table of the spine issue: every case gets
// Relay's status and detail (also in X-Sentry-Error), and nothing reaches the
// publisher.
func TestBadInput(t *testing.T) {
	pub := &fakePublisher{}
	cfg := testConfig()
	cfg.MaxEnvelopeSize = 4 << 20 // above the 1 MiB event item limit, small enough to test
	cfg.MaxEventSize = 64 << 10
	s := New(cfg, pub, nil, testLogger(t))
	ts := startServer(t, s)
	addr := ts.Listener.Addr().String()

	auth := hdr("X-Sentry-Auth", testAuth)
	withAuth := func(kv ...string) http.Header {
		h := hdr(kv...)
		h.Set("X-Sentry-Auth", testAuth)
		return h
	}
	bigEvent := `{"message":"` + strings.Repeat("x", 1<<20) + `"}`
	truncated := validEnvelope[:len(validEnvelope)-12]
	var zstdCorrupt bytes.Buffer
	zw, _ := zstd.NewWriter(&zstdCorrupt)
	_, _ = zw.Write(validEnvelope)
	_ = zw.Close()
	zstdBytes := zstdCorrupt.Bytes()
	zstdBytes[len(zstdBytes)/2] ^= 0xff
	var brBuf bytes.Buffer
	bw := brotli.NewWriter(&brBuf)
	_, _ = bw.Write(validEnvelope)
	_ = bw.Close()
	brCorrupt := brBuf.Bytes()[:brBuf.Len()/2]
	gz := gzipBytes(t, validEnvelope)
	gzCorrupt := append([]byte(nil), gz...)
	gzCorrupt[len(gzCorrupt)-6] ^= 0xff // CRC no longer matches
	dsnEnvelope := func(dsn string) []byte {
		return []byte(`{"event_id":"` + testEventID + `","dsn":"` + dsn + `"}` + "\n" + `{"type":"event"}` + "\n{}\n")
	}

	cases := []struct {
		name    string
		method  string
		path    string
		header  http.Header
		body    []byte
		chunked bool
		status  int
		detail  string
		cause   string // substring of the first cause, "" = not checked
	}{
		{name: "malformed envelope header", path: "/api/42/envelope/", header: auth,
			body: []byte("{\"event_id\":\n{\"type\":\"event\"}\n{}\n"), status: 400, detail: "invalid event envelope"},
		{name: "envelope header not an object", path: "/api/42/envelope/", header: auth,
			body: []byte("[1,2]\n{\"type\":\"event\"}\n{}\n"), status: 400, detail: "invalid event envelope"},
		{name: "malformed item header", path: "/api/42/envelope/", header: auth,
			body: []byte("{}\n{\"type\":\n{}\n"), status: 400, detail: "invalid event envelope"},
		{name: "item without type", path: "/api/42/envelope/", header: auth,
			body: []byte("{}\n{\"length\":2}\n{}\n"), status: 400, detail: "invalid event envelope"},
		{name: "length longer than payload", path: "/api/42/envelope/", header: auth,
			body: []byte("{}\n{\"type\":\"event\",\"length\":100}\n{\"a\":1}\n"), status: 400, detail: "invalid event envelope"},
		{name: "length shorter than payload", path: "/api/42/envelope/", header: auth,
			body: []byte("{}\n{\"type\":\"event\",\"length\":3}\n{\"a\":1}\n"), status: 400, detail: "invalid event envelope"},
		{name: "truncated body", path: "/api/42/envelope/", header: auth, body: truncated,
			status: 400, detail: "invalid event envelope"},
		{name: "empty body", path: "/api/42/envelope/", header: auth, body: []byte{},
			status: 400, detail: "empty request body"},
		{name: "empty store body", path: "/api/42/store/", header: auth, body: []byte{},
			status: 400, detail: "empty request body"},
		{name: "store body not JSON", path: "/api/42/store/", header: withAuth("Content-Type", "application/json"),
			body: []byte("{not json"), status: 400, detail: "invalid JSON data"},

		{name: "no auth on store", path: "/api/42/store/", body: []byte(`{"message":"x"}`),
			status: 401, detail: "missing authorization information"},
		{name: "no auth, envelope without dsn", path: "/api/42/envelope/", body: validEnvelope,
			status: 401, detail: "bad envelope authentication header"},
		{name: "no auth, empty envelope body", path: "/api/42/envelope/", body: []byte{},
			status: 401, detail: "bad envelope authentication header"},
		{name: "no auth, envelope dsn not a DSN", path: "/api/42/envelope/", body: dsnEnvelope("not a dsn"),
			status: 401, detail: "bad envelope authentication header"},
		{name: "no auth, envelope dsn with short key", path: "/api/42/envelope/",
			body:   dsnEnvelope("http://abc@127.0.0.1/42"),
			status: 401, detail: "bad envelope authentication header"},
		{name: "auth header without key", path: "/api/42/envelope/",
			header: hdr("X-Sentry-Auth", "Sentry sentry_version=7, sentry_client=x"), body: validEnvelope,
			status: 401, detail: "bad x-sentry-auth header", cause: "missing public key"},
		{name: "auth header bad version", path: "/api/42/envelope/",
			header: hdr("X-Sentry-Auth", "Sentry sentry_key="+testKey+", sentry_version=seven"), body: validEnvelope,
			status: 401, detail: "bad x-sentry-auth header", cause: "invalid value for version"},
		{name: "query without key", path: "/api/42/envelope/?sentry_version=7", body: validEnvelope,
			status: 401, detail: "bad x-sentry-auth header"},
		{name: "header and query", path: "/api/42/envelope/?sentry_key=" + testKey, header: auth, body: validEnvelope,
			status: 401, detail: "multiple authorization payloads detected"},
		{name: "X-Sentry-Auth and Authorization", path: "/api/42/envelope/",
			header: withAuth("Authorization", "Sentry sentry_key="+testKey), body: validEnvelope,
			status: 401, detail: "multiple authorization payloads detected"},
		{name: "X-Sentry-Auth and Basic", path: "/api/42/envelope/",
			header: withAuth("Authorization", "Basic MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY6"), body: validEnvelope,
			status: 401, detail: "multiple authorization payloads detected"},
		{name: "short public key", path: "/api/42/envelope/",
			header: hdr("X-Sentry-Auth", "Sentry sentry_key=abc"), body: validEnvelope,
			status: 400, detail: "bad sentry DSN public key"},
		{name: "long public key", path: "/api/42/envelope/?sentry_key=" + testKey + "0", body: validEnvelope,
			status: 400, detail: "bad sentry DSN public key"},
		{name: "protocol version 8", path: "/api/42/envelope/",
			header: hdr("X-Sentry-Auth", "Sentry sentry_key="+testKey+", sentry_version=8"), body: validEnvelope,
			status: 400, detail: "unsupported protocol version (8)"},
		{name: "protocol version 8 in query", path: "/api/42/store/?sentry_key=" + testKey + "&sentry_version=8",
			body: []byte(`{}`), status: 400, detail: "unsupported protocol version (8)"},
		{name: "project id not a number", path: "/api/abc/envelope/", header: auth, body: validEnvelope,
			status: 400, detail: "bad project path parameter"},
		{name: "project id negative", path: "/api/-1/store/", header: auth, body: []byte(`{}`),
			status: 400, detail: "bad project path parameter"},
		{name: "project id overflows u64", path: "/api/18446744073709551616/envelope/", header: auth, body: validEnvelope,
			status: 400, detail: "bad project path parameter"},
		{name: "legacy store without any project", path: "/api/store/", header: withAuth("Content-Type", "application/json"),
			body: []byte(`{"message":"x"}`), status: 400, detail: "bad project path parameter"},
		{name: "envelope dsn names another project", path: "/api/42/envelope/", header: auth,
			body:   dsnEnvelope("http://" + testKey + "@127.0.0.1/43"),
			status: 400, detail: "invalid event envelope", cause: "project id header mismatch between envelope and request"},
		{name: "envelope dsn names another key", path: "/api/42/envelope/", header: auth,
			body:   dsnEnvelope("http://" + strings.Repeat("f", 32) + "@127.0.0.1/42"),
			status: 400, detail: "invalid event envelope", cause: "public key header mismatch between envelope and request"},

		{name: "corrupt gzip", path: "/api/42/envelope/", header: withAuth("Content-Encoding", "gzip"),
			body: gzCorrupt, status: 400, detail: "invalid compression", cause: "gzip:"},
		{name: "not gzip at all", path: "/api/42/envelope/", header: withAuth("Content-Encoding", "gzip"),
			body: validEnvelope, status: 400, detail: "invalid compression"},
		{name: "truncated gzip", path: "/api/42/envelope/", header: withAuth("Content-Encoding", "gzip"),
			body: gz[:len(gz)/2], status: 400, detail: "invalid compression"},
		{name: "corrupt deflate", path: "/api/42/envelope/", header: withAuth("Content-Encoding", "deflate"),
			body: []byte{0x78, 0x9c, 0xff, 0xff, 0xff, 0x00}, status: 400, detail: "invalid compression"},
		{name: "corrupt zstd", path: "/api/42/envelope/", header: withAuth("Content-Encoding", "zstd"),
			body: zstdBytes, status: 400, detail: "invalid compression"},
		{name: "truncated brotli", path: "/api/42/envelope/", header: withAuth("Content-Encoding", "br"),
			body: brCorrupt, status: 400, detail: "invalid compression"},
		{name: "unknown encoding", path: "/api/42/envelope/", header: withAuth("Content-Encoding", "compress"),
			body: validEnvelope, status: 415, detail: "unsupported content encoding"},
		{name: "gzip bomb", path: "/api/42/envelope/", header: withAuth("Content-Encoding", "gzip"),
			body: gzipBomb(), status: 413, detail: "failed to read request body"},
		{name: "gzip bomb chunked", path: "/api/42/envelope/", header: withAuth("Content-Encoding", "gzip"),
			body: gzipBomb(), chunked: true, status: 413, detail: "failed to read request body"},
		{name: "oversize body", path: "/api/42/envelope/", header: auth,
			body: bytes.Repeat([]byte{'x'}, 4<<20+1), status: 413, detail: "failed to read request body"},
		{name: "oversize body chunked", path: "/api/42/envelope/", header: auth,
			body: bytes.Repeat([]byte{'x'}, 4<<20+1), chunked: true, status: 413, detail: "failed to read request body"},
		{name: "oversize store body", path: "/api/42/store/", header: auth,
			body: bytes.Repeat([]byte{' '}, 64<<10+1), status: 413, detail: "failed to read request body"},
		{name: "oversize event item", path: "/api/42/envelope/", header: auth,
			body:   eventEnvelope(testEventID, bigEvent),
			status: 413, detail: "envelope exceeded size limits for type 'event' (https://develop.sentry.dev/sdk/envelopes/#size-limits)"},

		{name: "internal item type", path: "/api/42/envelope/", header: auth,
			body: []byte("{}\n{\"type\":\"integration\"}\n{}\n"), status: 400, detail: "envelope contains internal items"},
		{name: "envelope origin differs from request", path: "/api/42/envelope/",
			header: withAuth("Origin", "http://a.example"),
			body:   []byte(`{"origin":"http://b.example"}` + "\n{\"type\":\"event\"}\n{}\n"),
			status: 400, detail: "invalid event envelope", cause: "origin header mismatch between envelope and request"},
		{name: "envelope origin without request origin", path: "/api/42/envelope/", header: auth,
			body:   []byte(`{"origin":"http://b.example"}` + "\n{\"type\":\"event\"}\n{}\n"),
			status: 400, detail: "invalid event envelope", cause: "origin header mismatch between envelope and request"},
		{name: "store body neither JSON nor base64", path: "/api/42/store/", header: withAuth("Content-Type", "application/octet-stream"),
			body: []byte("!!!not base64"), status: 400, detail: "invalid request body"},
		{name: "store base64 zlib bomb", path: "/api/42/store/", header: withAuth("Content-Type", "application/octet-stream"),
			body:   []byte(base64.StdEncoding.EncodeToString(compress(t, "deflate", bytes.Repeat([]byte{' '}, 2<<20)))),
			status: 413, detail: "envelope exceeded size limits for type 'event' (https://develop.sentry.dev/sdk/envelopes/#size-limits)"},
		{name: "unknown route", path: "/api/42/envelope", header: auth, body: validEnvelope,
			status: 404, detail: "not found"},
		{name: "outside api", path: "/", method: "GET", status: 404, detail: "not found"},
		{name: "GET envelope", path: "/api/42/envelope/", method: "GET", header: auth,
			status: 405, detail: "method not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			res := doRaw(t, addr, method, tc.path, tc.header, tc.body, tc.chunked)
			if res.status != tc.status {
				t.Fatalf("status = %d, want %d (body %s)", res.status, tc.status, res.body)
			}
			e := res.errorBody(t)
			if e.Detail != tc.detail {
				t.Errorf("detail = %q, want %q", e.Detail, tc.detail)
			}
			if got := res.header.Get("X-Sentry-Error"); got != tc.detail {
				t.Errorf("X-Sentry-Error = %q, want %q", got, tc.detail)
			}
			if tc.cause != "" && (len(e.Causes) == 0 || !strings.Contains(e.Causes[0], tc.cause)) {
				t.Errorf("causes = %q, want one containing %q", e.Causes, tc.cause)
			}
			if ct := res.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			assertCommonHeaders(t, res)
		})
	}
	if msgs := pub.messages(); len(msgs) != 0 {
		t.Fatalf("bad input reached the publisher: %d messages, first envelope %q", len(msgs), msgs[0].Envelope)
	}
}
