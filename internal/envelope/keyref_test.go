package envelope

import (
	"strings"
	"testing"
)

func TestKeyRef(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef"
	// printf %s 0123456789abcdef0123456789abcdef | sha256sum | cut -c1-12
	if got, want := KeyRef(key), "sha256:"+"3eb1bd439947"; got != want {
		t.Errorf("KeyRef = %q, want %q", got, want)
	}
	if KeyRef("") != "" {
		t.Error("KeyRef of no key is not empty")
	}
	got := RedactKey("denied: key "+key+" disabled ("+key+")", key)
	if strings.Contains(got, key) || strings.Count(got, KeyRef(key)) != 2 {
		t.Errorf("RedactKey = %q", got)
	}
}
