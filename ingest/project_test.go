package ingest

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/project"
)

const (
	otherKey    = "ffffffffffffffffffffffffffffffff" // in no project file
	disabledKey = "dddddddddddddddddddddddddddddddd"
	blockedKey  = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" // project 43, disabled
	brokenKey   = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee" // project 44, unparsable file
	closedKey   = "cccccccccccccccccccccccccccccccc" // project 45, allowedDomains []
)

// projectFiles are the static project files of the enforcement tests.
var projectFiles = map[string]string{
	"42.json": `{"publicKeys":[{"publicKey":"` + testKey + `","isEnabled":true},{"publicKey":"` + disabledKey + `","isEnabled":false}],
		"config":{"allowedDomains":["https://*.example.com"]}}`,
	"43.json": `{"disabled":true,"publicKeys":[{"publicKey":"` + blockedKey + `"}]}`,
	"44.json": `{"publicKeys":[{"publicKey":"` + brokenKey + `"}],"config":{"allowedDomains":"*"}}`,
	"45.json": `{"publicKeys":[{"publicKey":"` + closedKey + `"}],"config":{"allowedDomains":[]}}`,
}

// projectRegistry reads projectFiles into a registry.
func projectRegistry(t testing.TB, opts project.Options) *project.Registry {
	t.Helper()
	dir := t.TempDir()
	for name, content := range projectFiles {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reg := project.NewRegistry(opts)
	if err := project.NewStaticSource(dir, reg, 0, testLogger(t)).Scan(); err != nil {
		t.Fatal(err)
	}
	return reg
}

func authFor(key string) string {
	return "Sentry sentry_version=7, sentry_client=test/1.0, sentry_key=" + key
}

// TestProjectEnforcement is Relay's answer table once a project config is
// known (protocol doc §1.0, §2.2, §2.4): 403 with the DiscardReason, nothing
// stored, the refusal counted.
func TestProjectEnforcement(t *testing.T) {
	storeEvent := []byte(`{"message":"hello","level":"error"}`)
	tunnelBody := func(key string, project string) []byte {
		return []byte(`{"event_id":"` + testEventID + `","dsn":"https://` + key + `@o1.ingest.sentry.io/` + project + `"}` + "\n" +
			`{"type":"event","length":2}` + "\n{}\n")
	}
	tests := []struct {
		name       string
		opts       project.Options
		path       string
		header     http.Header
		body       []byte
		status     int
		detail     string
		publishTo  uint64 // project the stored message names, when 200
		wantReason string // relay_ingest_rejected_total reason counted
	}{
		{name: "known key, its project", path: "/api/42/envelope/", header: hdr("X-Sentry-Auth", testAuth),
			body: validEnvelope, status: 200, publishTo: 42},
		{name: "unknown key, static mode", opts: project.Options{Static: true}, path: "/api/42/envelope/",
			header: hdr("X-Sentry-Auth", authFor(otherKey)), body: validEnvelope,
			status: 403, detail: "event submission rejected with_reason: ProjectId", wantReason: "project_id"},
		{name: "unknown key, proxy mode: not known yet, accepted", path: "/api/7/envelope/",
			header: hdr("X-Sentry-Auth", authFor(otherKey)), body: validEnvelope, status: 200, publishTo: 7},
		{name: "disabled key", path: "/api/42/envelope/", header: hdr("X-Sentry-Auth", authFor(disabledKey)), body: validEnvelope,
			status: 403, detail: "event submission rejected with_reason: ProjectId", wantReason: "project_id"},
		{name: "disabled project", path: "/api/43/envelope/", header: hdr("X-Sentry-Auth", authFor(blockedKey)), body: validEnvelope,
			status: 403, detail: "event submission rejected with_reason: ProjectId", wantReason: "project_id"},
		{name: "project id not the key's", path: "/api/99/envelope/", header: hdr("X-Sentry-Auth", testAuth), body: validEnvelope,
			status: 403, detail: "event submission rejected with_reason: ProjectId", wantReason: "project_id"},
		{name: "project id not the key's, override_project_ids", opts: project.Options{OverrideProjectIDs: true},
			path: "/api/99/envelope/", header: hdr("X-Sentry-Auth", testAuth), body: validEnvelope, status: 200, publishTo: 42},
		{name: "origin inside allowedDomains", path: "/api/42/envelope/",
			header: hdr("X-Sentry-Auth", testAuth, "Origin", "https://shop.example.com"), body: validEnvelope, status: 200, publishTo: 42},
		{name: "origin outside allowedDomains", path: "/api/42/envelope/",
			header: hdr("X-Sentry-Auth", testAuth, "Origin", "https://evil.net"), body: validEnvelope,
			status: 403, detail: "event submission rejected with_reason: Cors", wantReason: "cors"},
		{name: "origin with the wrong scheme", path: "/api/42/envelope/",
			header: hdr("X-Sentry-Auth", testAuth, "Origin", "http://shop.example.com"), body: validEnvelope,
			status: 403, detail: "event submission rejected with_reason: Cors", wantReason: "cors"},
		{name: "referer outside allowedDomains", path: "/api/42/store/",
			header: hdr("X-Sentry-Auth", testAuth, "Referer", "https://evil.net/page"), body: storeEvent,
			status: 403, detail: "event submission rejected with_reason: Cors", wantReason: "cors"},
		{name: "allowedDomains empty, no origin: server SDKs pass", path: "/api/45/envelope/",
			header: hdr("X-Sentry-Auth", authFor(closedKey)), body: validEnvelope, status: 200, publishTo: 45},
		{name: "allowedDomains empty, an origin", path: "/api/45/envelope/",
			header: hdr("X-Sentry-Auth", authFor(closedKey), "Origin", "https://shop.example.com"), body: validEnvelope,
			status: 403, detail: "event submission rejected with_reason: Cors", wantReason: "cors"},
		{name: "project file does not parse", path: "/api/44/envelope/", header: hdr("X-Sentry-Auth", authFor(brokenKey)), body: validEnvelope,
			status: 403, detail: "event submission rejected with_reason: ProjectState", wantReason: "project_state"},
		{name: "tunnel with an unknown key, static mode", opts: project.Options{Static: true}, path: "/api/42/envelope/",
			body: tunnelBody(otherKey, "42"), status: 403, detail: "event submission rejected with_reason: ProjectId", wantReason: "project_id"},
		{name: "tunnel with a known key", opts: project.Options{Static: true}, path: "/api/42/envelope/",
			body: tunnelBody(testKey, "42"), status: 200, publishTo: 42},
		{name: "legacy store: the project comes from the key's config", path: "/api/store/",
			header: hdr("X-Sentry-Auth", testAuth), body: storeEvent, status: 200, publishTo: 42},
		{name: "legacy store, key without a config: nowhere to send it", path: "/api/store/",
			header: hdr("X-Sentry-Auth", authFor(otherKey)), body: storeEvent,
			status: 400, detail: "bad project path parameter", wantReason: "bad_project"},
	}
	counters := map[string]interface{ Get() uint64 }{
		"project_id": droppedProjectID, "cors": droppedCors, "project_state": droppedProjectState, "bad_project": droppedBadProject,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &fakePublisher{}
			cfg := testConfig()
			cfg.Projects = projectRegistry(t, tt.opts)
			ts := startServer(t, New(cfg, pub, nil, testLogger(t)))
			var before uint64
			if tt.wantReason != "" {
				before = counters[tt.wantReason].Get()
			}
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			h.Set("Content-Type", "application/x-sentry-envelope")
			if !strings.HasSuffix(tt.path, "/envelope/") {
				h.Set("Content-Type", "application/json")
			}
			r := do(t, http.MethodPost, ts.URL+tt.path, h, tt.body, false)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", r.status, tt.status, r.body)
			}
			msgs := pub.messages()
			if tt.status != http.StatusOK {
				if d := r.errorBody(t).Detail; d != tt.detail {
					t.Errorf("detail = %q, want %q", d, tt.detail)
				}
				if got := r.header.Get("X-Sentry-Error"); got != tt.detail {
					t.Errorf("X-Sentry-Error = %q, want %q", got, tt.detail)
				}
				if len(msgs) != 0 {
					t.Errorf("a refused request was stored (%d messages)", len(msgs))
				}
				if got := counters[tt.wantReason].Get() - before; got != 1 {
					t.Errorf("relay_ingest_rejected_total{reason=%q} went up by %d, want 1", tt.wantReason, got)
				}
				if h.Get("Origin") != "" && r.header.Get("Access-Control-Allow-Origin") != "*" {
					t.Error("a browser cannot read the refusal: no Access-Control-Allow-Origin")
				}
				return
			}
			if len(msgs) != 1 {
				t.Fatalf("stored %d messages, want 1", len(msgs))
			}
			if msgs[0].ProjectID != tt.publishTo {
				t.Errorf("stored for project %d, want %d", msgs[0].ProjectID, tt.publishTo)
			}
		})
	}
}
