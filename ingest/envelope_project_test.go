package ingest

import (
	"encoding/base64"
	"net/http"
	"net/url"
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

// TestRefusesWhatUpstreamCannotSend: keys and project ids the upstream client
// would refuse to send (envelope.CheckPublicKey, CheckProjectID) are refused
// at the door with Relay's answers, whichever way they arrive, instead of
// being acknowledged and then buried in the dead letters.
func TestRefusesWhatUpstreamCannotSend(t *testing.T) {
	pub := &fakePublisher{}
	ts := startServer(t, New(testConfig(), pub, nil, testLogger(t)))

	const (
		commaKey = "0123456789abcdef0123456789abcde," // 32 ASCII characters: Relay's parse accepts it
		spaceKey = "0123456789abcdef 123456789abcdef"
		eqKey    = "0123456789abcdef0123456789abcde="
	)
	tunnel := func(dsn string) []byte {
		return []byte(`{"dsn":"` + dsn + `"}` + "\n{\"type\":\"event\"}\n{}\n")
	}
	cases := []struct {
		name   string
		path   string
		header http.Header
		body   []byte
		status int
		detail string
	}{
		{"comma in query key", "/api/42/envelope/?sentry_key=" + url.QueryEscape(commaKey), nil, validEnvelope,
			400, "bad sentry DSN public key"},
		{"control character in query key", "/api/42/envelope/?sentry_key=0123456789abcdef0123456789abcde%01", nil, validEnvelope,
			400, "bad sentry DSN public key"},
		{"space in query key", "/api/42/envelope/?sentry_key=" + url.QueryEscape(spaceKey), nil, validEnvelope,
			400, "bad sentry DSN public key"},
		{"equals sign in Basic key", "/api/42/envelope/",
			hdr("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(eqKey+":"))), validEnvelope,
			400, "bad sentry DSN public key"},
		{"project id 0 in the path", "/api/0/envelope/", hdr("X-Sentry-Auth", testAuth), validEnvelope,
			400, "bad project path parameter"},
		{"project id 0 in the store path", "/api/0/store/", hdr("X-Sentry-Auth", testAuth), []byte(`{"message":"x"}`),
			400, "bad project path parameter"},
		{"tunnel dsn with a comma key", "/api/42/envelope/", nil, tunnel("http://" + commaKey + "@127.0.0.1/42"),
			401, "bad envelope authentication header"},
		{"tunnel dsn for project 0", "/api/0/envelope/", nil, tunnel("http://" + testKey + "@127.0.0.1/0"),
			400, "bad project path parameter"},
		{"tunnel dsn for project 0, path 42", "/api/42/envelope/", nil, tunnel("http://" + testKey + "@127.0.0.1/0"),
			401, "bad envelope authentication header"},
		{"legacy store, envelope dsn for project 0", "/api/store/",
			hdr("X-Sentry-Auth", testAuth, "Content-Type", "application/x-sentry-envelope"),
			tunnel("http://" + testKey + "@127.0.0.1/0"), 400, "invalid event envelope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := do(t, "POST", ts.URL+tc.path, tc.header, tc.body, false)
			if res.status != tc.status {
				t.Fatalf("status = %d, want %d (body %s)", res.status, tc.status, res.body)
			}
			if e := res.errorBody(t); e.Detail != tc.detail {
				t.Fatalf("detail = %q, want %q", e.Detail, tc.detail)
			}
		})
	}
	if msgs := pub.messages(); len(msgs) != 0 {
		t.Fatalf("published %d messages, first for key %q project %d", len(msgs), msgs[0].PublicKey, msgs[0].ProjectID)
	}
}
