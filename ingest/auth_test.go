package ingest

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"
)

func TestParseAuthHeader(t *testing.T) {
	cases := []struct {
		in      string
		key     string
		client  string
		version int
		err     error
	}{
		{in: "Sentry sentry_key=" + testKey, key: testKey, version: 7},
		{in: "sentry sentry_key=k, sentry_version=7, sentry_client=sentry.go/0.50.0", key: "k", client: "sentry.go/0.50.0", version: 7},
		{in: "SENTRY sentry_version=4, sentry_key=k", key: "k", version: 4},
		{in: "Sentry  sentry_key = k ,sentry_version= 5.9 ", key: "k", version: 5},
		{in: "Sentry sentry_key=k, sentry_secret=s, sentry_timestamp=1795371207, foo=bar, junk", key: "k", version: 7},
		{in: "Sentry sentry_key=k=extra", key: "k", version: 7},
		{in: "Sentry sentry_key=a, sentry_key=b", key: "b", version: 7},
		{in: "Sentry sentry_key=k, sentry_version=+7", key: "k", version: 7},
		{in: "Sentry sentry_key=k, sentry_version=65535", key: "k", version: 65535},
		{in: "Sentry sentry_key=k, sentry_version=65536", err: errAuthVersion},
		{in: "Sentry sentry_key=k, sentry_version=", err: errAuthVersion},
		{in: "Sentry sentry_key=k, sentry_version=-1", err: errAuthVersion},
		{in: "Sentry sentry_key=k, sentry_version=v7", err: errAuthVersion},
		{in: "Sentry sentry_version=7", err: errAuthMissingKey},
		{in: "Sentry sentry_key=", err: errAuthMissingKey},
		{in: "Sentry key=k", err: errAuthMissingKey}, // only the sentry_ spelling counts
		{in: "Sentry ", err: errAuthMissingKey},
		{in: "Bearer sentry_key=k", err: errAuthNotSentry},
	}
	for _, tc := range cases {
		a, err := parseAuthHeader(tc.in)
		if err != tc.err {
			t.Errorf("%q: err %v, want %v", tc.in, err, tc.err)
			continue
		}
		if err == nil && (a.key != tc.key || a.client != tc.client || a.version != tc.version) {
			t.Errorf("%q: got %+v, want key %q client %q version %d", tc.in, a, tc.key, tc.client, tc.version)
		}
	}
}

func TestExtractAuth(t *testing.T) {
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(testKey+":"))
	cases := []struct {
		name   string
		header http.Header
		query  string
		source authSource
		key    string
		err    *apiError // compared by detail
	}{
		{name: "none", source: authNone},
		{name: "query without sentry_", query: "a=1&b=2", source: authNone},
		{name: "empty x-sentry-auth", header: hdr("X-Sentry-Auth", ""), source: authNone},
		{name: "x-sentry-auth not sentry", header: hdr("X-Sentry-Auth", "Bearer x"), source: authNone},
		{name: "x-sentry-auth", header: hdr("X-Sentry-Auth", "Sentry sentry_key=k1"), source: authXSentryAuth, key: "k1"},
		{name: "authorization sentry", header: hdr("Authorization", "sentry sentry_key=k2"), source: authAuthorization, key: "k2"},
		{name: "basic", header: hdr("Authorization", basic), source: authBasic, key: testKey},
		{name: "basic not base64 is ignored", header: hdr("Authorization", "Basic !!!"), source: authNone},
		{name: "basic without colon is ignored", header: hdr("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("k"))), source: authNone},
		{name: "basic with empty key is ignored", header: hdr("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(":s"))), source: authNone},
		{name: "query", query: "sentry_key=k3&sentry_client=a%2Fb+c", source: authQuery, key: "k3"},
		{name: "query percent-encoded key", query: "sentry_%6Bey=k4", source: authQuery, key: "k4"},
		{name: "bad header stops early", header: hdr("X-Sentry-Auth", "Sentry nokey=1", "Authorization", "Sentry sentry_key=k"), err: errBadAuthHeader(errAuthMissingKey)},
		{name: "header+authorization", header: hdr("X-Sentry-Auth", "Sentry sentry_key=k", "Authorization", "Sentry sentry_key=k"), err: errMultipleAuth},
		{name: "header+basic", header: hdr("X-Sentry-Auth", "Sentry sentry_key=k", "Authorization", basic), err: errMultipleAuth},
		{name: "header+query", header: hdr("X-Sentry-Auth", "Sentry sentry_key=k"), query: "sentry_key=k", err: errMultipleAuth},
		{name: "basic+query", header: hdr("Authorization", basic), query: "sentry_key=k", err: errMultipleAuth},
		{name: "query mentioning sentry_ but no key", query: "x=sentry_", err: errBadAuthHeader(errAuthMissingKey)},
		{name: "non-text header value ignored", header: hdr("X-Sentry-Auth", "Sentry sentry_key=k\x80"), source: authNone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{Header: tc.header, URL: &url.URL{RawQuery: tc.query}}
			if r.Header == nil {
				r.Header = http.Header{}
			}
			a, e := extractAuth(r)
			if tc.err != nil {
				if e == nil || e.detail != tc.err.detail || e.status != tc.err.status {
					t.Fatalf("got %+v %v, want error %q", a, e, tc.err.detail)
				}
				return
			}
			if e != nil {
				t.Fatalf("error %q (%q)", e.detail, e.causes)
			}
			if a.source != tc.source || a.key != tc.key {
				t.Fatalf("got source %d key %q, want %d %q", a.source, a.key, tc.source, tc.key)
			}
			if a.source == authQuery && tc.name == "query" && a.client != "a/b c" {
				t.Fatalf("query client %q", a.client)
			}
		})
	}
}

func TestValidatePublicKey(t *testing.T) {
	for in, want := range map[string]string{
		testKey:                              testKey,
		testKey + ".no-cache":                testKey,
		"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz":   "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", // not checked for hex, as in Relay
		"short":                              "",
		testKey + "0":                        "",
		"0123456789abcdef0123456789abcdeé":   "",
		"0123456789abcdef0123456789abcde,":   "", // would split X-Sentry-Auth upstream
		"0123456789abcdef0123456789abcd\r\n": "",
		"":                                   "",
	} {
		got, err := validatePublicKey(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("%q: got %q %v, want %q", in, got, err, want)
		}
	}
}

func TestFoldSlashesAndRoutes(t *testing.T) {
	cases := []struct {
		path  string
		route route
		seg   string
	}{
		{"/api/42/envelope/", routeEnvelope, "42"},
		{"//api///42//envelope//", routeEnvelope, "42"},
		{"/api/42/envelope", routeOther, ""},
		{"/api/42/store/", routeStore, "42"},
		{"/api/abc/store/", routeStore, "abc"},
		{"/api/store/", routeStoreLegacy, ""},
		{"/api/store", routeOther, ""},
		{"/api/relay/healthcheck/live/", routeHealthLive, ""},
		{"/api/relay/healthcheck/ready/", routeHealthReady, ""},
		{"/api/0/relays/live/", routeRelaysLive, ""},
		{"/api/0/relays/projectconfigs/", routeOther, ""},
		{"/api/42/minidump/", routeMinidump, "42"},
		{"/api/42/no-such-route/", routeOther, ""},
		{"/api/", routeOther, ""},
		{"/", routeOther, ""},
		{"", routeOther, ""},
	}
	for _, tc := range cases {
		rt, seg := matchRoute(foldSlashes(tc.path))
		if rt != tc.route || seg != tc.seg {
			t.Errorf("%q: route %s seg %q, want %s %q", tc.path, routeNames[rt], seg, routeNames[tc.route], tc.seg)
		}
	}
	if p := "/api/42/envelope/"; foldSlashes(p) != p {
		t.Fatal("fold changed a clean path")
	}
}

func TestFormDecode(t *testing.T) {
	for in, want := range map[string]string{
		"plain": "plain", "a+b": "a b", "a%2Fb": "a/b", "%zz": "%zz", "%4": "%4", "%": "%", "%41%42": "AB",
	} {
		if got := formDecode(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}
