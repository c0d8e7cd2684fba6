package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
)

// The routes whose body is not an envelope (NEL, cron, OTLP), end to end:
// each request acknowledged while Sentry is down, the relay killed with -9
// right after, restarted once Sentry is back — and each payload must arrive
// at the fake Sentry in the item Relay would make for it.

// integrationRequest is one request and the item it must become upstream.
type integrationRequest struct {
	name, method, path, contentType string
	body                            []byte
	status                          int
	itemType, itemContentType       string
	// match reports whether a received payload is this request's.
	match func(payload []byte) bool
}

// otlpProto is a one-span OTLP ExportTraceServiceRequest in protobuf, written
// by hand (google.golang.org/protobuf is not a dependency): resource_spans(1)
// { scope_spans(2) { spans(2) { trace_id(1), span_id(2), name(5) } } }, every
// field length-delimited (tag byte field<<3|2, one-byte length).
func otlpProto(name string) []byte {
	ld := func(field byte, b []byte) []byte { return append([]byte{field<<3 | 2, byte(len(b))}, b...) }
	span := append(append(ld(1, bytes.Repeat([]byte{0xab}, 16)), ld(2, bytes.Repeat([]byte{0xcd}, 8))...), ld(5, []byte(name))...)
	return ld(1, ld(2, ld(2, span)))
}

func TestIntegrationRoutesSurviveKillAndOutage(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	dir := t.TempDir()
	// A short ack_wait: what the killed relay had fetched but not acked
	// comes back after it, and the test need not wait the default 30 s.
	rc := relayConfig{upstream: up.URL(), extra: "jetstream:\n  ack_wait: 3s\n"}
	p := startRelay(t, dir, rc)
	rc.port = mustPort(t, p.addr)
	cronBody := []byte(`{"check_in_id":"a460c25ff2554577b920fcfacae4e5eb","status":"in_progress","environment":"prod"}`)
	otlpJSON := []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",` +
		`"spanId":"eee19b7ec3c1b174","name":"e2e-json-span"}]}]}]}`)
	traceProto, logProto := otlpProto("e2e-proto-span"), otlpProto("e2e-proto-log")
	reqs := []integrationRequest{
		{name: "nel", method: "POST", path: "/api/42/nel/", contentType: "application/reports+json",
			body: []byte(`[{"age":3,"type":"network-error","url":"https://e2e-nel.example/","body":{"type":"http.error",` +
				`"status_code":502,"phase":"application","elapsed_time":9,"method":"GET","protocol":"h2","server_ip":"192.0.2.7",` +
				`"sampling_fraction":1,"referrer":""}}]`),
			status: 200, itemType: "nel", itemContentType: "application/json",
			match: func(b []byte) bool { return bytes.Contains(b, []byte("https://e2e-nel.example/")) }},
		{name: "cron GET", method: "GET", path: "/api/42/cron/e2e-get/" + testKey + "/?status=ok&duration=1.5",
			status: 202, itemType: "check_in", itemContentType: "application/json",
			match: func(b []byte) bool { return bytes.Contains(b, []byte(`"monitor_slug":"e2e-get"`)) }},
		{name: "cron POST", method: "POST", path: "/api/42/cron/e2e-post/" + testKey + "/", contentType: "application/json",
			body: cronBody, status: 202, itemType: "check_in", itemContentType: "application/json",
			match: func(b []byte) bool {
				return bytes.Contains(b, []byte(`"monitor_slug":"e2e-post"`)) && bytes.Contains(b, []byte(`"in_progress"`))
			}},
		{name: "otlp traces json", method: "POST", path: "/api/42/integration/otlp/v1/traces", contentType: "application/json",
			body: otlpJSON, status: 202, itemType: "otel_traces_data", itemContentType: "application/json",
			match: func(b []byte) bool { return bytes.Equal(b, otlpJSON) }},
		{name: "otlp traces protobuf", method: "POST", path: "/api/42/integration/otlp/v1/traces", contentType: "application/x-protobuf",
			body: traceProto, status: 202, itemType: "otel_traces_data", itemContentType: "application/x-protobuf",
			match: func(b []byte) bool { return bytes.Equal(b, traceProto) }},
		{name: "otlp logs protobuf", method: "POST", path: "/api/42/integration/otlp/v1/logs/", contentType: "application/x-protobuf",
			body: logProto, status: 202, itemType: "otel_logs_data", itemContentType: "application/x-protobuf",
			match: func(b []byte) bool { return bytes.Equal(b, logProto) }},
	}

	// Sentry is down: every request is acknowledged from the stream alone.
	up.Down()
	for _, rq := range reqs {
		var body io.Reader
		if rq.body != nil {
			body = bytes.NewReader(rq.body)
		}
		req, err := http.NewRequest(rq.method, p.url()+rq.path, body)
		if err != nil {
			t.Fatal(err)
		}
		if rq.contentType != "" {
			req.Header.Set("Content-Type", rq.contentType)
		}
		if !strings.Contains(rq.path, testKey) {
			req.Header.Set("X-Sentry-Auth", "Sentry sentry_version=7, sentry_key="+testKey)
		}
		resp, err := sendClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", rq.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != rq.status {
			t.Fatalf("%s: status %d, want %d (%s)", rq.name, resp.StatusCode, rq.status, b)
		}
	}

	// Killed right after the acknowledgements, restarted once Sentry is back.
	p.kill9()
	if err := up.Up(); err != nil {
		t.Fatal(err)
	}
	p2 := startRelay(t, dir, rc)
	defer func() { _ = p2.term(10 * time.Second) }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		missing := missingIntegrationItems(t, up.Received(), reqs)
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered after kill -9 and restart: %s\nrelay log:\n%s", strings.Join(missing, ", "), p2.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// missingIntegrationItems returns the requests whose item has not arrived
// with the expected type, content type and project.
func missingIntegrationItems(t *testing.T, got []fakesentry.Received, reqs []integrationRequest) []string {
	t.Helper()
	var missing []string
	for _, rq := range reqs {
		found := false
		for _, r := range got {
			for _, it := range r.Items {
				if it.Type != rq.itemType || !rq.match(it.Payload) {
					continue
				}
				var h struct {
					ContentType string `json:"content_type"`
				}
				if err := json.Unmarshal(it.Header, &h); err != nil || h.ContentType != rq.itemContentType {
					t.Fatalf("%s: item header %s, want content_type %q", rq.name, it.Header, rq.itemContentType)
				}
				if r.ProjectID != 42 || r.PublicKey != testKey {
					t.Fatalf("%s: arrived for project %d key %q", rq.name, r.ProjectID, r.PublicKey)
				}
				found = true
			}
		}
		if !found {
			missing = append(missing, rq.name)
		}
	}
	return missing
}
