package ingest

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/testfixture"
)

// capturedRequest is one recorded request (testfixture.SDKDir): the request line
// and headers of NAME.headers, and the body as the client sent it.
type capturedRequest struct {
	name    string
	method  string
	target  string // path and query
	header  http.Header
	chunked bool
	wire    []byte // the body as sent (compressed if the client compressed)
	decoded []byte // the body decoded: what the relay must see
}

// loadCaptures reads every captured request with a body.
func loadCaptures(t testing.TB) []capturedRequest {
	t.Helper()
	dir := testfixture.SDKDir(t)
	heads, err := filepath.Glob(filepath.Join(dir, "*.headers"))
	if err != nil || len(heads) == 0 {
		t.Fatalf("no captured requests in %s (%v)", dir, err)
	}
	var out []capturedRequest
	for _, hp := range heads {
		name := strings.TrimSuffix(filepath.Base(hp), ".headers")
		c := parseCaptureHeaders(t, hp)
		c.name = name
		body, err := os.ReadFile(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			continue // headers-only capture (the CORS preflight)
		}
		if err != nil {
			t.Fatal(err)
		}
		c.decoded, c.wire = body, body
		if gz, err := os.ReadFile(filepath.Join(dir, name+".gz")); err == nil {
			c.wire = gz
		}
		out = append(out, c)
	}
	return out
}

func parseCaptureHeaders(t testing.TB, path string) capturedRequest {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		t.Fatalf("%s: empty", path)
	}
	parts := strings.Fields(sc.Text())
	if len(parts) != 3 {
		t.Fatalf("%s: bad request line %q", path, sc.Text())
	}
	c := capturedRequest{method: parts[0], target: parts[1], header: http.Header{}}
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("%s: bad header line %q", path, line)
		}
		k, v = http.CanonicalHeaderKey(strings.TrimSpace(k)), strings.TrimSpace(v)
		switch k {
		case "Host", "Content-Length", "Connection":
			// the client computes these
		case "Transfer-Encoding":
			c.chunked = strings.EqualFold(v, "chunked")
		default:
			c.header[k] = append(c.header[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return c
}

// replayTarget maps a capture to the relay: tunnel captures (POST /tunnel to
// the app's own server, which passes the body on) go to the envelope endpoint
// with no credentials, exactly as a tunnel forwards them.
func replayTarget(c capturedRequest) string {
	if c.target == "/tunnel" {
		return "/api/42/envelope/"
	}
	return c.target
}

// expectedItems is what the fixture's items are: the envelope's own items, or
// for store captures one event item holding the decoded JSON.
func expectedStoreJSON(t testing.TB, c capturedRequest) []byte {
	t.Helper()
	if !strings.HasSuffix(c.name, ".b64zlib") {
		return c.decoded
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(c.decoded)))
	if err != nil {
		t.Fatalf("%s: base64: %v", c.name, err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: zlib: %v", c.name, err)
	}
	js, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: zlib: %v", c.name, err)
	}
	return js
}

// TestReplayCaptures replays every captured SDK request: each gets 200, one
// message is published, and the published envelope's items are byte for byte
// the fixture's (whole envelope unchanged when no event id had to be added).
func TestReplayCaptures(t *testing.T) {
	pub := &fakePublisher{}
	ts := startServer(t, New(testConfig(), pub, nil, testLogger(t)))
	caps := loadCaptures(t)
	if len(caps) < 70 {
		t.Fatalf("only %d captures found", len(caps))
	}
	for _, c := range caps {
		t.Run(c.name, func(t *testing.T) {
			before := len(pub.messages())
			res := do(t, c.method, ts.URL+replayTarget(c), c.header, c.wire, c.chunked)
			if res.status != 200 {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			msgs := pub.messages()
			if len(msgs) != before+1 {
				t.Fatalf("published %d messages, want 1", len(msgs)-before)
			}
			assertCarried(t, c, msgs[before], res.body)
		})
	}
}

// assertCarried checks that message m, published for capture c (answered
// with answer), carries the capture's items byte for byte (the whole envelope
// unchanged when no event id had to be added) and the request's identity.
func assertCarried(t *testing.T, c capturedRequest, m stream.Message, answer []byte) {
	t.Helper()
	if m.ProjectID != 42 || m.PublicKey != testKey {
		t.Errorf("project %d key %q", m.ProjectID, m.PublicKey)
	}
	if ua := c.header.Get("User-Agent"); m.UserAgent != ua {
		t.Errorf("user agent %q, want %q", m.UserAgent, ua)
	}
	if o := c.header.Get("Origin"); m.Origin != o {
		t.Errorf("origin %q, want %q", m.Origin, o)
	}
	if c.target == "/tunnel" && m.Client != "" || c.target != "/tunnel" && m.Client == "" && !strings.HasPrefix(c.name, "raven") {
		t.Errorf("client %q", m.Client)
	}
	got, err := envelope.Parse(m.Envelope)
	if err != nil {
		t.Fatalf("published envelope does not parse: %v", err)
	}
	if m.EventID != got.Header.EventID {
		t.Errorf("message event id %q, envelope header %q", m.EventID, got.Header.EventID)
	}
	wantAnswer := `{}`
	if got.Header.EventID != "" {
		wantAnswer = `{"id":"` + got.Header.EventID + `"}`
	}
	if string(answer) != wantAnswer {
		t.Errorf("answer %s, want %s", answer, wantAnswer)
	}

	if strings.Contains(c.name, ".store.") {
		js := expectedStoreJSON(t, c)
		if len(got.Items) != 1 || got.Items[0].Type != "event" || !bytes.Equal(got.Items[0].Payload, js) {
			t.Fatalf("store event not carried byte for byte: %q", m.Envelope)
		}
		if !hex32.MatchString(got.Header.EventID) {
			t.Fatalf("store envelope without event id: %q", m.Envelope)
		}
		return
	}
	want, err := envelope.Parse(c.decoded)
	if err != nil {
		t.Fatalf("fixture does not parse: %v", err)
	}
	if want.Header.EventID != "" || !want.RequiresEventID() {
		if !bytes.Equal(m.Envelope, c.decoded) {
			t.Fatalf("envelope changed on the way:\n got %q\nwant %q", m.Envelope, c.decoded)
		}
	}
	if len(got.Items) != len(want.Items) {
		t.Fatalf("%d items, want %d", len(got.Items), len(want.Items))
	}
	for i := range want.Items {
		if got.Items[i].Type != want.Items[i].Type || !bytes.Equal(got.Items[i].Payload, want.Items[i].Payload) {
			t.Fatalf("item %d differs: %s %q, want %s %q", i,
				got.Items[i].Type, got.Items[i].Payload, want.Items[i].Type, want.Items[i].Payload)
		}
	}
}

// TestReplayPreflight replays Chromium's captured CORS preflight.
func TestReplayPreflight(t *testing.T) {
	c := parseCaptureHeaders(t, filepath.Join(testfixture.SDKDir(t), "browser-cors-preflight.headers"))
	ts := startServer(t, New(testConfig(), &fakePublisher{}, nil, testLogger(t)))
	res := do(t, c.method, ts.URL+c.target, c.header, nil, false)
	assertPreflight(t, res)
}
