package project

import (
	"strings"
	"testing"
)

// Parse never panics, and a state it accepts has well-formed keys and an
// allowedDomains list (never nil: nil would read as "reject all").
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"publicKeys":[{"publicKey":"` + keyA + `","isEnabled":true}],"config":{"allowedDomains":["*"]}}`,
		`{"disabled":true}`, `{"projectId":18446744073709551615}`, `{"projectId":-1}`, `null`, `[]`, `"x"`,
		`{"config":{"piiConfig":{"rules":{}},"datascrubbingSettings":{"scrubData":true}}}`,
		`{"publicKeys":[null]}`, `{"lastChange":"not a time"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			if s != nil {
				t.Fatal("a state with an error")
			}
			_ = looseKeys(b)
			return
		}
		for _, k := range s.PublicKeys {
			if len(k.PublicKey) != keyLength {
				t.Fatalf("accepted key %q", k.PublicKey)
			}
		}
		if s.Config.AllowedDomains == nil {
			t.Fatal("allowedDomains is nil")
		}
	})
}

// matchOrigin never panics, and "*" allows every origin.
func FuzzMatchOrigin(f *testing.F) {
	for _, s := range []string{"http://valid.com", "https://[::1]:8080/x?y#z", "http://", "://", "*.", "a:b:c/d*"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, origin, allowed string) {
		_ = matchOrigin(origin, strings.Split(allowed, ","))
		if !matchOrigin(origin, []string{"*"}) {
			t.Fatalf("%q not allowed by *", origin)
		}
	})
}
