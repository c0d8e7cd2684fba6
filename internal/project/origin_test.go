package project

import "testing"

func TestMatchOrigin(t *testing.T) {
	tests := []struct {
		origin  string
		allowed []string
		want    bool
	}{
		// Relay's test_store_allowed_origins_passes.
		{"http://valid.com", []string{"*"}, true},
		{"http://valid.com", []string{"http://valid.com"}, true},
		{"http://valid.com", []string{"http://*"}, true},
		{"http://valid.com", []string{"valid.com"}, true},
		{"http://valid.com", []string{}, false},
		{"http://valid.com", []string{"invalid.com"}, false},
		// No origin: server-side SDKs, always allowed, even by [].
		{"", []string{}, true},
		{"", []string{"invalid.com"}, true},
		// relay-filter's matches_any_origin cases.
		{"http://abc1.com", []string{"*://*:*", "bbc.com"}, true},
		{"http://abc2.com", []string{"*:*", "bbc.com"}, true},
		{"http://abc5.com", []string{"http://abc5.com:*", "bbc.com"}, true},
		{"http://abc.com:82", []string{"*:82", "bbc.com"}, true},
		{"http://abc.com:83", []string{"http://*:83", "bbc.com"}, true},
		{"http://abc.com:84", []string{"abc.com:*", "bbc.com"}, true},
		{"http://abc.com:85", []string{"*.abc.com:85", "bbc.com"}, true},
		{"http://abc.com:86", []string{"*.com:86"}, true},
		{"http://abc.def.ghc.com:88", []string{"*.ghc.com:88"}, true},
		{"http://abc.com:90", []string{"abc.com", "bbc.com"}, true},
		{"http://abc.com:91", []string{"abc.com:91", "bbc.com"}, true},
		{"http://abc.com:93", []string{"http://abc.com", "bbc.com"}, true},
		{"http://abc8.com", []string{"bbc.com", "abc8.com", "def"}, true},
		{"http://abc9.com", []string{"http://other.com", "bbc.com"}, false},
		{"http://abc10.com", []string{"http://*.other.com", "bbc"}, false},
		{"https://abc12.com", []string{"http://abc12.com", "bbc.com"}, false},
		{"http://abc13.com:80", []string{"http://abc13.com:8080", "bbc.com"}, false},
		{"http://y:80", []string{"http://x"}, false},
		// A URL parser's form: case, default ports.
		{"HTTP://Valid.COM", []string{"http://valid.com"}, true},
		{"https://valid.com:443", []string{"https://valid.com:443"}, false}, // the parsed origin has no port
		{"https://valid.com:443", []string{"https://valid.com"}, true},
		{"https://valid.com:8443", []string{"https://valid.com"}, true}, // a pattern without a port matches any
		// Paths: a Referer carries one; a pattern path matches exactly or by prefix.
		{"https://valid.com/app/page?x=1", []string{"valid.com"}, true},
		{"https://valid.com/app/page", []string{"https://valid.com/app/*"}, true},
		{"https://valid.com/other", []string{"https://valid.com/app/*"}, false},
		{"https://valid.com/app", []string{"https://valid.com/app"}, true},
		// A subdomain pattern also matches the bare domain, never a look-alike.
		{"https://example.com", []string{"*.example.com"}, true},
		{"https://evilexample.com", []string{"*.example.com"}, false},
		{"https://example.com.evil.net", []string{"example.com"}, false},
	}
	for _, tt := range tests {
		if got := matchOrigin(tt.origin, tt.allowed); got != tt.want {
			t.Errorf("matchOrigin(%q, %q) = %v, want %v", tt.origin, tt.allowed, got, tt.want)
		}
	}
}
