package envelope

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParseDSN(t *testing.T) {
	tests := []struct {
		in     string
		want   DSN
		str    string // String(); "" = in
		envURL string
	}{
		{
			in:     "http://0123456789abcdef0123456789abcdef@127.0.0.1:9101/42",
			want:   DSN{Scheme: "http", PublicKey: "0123456789abcdef0123456789abcdef", Host: "127.0.0.1:9101", Path: "/", ProjectID: 42},
			envURL: "http://127.0.0.1:9101/api/42/envelope/",
		},
		{
			in:     "https://e12d836b15bb49d7bbf99e64295d995b:@sentry.io/42",
			want:   DSN{Scheme: "https", PublicKey: "e12d836b15bb49d7bbf99e64295d995b", Host: "sentry.io", Path: "/", ProjectID: 42},
			str:    "https://e12d836b15bb49d7bbf99e64295d995b@sentry.io/42",
			envURL: "https://sentry.io/api/42/envelope/",
		},
		{
			in:     "https://public:secret@example.com/sentry/prefix/18446744073709551615",
			want:   DSN{Scheme: "https", PublicKey: "public", SecretKey: "secret", Host: "example.com", Path: "/sentry/prefix/", ProjectID: 18446744073709551615},
			envURL: "https://example.com/sentry/prefix/api/18446744073709551615/envelope/",
		},
		{
			in:     "http://key@[::1]:3000/7",
			want:   DSN{Scheme: "http", PublicKey: "key", Host: "[::1]:3000", Path: "/", ProjectID: 7},
			envURL: "http://[::1]:3000/api/7/envelope/",
		},
	}
	for _, tt := range tests {
		d, err := ParseDSN(tt.in)
		if err != nil {
			t.Errorf("ParseDSN(%q): %v", tt.in, err)
			continue
		}
		if d != tt.want {
			t.Errorf("ParseDSN(%q) = %+v, want %+v", tt.in, d, tt.want)
		}
		str := tt.str
		if str == "" {
			str = tt.in
		}
		if d.String() != str {
			t.Errorf("String() = %q, want %q", d.String(), str)
		}
		if d.EnvelopeURL() != tt.envURL {
			t.Errorf("EnvelopeURL() = %q, want %q", d.EnvelopeURL(), tt.envURL)
		}
	}

	for _, bad := range []string{
		"",
		"nope",
		"ftp://key@host/1",
		"https://sentry.io/42",           // no key
		"https://:secret@sentry.io/42",   // empty key
		"https://key@/42",                // no host
		"https://key@sentry.io",          // no project
		"https://key@sentry.io/",         // empty project
		"https://key@sentry.io/abc",      // not a number
		"https://key@sentry.io/-1",       // negative
		"https://key@sentry.io/42/",      // project must be last
		"https://key@sentry.io:99999/42", // port out of range
		"https://key@sentry.io/18446744073709551616",
		"https://key@sen try.io/42",
	} {
		if d, err := ParseDSN(bad); err == nil {
			t.Errorf("ParseDSN(%q) = %+v, want an error", bad, d)
		}
	}
}

func TestCheckPublicKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"0123456789abcdef0123456789abcdef", true},
		{"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", true}, // not checked for hex, as in Relay
		{"ABCDEF0123456789abcdef0123456789", true},
		{"", false},
		{"0123456789abcdef", false},
		{"0123456789abcdef0123456789abcdef0", false},
		{"0123456789abcdef0123456789abcdé", false},  // 32 bytes, not ASCII
		{"0123456789abcdef0123456789abcde,", false}, // splits X-Sentry-Auth
		{"0123456789abcdef0123456789abcde=", false}, // ends the value in X-Sentry-Auth
		{"0123456789abcdef0123456789abcde.", false}, // the flags separator
		{"0123456789abcdef0123456789abcde ", false}, // trimmed by the parser
		{"\t123456789abcdef0123456789abcdef", false},
		{"0123456789abcdef0123456789abcd\r\n", false},
		{"0123456789abcdef0123456789abcde\x7f", false},
		{"0123456789abcdef0123456789abcde\x00", false},
	} {
		err := CheckPublicKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("CheckPublicKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrPublicKey) {
			t.Errorf("CheckPublicKey(%q) = %v, not ErrPublicKey", tc.key, err)
		}
		if err != nil && len(tc.key) > 3 && strings.Contains(err.Error(), tc.key) {
			t.Errorf("CheckPublicKey error %q echoes the key", err)
		}
	}
}

func TestCheckProjectID(t *testing.T) {
	for id, ok := range map[uint64]bool{0: false, 1: true, 42: true, math.MaxUint64: true} {
		err := CheckProjectID(id)
		if (err == nil) != ok || (err != nil && !errors.Is(err, ErrProjectID)) {
			t.Errorf("CheckProjectID(%d) = %v, want ok=%v", id, err, ok)
		}
	}
}
