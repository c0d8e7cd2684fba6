package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"regexp"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/relayhq/relay/internal/envelope"
)

// testMinidump returns a small valid minidump: the 32-byte MINIDUMP_HEADER
// (signature, version, no streams) a crash reporter writes first.
func testMinidump() []byte {
	b := make([]byte, 32)
	copy(b, "MDMP")
	binary.LittleEndian.PutUint32(b[4:], 0xa793) // MINIDUMP_VERSION
	binary.LittleEndian.PutUint32(b[8:], 0)      // NumberOfStreams
	binary.LittleEndian.PutUint32(b[12:], 32)    // StreamDirectoryRva
	binary.LittleEndian.PutUint32(b[20:], 1764940000)
	return b
}

func gzipped(t testing.TB, b []byte) []byte {
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

func zstded(t testing.TB, b []byte) []byte {
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}

// formPart is one part of a multipart test body: a file when filename is set.
type formPart struct{ field, filename, contentType, data string }

func multipartBody(t testing.TB, parts ...formPart) (body []byte, contentType string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		if p.filename != "" {
			h.Set("Content-Disposition", `form-data; name="`+p.field+`"; filename="`+p.filename+`"`)
		} else {
			h.Set("Content-Disposition", `form-data; name="`+p.field+`"`)
		}
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(p.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), mw.FormDataContentType()
}

// chromiumCSP is a CSP violation report as Chromium posts it
// (Content-Type: application/csp-report).
const chromiumCSP = `{"csp-report":{"document-uri":"https://example.com/page","referrer":"","violated-directive":"script-src-elem","effective-directive":"script-src-elem","original-policy":"default-src 'self'; report-uri https://relay.example/api/42/security/?sentry_key=` + testKey + `","disposition":"enforce","blocked-uri":"https://evil.example/x.js","status-code":200,"script-sample":""}}`

// wantUploadItem is what a test expects of one published item.
type wantUploadItem struct {
	typ     string
	headers map[string]string
	payload []byte
}

var hyphenatedUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestUploadRoutes(t *testing.T) {
	dump := testMinidump()
	const eventID = "9ec79c33ec9942ab8353589fcb2e04dc"
	mpDump, mpDumpCT := multipartBody(t,
		formPart{field: "sentry", data: `{"event_id":"` + eventID + `","release":"app@1"}`},
		formPart{field: "prod", data: "Electron"},
		formPart{field: "upload_file_minidump", filename: "crash.dmp.gz", data: string(gzipped(t, dump))},
		formPart{field: "log", filename: "app.log", contentType: "text/plain", data: "started\n"},
	)
	mpNoDump, mpNoDumpCT := multipartBody(t, formPart{field: "log", filename: "app.log", data: "x"})
	mpAttach, mpAttachCT := multipartBody(t,
		formPart{field: "file", filename: "screenshot.png", contentType: "image/png", data: "\x89PNG\r\n\x1a\nfake"},
		formPart{field: "other", filename: "notes.txt", data: "hello"},
	)
	mpEmpty, mpEmptyCT := multipartBody(t)
	auth := "?sentry_key=" + testKey

	tests := []struct {
		name       string
		path       string
		header     http.Header
		body       []byte
		wantStatus int
		wantDetail string            // error answers
		wantEvent  string            // "" any (checked to be 32 hex)
		wantHeader map[string]string // envelope header members
		wantItems  []wantUploadItem
	}{
		{
			name: "minidump raw", path: "/api/42/minidump/" + auth,
			header: hdr("Content-Type", "application/octet-stream"), body: dump, wantStatus: 200,
			wantItems: []wantUploadItem{{typ: "attachment", payload: dump, headers: map[string]string{
				"attachment_type": "event.minidump", "filename": "Minidump", "content_type": "application/x-dmp"}}},
		},
		{
			name: "minidump without trailing slash, x-dmp, gzip container", path: "/api/42/minidump" + auth,
			header: hdr("Content-Type", "application/x-dmp"), body: gzipped(t, dump), wantStatus: 200,
			wantItems: []wantUploadItem{{typ: "attachment", payload: dump, headers: map[string]string{"attachment_type": "event.minidump"}}},
		},
		{
			name: "minidump zstd container", path: "/api/42/minidump/" + auth,
			header: hdr("Content-Type", "application/octet-stream"), body: zstded(t, dump), wantStatus: 200,
			wantItems: []wantUploadItem{{typ: "attachment", payload: dump, headers: map[string]string{"attachment_type": "event.minidump"}}},
		},
		{
			name: "minidump multipart", path: "/api/42/minidump/",
			header: hdr("Content-Type", mpDumpCT, "X-Sentry-Auth", testAuth), body: mpDump, wantStatus: 200,
			wantEvent: eventID,
			wantItems: []wantUploadItem{
				{typ: "attachment", payload: dump, headers: map[string]string{
					"attachment_type": "event.minidump", "filename": "crash.dmp", "content_type": "application/octet-stream"}},
				{typ: "attachment", payload: []byte("started\n"), headers: map[string]string{
					"attachment_type": "event.attachment", "filename": "app.log", "content_type": "text/plain"}},
				{typ: "form_data", payload: []byte(`sentry={"event_id":"` + eventID + `","release":"app@1"}` + "\x00prod=Electron")},
			},
		},
		{
			name: "minidump bad magic", path: "/api/42/minidump/" + auth,
			header: hdr("Content-Type", "application/octet-stream"), body: []byte("NOTADUMP"),
			wantStatus: 400, wantDetail: "invalid minidump",
		},
		{
			name: "minidump compressed garbage", path: "/api/42/minidump/" + auth,
			header: hdr("Content-Type", "application/octet-stream"), body: gzipped(t, []byte("hello")),
			wantStatus: 400, wantDetail: "invalid minidump",
		},
		{
			name: "minidump multipart without dump", path: "/api/42/minidump/" + auth,
			header: hdr("Content-Type", mpNoDumpCT), body: mpNoDump,
			wantStatus: 400, wantDetail: "missing minidump",
		},
		{
			name: "minidump without auth", path: "/api/42/minidump/",
			header: hdr("Content-Type", "application/octet-stream"), body: dump,
			wantStatus: 401, wantDetail: "missing authorization information",
		},
		{
			name: "unreal", path: "/api/42/unreal/" + testKey + "/?UserID=user-7",
			header: hdr("Content-Type", "application/octet-stream"), body: []byte("CR1\x00opaque ue4 crash"), wantStatus: 200,
			wantHeader: map[string]string{"unreal_user_id": "user-7"},
			wantItems:  []wantUploadItem{{typ: "unreal_report", payload: []byte("CR1\x00opaque ue4 crash")}},
		},
		{
			name: "unreal bad key", path: "/api/42/unreal/nothex/",
			body: []byte("x"), wantStatus: 400, wantDetail: "bad sentry DSN public key",
		},
		{
			name: "security csp-report from Chromium", path: "/api/42/security/" + auth + "&sentry_release=web%401.2&sentry_environment=prod",
			header: hdr("Content-Type", "application/csp-report"), body: []byte(chromiumCSP), wantStatus: 200,
			wantItems: []wantUploadItem{{typ: "raw_security", payload: []byte(chromiumCSP), headers: map[string]string{
				"sentry_release": "web@1.2", "sentry_environment": "prod"}}},
		},
		{
			name: "csp-report route, expect-ct+json", path: "/api/42/csp-report/" + auth,
			header: hdr("Content-Type", "application/expect-ct-report+json"), body: []byte(`{"expect-ct-report":{}}`), wantStatus: 200,
			wantItems: []wantUploadItem{{typ: "raw_security", payload: []byte(`{"expect-ct-report":{}}`)}},
		},
		{
			name: "security wrong content type", path: "/api/42/security/" + auth,
			header: hdr("Content-Type", "text/plain"), body: []byte(chromiumCSP),
			wantStatus: 415, // bare, as Relay: no detail
		},
		{
			name: "security empty body", path: "/api/42/security/" + auth,
			header: hdr("Content-Type", "application/json"), body: []byte{},
			wantStatus: 400, wantDetail: "empty request body",
		},
		{
			name: "attachments", path: "/api/42/events/" + eventID + "/attachments/" + auth,
			header: hdr("Content-Type", mpAttachCT), body: mpAttach, wantStatus: 201, wantEvent: eventID,
			wantItems: []wantUploadItem{
				{typ: "attachment", payload: []byte("\x89PNG\r\n\x1a\nfake"), headers: map[string]string{
					"attachment_type": "event.attachment", "filename": "screenshot.png", "content_type": "image/png"}},
				{typ: "attachment", payload: []byte("hello"), headers: map[string]string{"filename": "notes.txt"}},
			},
		},
		{
			name: "attachments bad event id", path: "/api/42/events/nope/attachments/" + auth,
			header: hdr("Content-Type", mpAttachCT), body: mpAttach,
			wantStatus: 400, wantDetail: "bad event_id path parameter",
		},
		{
			name: "attachments none", path: "/api/42/events/" + eventID + "/attachments/" + auth,
			header: hdr("Content-Type", mpEmptyCT), body: mpEmpty,
			wantStatus: 400, wantDetail: "empty envelope",
		},
		{
			name: "attachments not multipart", path: "/api/42/events/" + eventID + "/attachments/" + auth,
			header: hdr("Content-Type", "application/json"), body: []byte("{}"),
			wantStatus: 400, wantDetail: "invalid multipart data",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := &fakePublisher{}
			ts := startServer(t, New(testConfig(), pub, nil, testLogger(t)))
			res := do(t, http.MethodPost, ts.URL+tc.path, tc.header, tc.body, false)
			assertCommonHeaders(t, res)
			if res.status != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", res.status, tc.wantStatus, res.body)
			}
			msgs := pub.messages()
			if tc.wantStatus == http.StatusUnsupportedMediaType {
				if len(res.body) != 0 || len(msgs) != 0 {
					t.Errorf("415 with body %q, %d messages published", res.body, len(msgs))
				}
				return
			}
			if tc.wantDetail != "" {
				if d := res.errorBody(t).Detail; d != tc.wantDetail {
					t.Errorf("detail %q, want %q", d, tc.wantDetail)
				}
				if len(msgs) != 0 {
					t.Errorf("a refused request published %d messages", len(msgs))
				}
				return
			}
			if len(msgs) != 1 {
				t.Fatalf("published %d messages, want 1", len(msgs))
			}
			m := msgs[0]
			if m.ProjectID != 42 || m.PublicKey != testKey {
				t.Errorf("message project %d key %q, want 42 %q", m.ProjectID, m.PublicKey, testKey)
			}
			env, err := envelope.Parse(m.Envelope)
			if err != nil {
				t.Fatalf("published envelope does not parse: %v\n%s", err, m.Envelope)
			}
			if len(env.Header.EventID) != 32 || (tc.wantEvent != "" && env.Header.EventID != tc.wantEvent) {
				t.Errorf("event id %q, want %q", env.Header.EventID, tc.wantEvent)
			}
			if m.EventID != env.Header.EventID {
				t.Errorf("message event id %q, envelope's %q", m.EventID, env.Header.EventID)
			}
			for k, v := range tc.wantHeader {
				if got := env.HeaderString(k); got != v {
					t.Errorf("envelope header %s = %q, want %q", k, got, v)
				}
			}
			switch tc.wantStatus {
			case 200:
				if tc.path[:len("/api/42/s")] == "/api/42/s" || tc.path[:len("/api/42/c")] == "/api/42/c" {
					if len(res.body) != 0 {
						t.Errorf("security answer body %q, want empty", res.body)
					}
				} else if string(res.body) != hyphenated(env.Header.EventID) || !hyphenatedUUID.Match(res.body) {
					t.Errorf("answer %q, want the hyphenated event id of %s", res.body, env.Header.EventID)
				}
			case 201:
				if len(res.body) != 0 {
					t.Errorf("attachments answer body %q, want empty", res.body)
				}
			}
			if len(env.Items) != len(tc.wantItems) {
				t.Fatalf("%d items, want %d:\n%s", len(env.Items), len(tc.wantItems), m.Envelope)
			}
			for i, want := range tc.wantItems {
				it := env.Items[i]
				if it.Type != want.typ {
					t.Errorf("item %d type %q, want %q", i, it.Type, want.typ)
				}
				if !bytes.Equal(it.Payload, want.payload) {
					t.Errorf("item %d payload %q, want %q", i, it.Payload, want.payload)
				}
				for k, v := range want.headers {
					if got := it.HeaderString(k); got != v {
						t.Errorf("item %d header %s = %q, want %q", i, k, got, v)
					}
				}
			}
		})
	}
}

func TestUploadRouteMatching(t *testing.T) {
	for path, want := range map[string]route{
		"/api/42/minidump/":               routeMinidump,
		"/api/42/minidump":                routeMinidump,
		"/api/42/unreal/" + testKey + "/": routeUnreal,
		"/api/42/unreal/":                 routeOther,
		"/api/42/unreal/" + testKey:       routeOther,
		"/api/42/security/":               routeSecurity,
		"/api/42/csp-report/":             routeSecurity,
		"/api/42/security":                routeOther,
		"/api/42/events/9ec79c33ec9942ab8353589fcb2e04dc/attachments/": routeAttachments,
		"/api/42/events//attachments/":                                 routeOther,
		"/api/42/events/a/b/attachments/":                              routeOther,
		"/api/42/attachment/":                                          routeOther,
	} {
		if got, _ := matchRoute(path); got != want {
			t.Errorf("matchRoute(%q) = %s, want %s", path, routeNames[got], routeNames[want])
		}
	}
}

// The upload routes speak CORS like the store routes: a browser's preflight
// is answered, and the answer is readable cross-origin.
func TestUploadRoutesCORS(t *testing.T) {
	pub := &fakePublisher{}
	ts := startServer(t, New(testConfig(), pub, nil, testLogger(t)))
	res := do(t, http.MethodOptions, ts.URL+"/api/42/security/", hdr("Origin", "https://example.com"), nil, false)
	if res.status != 200 || res.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("preflight: %d, allow-origin %q", res.status, res.header.Get("Access-Control-Allow-Origin"))
	}
	res = do(t, http.MethodPost, ts.URL+"/api/42/csp-report/?sentry_key="+testKey,
		hdr("Content-Type", "application/csp-report", "Origin", "https://example.com"), []byte(chromiumCSP), false)
	if res.status != 200 || res.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("report: %d, allow-origin %q", res.status, res.header.Get("Access-Control-Allow-Origin"))
	}
	res = do(t, http.MethodGet, ts.URL+"/api/42/minidump/", nil, nil, false)
	if res.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET minidump: %d, want 405", res.status)
	}
}

// A compressed dump is decoded only up to the attachment limit (a zip bomb
// gets 413, having allocated at most the limit), and a container that does
// not decode is Relay's 400 "invalid compression container".
func TestMinidumpContainerBounds(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxAttachmentSize = 64 << 10
	pub := &fakePublisher{}
	ts := startServer(t, New(cfg, pub, nil, testLogger(t)))
	bomb := append(testMinidump(), make([]byte, 8<<20)...) // 8 MiB of zeros: a few KiB compressed
	const tooLarge = "envelope exceeded size limits for type 'attachment:minidump' (https://develop.sentry.dev/sdk/envelopes/#size-limits)"
	for _, tc := range []struct {
		name       string
		body       []byte
		wantStatus int
		wantDetail string
	}{
		{"gzip bomb", gzipped(t, bomb), 413, tooLarge},
		{"zstd bomb", zstded(t, bomb), 413, tooLarge},
		{"gzip magic, garbage after", []byte("\x1f\x8bnot gzip at all"), 400, "invalid compression container"},
		{"zstd magic, garbage after", []byte("\x28\xb5\x2f\xfdnot zstd"), 400, "invalid compression container"},
		{"bzip2 magic, garbage after", []byte("BZh9not bzip2"), 400, "invalid compression container"},
		{"under the limit", gzipped(t, append(testMinidump(), make([]byte, 32<<10)...)), 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := do(t, http.MethodPost, ts.URL+"/api/42/minidump/?sentry_key="+testKey,
				hdr("Content-Type", "application/octet-stream"), tc.body, false)
			if res.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", res.status, tc.wantStatus, res.body)
			}
			if tc.wantDetail != "" {
				if d := res.errorBody(t).Detail; d != tc.wantDetail {
					t.Errorf("detail %q, want %q", d, tc.wantDetail)
				}
			}
		})
	}
	if n := len(pub.messages()); n != 1 {
		t.Errorf("published %d messages, want 1 (the dump under the limit)", n)
	}
}

// A small compressed dump that decodes to more than the ingest byte budget
// is refused 503 like any request the budget cannot hold, rather than
// decoded outside the budget's sight; the budget is whole again afterwards.
func TestMinidumpDecodedSizeIsCharged(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInFlightBytes = 1 << 20
	cfg.AdmissionTimeout = 50 * time.Millisecond
	pub := &fakePublisher{}
	s := New(cfg, pub, nil, testLogger(t))
	ts := startServer(t, s)
	big := gzipped(t, append(testMinidump(), make([]byte, 2<<20)...)) // ~2 KiB on the wire
	res := do(t, http.MethodPost, ts.URL+"/api/42/minidump/?sentry_key="+testKey,
		hdr("Content-Type", "application/octet-stream"), big, false)
	if res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" {
		t.Fatalf("status %d (Retry-After %q), want 503 with Retry-After: %s", res.status, res.header.Get("Retry-After"), res.body)
	}
	if n := len(pub.messages()); n != 0 {
		t.Fatalf("published %d messages", n)
	}
	small := gzipped(t, append(testMinidump(), make([]byte, 64<<10)...))
	res = do(t, http.MethodPost, ts.URL+"/api/42/minidump/?sentry_key="+testKey,
		hdr("Content-Type", "application/octet-stream"), small, false)
	if res.status != http.StatusOK {
		t.Fatalf("small dump: %d %s", res.status, res.body)
	}
	if used := s.budget.inUse(); used != 0 {
		t.Errorf("budget holds %d bytes after the requests", used)
	}
}
