package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/stream"
)

// nelReports is a NEL delivery as Chromium posts it (application/reports+json):
// an array of reports, here two.
const nelReports = `[{"age":420,"body":{"elapsed_time":36,"method":"GET","phase":"dns","protocol":"http/1.1","referrer":"https://example.com/",` +
	`"sampling_fraction":1.0,"server_ip":"","status_code":0,"type":"dns.name_not_resolved"},"type":"network-error",` +
	`"url":"https://fail.example.com/","user_agent":"Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0.0.0 Safari/537.36"},` +
	`{"age":1,"body":{"elapsed_time":120,"method":"POST","phase":"application","protocol":"h2","referrer":"",` +
	`"sampling_fraction":0.5,"server_ip":"192.0.2.1","status_code":500,"type":"http.error"},"type":"network-error",` +
	`"url":"https://api.example.com/x","user_agent":"Mozilla/5.0"}]`

// otlpTraceJSON is an OTLP/HTTP JSON ExportTraceServiceRequest with one span.
const otlpTraceJSON = `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},` +
	`"scopeSpans":[{"scope":{"name":"manual"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",` +
	`"name":"GET /cart","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000120000000"}]}]}]}`

// otlpTraceProto is the same kind of request in protobuf, written by hand
// (google.golang.org/protobuf is not a dependency): ExportTraceServiceRequest
// { resource_spans(1) { scope_spans(2) { spans(2) { trace_id(1): 16 bytes,
// span_id(2): 8 bytes, name(5): "GET /cart" } } } }. Every field is
// length-delimited (wire type 2), so each tag byte is field<<3|2.
func otlpTraceProto() []byte {
	ld := func(field byte, b []byte) []byte {
		if len(b) > 127 {
			panic("one-byte varint lengths only")
		}
		return append([]byte{field<<3 | 2, byte(len(b))}, b...)
	}
	traceID := []byte{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c}
	spanID := []byte{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74}
	span := append(append(ld(1, traceID), ld(2, spanID)...), ld(5, []byte("GET /cart"))...)
	// A newline byte inside the payload (0x0a is also the tag of field 1,
	// wire type 2): the item must be framed by its length, not by lines.
	if !bytes.Contains(span, []byte{'\n'}) {
		panic("the test payload should contain a newline byte")
	}
	return ld(1, ld(2, ld(2, span)))
}

// integrationCase is one request to an integration route and what must be
// published for it.
type integrationCase struct {
	name   string
	method string
	path   string
	header http.Header
	body   []byte
	status int
	detail string     // the error's detail, when set
	items  []wantItem // nil: nothing published
}

type wantItem struct {
	typ, contentType string
	payload          []byte // exact bytes, when set
	check            func(t *testing.T, payload []byte)
}

func TestIntegrationRoutes(t *testing.T) {
	var reports []json.RawMessage
	if err := json.Unmarshal([]byte(nelReports), &reports); err != nil {
		t.Fatal(err)
	}
	proto := otlpTraceProto()
	cases := []integrationCase{
		{name: "nel reports+json", method: "POST", path: "/api/42/nel/",
			header: hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/reports+json"),
			body:   []byte(nelReports), status: 200,
			items: []wantItem{{typ: "nel", contentType: "application/json", payload: reports[0]},
				{typ: "nel", contentType: "application/json", payload: reports[1]}}},
		{name: "nel key in query, json", method: "POST", path: "/api/42/nel/?sentry_key=" + testKey,
			header: hdr("Content-Type", "application/json; charset=utf-8"),
			body:   []byte(nelReports), status: 200,
			items: []wantItem{{typ: "nel", payload: reports[0]}, {typ: "nel", payload: reports[1]}}},
		{name: "nel text/plain is 415", method: "POST", path: "/api/42/nel/",
			header: hdr("X-Sentry-Auth", testAuth, "Content-Type", "text/plain"),
			body:   []byte(nelReports), status: 415},
		{name: "nel not an array", method: "POST", path: "/api/42/nel/",
			header: hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/reports+json"),
			body:   []byte(`{"type":"network-error"}`), status: 400},
		{name: "nel empty list stores nothing", method: "POST", path: "/api/42/nel/",
			header: hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/reports+json"),
			body:   []byte(`[]`), status: 200},
		{name: "nel without auth", method: "POST", path: "/api/42/nel/",
			header: hdr("Content-Type", "application/reports+json"), body: []byte(nelReports), status: 401},

		{name: "cron GET, key in path", method: "GET",
			path:   "/api/42/cron/nightly-backup/" + testKey + "/?status=ok&duration=12.5&environment=production&check_in_id=a460c25f-f255-4577-b920-fcfacae4e5eb",
			status: 202,
			items: []wantItem{{typ: "check_in", contentType: "application/json", check: checkIn(map[string]any{
				"check_in_id": "a460c25ff2554577b920fcfacae4e5eb", "monitor_slug": "nightly-backup",
				"status": "ok", "duration": 12.5, "environment": "production"})}}},
		{name: "cron GET, no trailing slash, no id", method: "GET",
			path: "/api/42/cron/nightly-backup/" + testKey + "?status=in_progress", status: 202,
			items: []wantItem{{typ: "check_in", check: checkIn(map[string]any{
				"check_in_id": nilCheckInID, "monitor_slug": "nightly-backup", "status": "in_progress"})}}},
		{name: "cron POST json, key from auth", method: "POST", path: "/api/42/cron/nightly-backup/",
			header: hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/json"),
			body: []byte(`{"check_in_id":"a460c25ff2554577b920fcfacae4e5eb","monitor_slug":"ignored","status":"error",` +
				`"duration":3,"extra":"dropped","monitor_config":{"schedule":{"type":"crontab","value":"0 * * * *"}}}`),
			status: 202,
			items: []wantItem{{typ: "check_in", check: checkIn(map[string]any{
				"check_in_id": "a460c25ff2554577b920fcfacae4e5eb", "monitor_slug": "nightly-backup",
				"status": "error", "duration": 3.0,
				"monitor_config": map[string]any{"schedule": map[string]any{"type": "crontab", "value": "0 * * * *"}}})}}},
		{name: "cron POST form, query used", method: "POST", path: "/api/42/cron/m/" + testKey + "/?status=ok",
			header: hdr("Content-Type", "application/x-www-form-urlencoded"), body: []byte("ignored=1"), status: 202,
			items: []wantItem{{typ: "check_in", check: checkIn(map[string]any{
				"check_in_id": nilCheckInID, "monitor_slug": "m", "status": "ok"})}}},
		{name: "cron missing status", method: "GET", path: "/api/42/cron/m/" + testKey + "/", status: 400,
			detail: "Failed to deserialize query string"},
		{name: "cron bad check_in_id", method: "GET", path: "/api/42/cron/m/" + testKey + "/?status=ok&check_in_id=nope", status: 400},
		{name: "cron bad duration", method: "GET", path: "/api/42/cron/m/" + testKey + "/?status=ok&duration=NaN", status: 400},
		{name: "cron path key differs from header key", method: "GET",
			path:   "/api/42/cron/m/fedcba9876543210fedcba9876543210/?status=ok",
			header: hdr("X-Sentry-Auth", testAuth), status: 401},
		{name: "cron bad json", method: "POST", path: "/api/42/cron/m/",
			header: hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/json"), body: []byte(`{"status":`), status: 400,
			detail: "Failed to parse the request body as JSON"},
		{name: "cron json without status", method: "POST", path: "/api/42/cron/m/",
			header: hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/json"), body: []byte(`{"duration":1}`), status: 422,
			detail: "Failed to deserialize the JSON body into the target type"},
		{name: "cron json status not a string", method: "POST", path: "/api/42/cron/m/",
			header: hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/json"), body: []byte(`{"status":1}`), status: 422},
		{name: "cron json monitor_config not an object", method: "POST", path: "/api/42/cron/m/",
			header: hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/json"),
			body:   []byte(`{"status":"ok","monitor_config":[1]}`), status: 422},
		{name: "cron PUT", method: "PUT", path: "/api/42/cron/m/" + testKey + "/?status=ok", status: 405},
		{name: "cron bad project", method: "GET", path: "/api/abc/cron/m/" + testKey + "/?status=ok", status: 400},

		{name: "otlp traces json", method: "POST", path: "/api/42/integration/otlp/v1/traces",
			header: hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/json"),
			body:   []byte(otlpTraceJSON), status: 202,
			items: []wantItem{{typ: "otel_traces_data", contentType: "application/json", payload: []byte(otlpTraceJSON)}}},
		{name: "otlp traces protobuf", method: "POST", path: "/api/42/integration/otlp/v1/traces/",
			header: hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/x-protobuf"),
			body:   proto, status: 202,
			items: []wantItem{{typ: "otel_traces_data", contentType: "application/x-protobuf", payload: proto}}},
		{name: "otlp traces protobuf, gzip (the OTel exporters' default)", method: "POST", path: "/api/42/integration/otlp/v1/traces",
			header: hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/x-protobuf", "Content-Encoding", "gzip"),
			body:   gzipBytes(t, proto), status: 202,
			items: []wantItem{{typ: "otel_traces_data", contentType: "application/x-protobuf", payload: proto}}},
		{name: "otlp logs protobuf", method: "POST", path: "/api/42/integration/otlp/v1/logs",
			header: hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/x-protobuf"),
			body:   proto, status: 202,
			items: []wantItem{{typ: "otel_logs_data", contentType: "application/x-protobuf", payload: proto}}},
		{name: "otlp text/plain is 415", method: "POST", path: "/api/42/integration/otlp/v1/traces",
			header: hdr("X-Sentry-Auth", testAuth, "Content-Type", "text/plain"), body: []byte(otlpTraceJSON), status: 415},
		{name: "otlp empty body", method: "POST", path: "/api/42/integration/otlp/v1/logs",
			header: hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/json"), body: []byte{}, status: 400},
		{name: "otlp GET", method: "GET", path: "/api/42/integration/otlp/v1/traces", status: 405},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pub := &fakePublisher{}
			ts := startServer(t, New(testConfig(), pub, nil, testLogger(t)))
			res := do(t, tc.method, ts.URL+tc.path, tc.header, tc.body, false)
			assertCommonHeaders(t, res)
			if res.status != tc.status {
				t.Fatalf("status = %d, want %d (body %q)", res.status, tc.status, res.body)
			}
			if tc.detail != "" {
				if got := res.errorBody(t).Detail; got != tc.detail {
					t.Errorf("detail %q, want %q", got, tc.detail)
				}
			}
			if (res.status < 300 || res.status == http.StatusUnsupportedMediaType) && len(res.body) != 0 {
				t.Errorf("body = %q, want none (Relay answers %d without one)", res.body, res.status)
			}
			msgs := pub.messages()
			if tc.items == nil {
				if len(msgs) != 0 {
					t.Fatalf("published %d messages, want none", len(msgs))
				}
				return
			}
			if len(msgs) != 1 {
				t.Fatalf("published %d messages, want 1", len(msgs))
			}
			checkPublished(t, msgs[0], tc)
		})
	}
}

func checkPublished(t *testing.T, m stream.Message, tc integrationCase) {
	t.Helper()
	if m.ProjectID != 42 || m.PublicKey != testKey {
		t.Errorf("project %d key %q, want 42 %q", m.ProjectID, m.PublicKey, testKey)
	}
	env, err := envelope.Parse(m.Envelope)
	if err != nil {
		t.Fatalf("published envelope does not parse: %v\n%s", err, m.Envelope)
	}
	if len(env.Items) != len(tc.items) {
		t.Fatalf("%d items, want %d", len(env.Items), len(tc.items))
	}
	for i, w := range tc.items {
		it := env.Items[i]
		if it.Type != w.typ {
			t.Errorf("item %d type %q, want %q", i, it.Type, w.typ)
		}
		if w.contentType != "" && it.HeaderString("content_type") != w.contentType {
			t.Errorf("item %d content_type %q, want %q", i, it.HeaderString("content_type"), w.contentType)
		}
		if w.payload != nil && !bytes.Equal(it.Payload, w.payload) {
			t.Errorf("item %d payload\n got %q\nwant %q", i, it.Payload, w.payload)
		}
		if w.check != nil {
			w.check(t, it.Payload)
		}
	}
	if tc.items[0].typ == "check_in" {
		if env.Header.EventID == "" || m.EventID != env.Header.EventID {
			t.Errorf("check-in envelope event_id %q, message %q: want one, the same", env.Header.EventID, m.EventID)
		}
		if tc.header.Get("X-Sentry-Auth") == "" && m.Client != "relay-http" {
			t.Errorf("client %q, want relay-http for a request that names none", m.Client)
		}
	}
}

// checkIn compares a check_in payload with the fields wanted, exactly.
func checkIn(want map[string]any) func(t *testing.T, payload []byte) {
	return func(t *testing.T, payload []byte) {
		t.Helper()
		var got map[string]any
		if err := json.Unmarshal(payload, &got); err != nil {
			t.Fatalf("check_in payload %q: %v", payload, err)
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if !bytes.Equal(g, w) {
			t.Errorf("check_in payload\n got %s\nwant %s", g, w)
		}
	}
}

// TestIntegrationPublishFails: a route that converts its body still answers
// only after the stream stored it; a failed publish is a 503 with
// Retry-After, never a 2xx.
func TestIntegrationPublishFails(t *testing.T) {
	pub := &fakePublisher{err: errors.Join(stream.ErrUnavailable, errors.New("cut"))}
	ts := startServer(t, New(testConfig(), pub, nil, testLogger(t)))
	for _, path := range []string{"/api/42/nel/", "/api/42/cron/m/", "/api/42/integration/otlp/v1/traces"} {
		res := do(t, "POST", ts.URL+path, hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/json"),
			[]byte(`[{"type":"network-error"}]`), false)
		if path == "/api/42/cron/m/" {
			res = do(t, "POST", ts.URL+path, hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/json"),
				[]byte(`{"status":"ok"}`), false)
		}
		if res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" {
			t.Errorf("%s: status %d Retry-After %q, want 503 with Retry-After", path, res.status, res.header.Get("Retry-After"))
		}
	}
}

// TestIntegrationCORS: the integration routes speak CORS like the store
// routes (preflight 200, allow-origin on answers to browsers).
func TestIntegrationCORS(t *testing.T) {
	ts := startServer(t, New(testConfig(), &fakePublisher{}, nil, testLogger(t)))
	pre := do(t, "OPTIONS", ts.URL+"/api/42/nel/", hdr("Origin", "https://app.example", "Access-Control-Request-Method", "POST"), nil, false)
	if pre.status != 200 || pre.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("preflight: %d, allow-origin %q", pre.status, pre.header.Get("Access-Control-Allow-Origin"))
	}
	res := do(t, "POST", ts.URL+"/api/42/nel/", hdr("Origin", "https://app.example", "X-Sentry-Auth", testAuth,
		"Content-Type", "application/reports+json"), []byte(nelReports), false)
	if res.status != 200 || res.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("POST: %d, allow-origin %q", res.status, res.header.Get("Access-Control-Allow-Origin"))
	}
}

func TestMatchIntegration(t *testing.T) {
	cases := []struct {
		path string
		want integrationMatch
		ok   bool
	}{
		{"/api/42/nel/", integrationMatch{rt: routeNEL, project: "42"}, true},
		{"/api/42/nel", integrationMatch{}, false},
		{"/api/42/cron/slug/", integrationMatch{rt: routeCron, project: "42", slug: "slug"}, true},
		{"/api/42/cron/slug", integrationMatch{rt: routeCron, project: "42", slug: "slug"}, true},
		{"/api/42/cron/slug/key/", integrationMatch{rt: routeCron, project: "42", slug: "slug", key: "key"}, true},
		{"/api/42/cron/slug/key", integrationMatch{rt: routeCron, project: "42", slug: "slug", key: "key"}, true},
		{"/api/42/cron/slug/key/more/", integrationMatch{}, false},
		{"/api/42/cron/", integrationMatch{}, false},
		{"/api/42/integration/otlp/v1/traces", integrationMatch{rt: routeOTLPTraces, project: "42"}, true},
		{"/api/42/integration/otlp/v1/logs/", integrationMatch{rt: routeOTLPLogs, project: "42"}, true},
		{"/api/42/integration/otlp/v1/metrics", integrationMatch{}, false},
		{"/api//nel/", integrationMatch{}, false},
		{"/nel/", integrationMatch{}, false},
	}
	for _, tc := range cases {
		got, ok := matchIntegration(tc.path)
		if ok != tc.ok || got != tc.want {
			t.Errorf("matchIntegration(%q) = %+v, %v; want %+v, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzCheckInPayload: whatever a cron request carries, the check-in is either
// refused with an error or is a JSON object with the path's slug and a
// status Relay knows — never a panic, never invalid JSON upstream.
func FuzzCheckInPayload(f *testing.F) {
	f.Add([]byte(`{"status":"ok","check_in_id":"a460c25ff2554577b920fcfacae4e5eb","duration":1.5}`), true, "")
	f.Add([]byte(`{"status":"in_progress","monitor_config":{"schedule":{"type":"crontab","value":"* * * * *"}},"contexts":null}`), true, "")
	f.Add([]byte(nil), false, "status=error&environment=prod&duration=2&check_in_id=a460c25f-f255-4577-b920-fcfacae4e5eb")
	f.Add([]byte(nil), false, "status=%zz")
	f.Fuzz(func(t *testing.T, body []byte, fromBody bool, query string) {
		out, err := checkInPayload("slug", body, fromBody, query)
		if err != nil {
			return
		}
		var got struct {
			Slug   string `json:"monitor_slug"`
			Status string `json:"status"`
			ID     string `json:"check_in_id"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("payload %q is not JSON: %v", out, err)
		}
		switch got.Status {
		case "ok", "error", "in_progress", "missed", "unknown":
		default:
			t.Fatalf("status %q", got.Status)
		}
		if got.Slug != "slug" || len(got.ID) != 32 {
			t.Fatalf("slug %q id %q", got.Slug, got.ID)
		}
	})
}
