package ingest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzParseAuthHeader: the header parser never panics, and what it accepts is
// consistent: a non-empty key that came from the input, trimmed, holding no
// separator; a version that fits a u16.
func FuzzParseAuthHeader(f *testing.F) {
	for _, s := range []string{
		testAuth,
		"Sentry sentry_key=k",
		"sentry sentry_key=k, sentry_version=7.0, sentry_client=a/b",
		"Sentry sentry_key= , sentry_version=8",
		"Sentry ,,,=,=,sentry_key==,",
		"Sentry sentry_version=99999999999999999999",
		"Sentry \x00sentry_key=\xff",
		"Basic abc",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseAuthHeader(s)
		if err != nil {
			return
		}
		if a.key == "" || strings.ContainsAny(a.key, ",=") || a.key != strings.TrimSpace(a.key) || !strings.Contains(s, a.key) {
			t.Fatalf("%q: bad key %q", s, a.key)
		}
		if a.version < 0 || a.version > 65535 {
			t.Fatalf("%q: version %d", s, a.version)
		}
		if !asciiEqualFold(s[:6], "sentry") {
			t.Fatalf("%q accepted without the Sentry scheme", s)
		}
	})
}

// FuzzExtractAuth: any combination of the auth sources gives either an error
// with one of Relay's details or credentials from exactly one source.
func FuzzExtractAuth(f *testing.F) {
	f.Add(testAuth, "", "")
	f.Add("", "Sentry sentry_key=k", "")
	f.Add("", "Basic MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY6", "sentry_key=x")
	f.Add("", "", "sentry_key=k&sentry_version=8.1&sentry_client=a%2F")
	f.Add("sentry ", "basic ", "sentry_")
	f.Fuzz(func(t *testing.T, xsa, authz, query string) {
		h := http.Header{}
		if xsa != "" {
			h["X-Sentry-Auth"] = []string{xsa}
		}
		if authz != "" {
			h["Authorization"] = []string{authz}
		}
		r := &http.Request{Header: h, URL: &url.URL{RawQuery: query}}
		a, e := extractAuth(r)
		if e != nil {
			switch e.detail {
			case "bad x-sentry-auth header", "multiple authorization payloads detected":
			default:
				t.Fatalf("unexpected detail %q", e.detail)
			}
			if e.status != http.StatusUnauthorized {
				t.Fatalf("status %d", e.status)
			}
			return
		}
		if (a.source == authNone) != (a.key == "") {
			t.Fatalf("source %d with key %q", a.source, a.key)
		}
	})
}
