package ingest

import (
	"net/http"
	"testing"
)

// TestEnvelopeProjectIsThePath: whatever authenticates a request, an envelope
// whose header dsn names another project than the path is refused with
// Relay's 400, and an accepted one is published to the path's project — never
// to the one its dsn names. Only legacy /api/store/, which has no project in
// its path, takes the project from the dsn.
func TestEnvelopeProjectIsThePath(t *testing.T) {
	pub := &fakePublisher{}
	ts := startServer(t, New(testConfig(), pub, nil, testLogger(t)))

	envelopeWithDSN := func(project string) []byte {
		return []byte(`{"event_id":"` + testEventID + `","dsn":"http://` + testKey + `@127.0.0.1/` + project + `"}` +
			"\n{\"type\":\"event\"}\n{}\n")
	}
	auth := hdr("X-Sentry-Auth", testAuth)
	envCT := hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/x-sentry-envelope")

	cases := []struct {
		name    string
		path    string
		header  http.Header
		body    []byte
		status  int
		project uint64 // published project when status is 200
	}{
		{name: "header auth, same project", path: "/api/42/envelope/", header: auth, body: envelopeWithDSN("42"), status: 200, project: 42},
		{name: "header auth, other project", path: "/api/42/envelope/", header: auth, body: envelopeWithDSN("43"), status: 400},
		{name: "query auth, other project", path: "/api/42/envelope/?sentry_key=" + testKey, body: envelopeWithDSN("43"), status: 400},
		{name: "header auth, no dsn", path: "/api/42/envelope/", header: auth, body: validEnvelope, status: 200, project: 42},
		{name: "tunnel, same project", path: "/api/42/envelope/", body: envelopeWithDSN("42"), status: 200, project: 42},
		{name: "tunnel, other project", path: "/api/42/envelope/", body: envelopeWithDSN("43"), status: 400},
		{name: "tunnel, project as a prefix", path: "/api/4/envelope/", body: envelopeWithDSN("42"), status: 400},
		{name: "store with envelope body, other project", path: "/api/42/store/", header: envCT, body: envelopeWithDSN("7"), status: 400},
		{name: "legacy store takes the dsn project", path: "/api/store/", header: envCT, body: envelopeWithDSN("7"), status: 200, project: 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(pub.messages())
			res := do(t, "POST", ts.URL+tc.path, tc.header, tc.body, false)
			if res.status != tc.status {
				t.Fatalf("status = %d, want %d (body %s)", res.status, tc.status, res.body)
			}
			msgs := pub.messages()[before:]
			if tc.status != 200 {
				e := res.errorBody(t)
				if e.Detail != "invalid event envelope" || len(e.Causes) != 1 ||
					e.Causes[0] != "project id header mismatch between envelope and request" {
					t.Fatalf("answer = %+v, want Relay's project id header mismatch", e)
				}
				if len(msgs) != 0 {
					t.Fatalf("a refused envelope was published to project %d", msgs[0].ProjectID)
				}
				return
			}
			if len(msgs) != 1 || msgs[0].ProjectID != tc.project {
				t.Fatalf("published %+v, want one message for project %d", msgs, tc.project)
			}
		})
	}
}
