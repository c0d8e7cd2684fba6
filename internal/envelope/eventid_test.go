package envelope

import (
	"regexp"
	"testing"
)

func TestNormalizeEventID(t *testing.T) {
	const want = "9ec79c33ec9942ab8353589fcb2e04dc"
	for _, in := range []string{
		"9ec79c33ec9942ab8353589fcb2e04dc",
		"9EC79C33EC9942AB8353589FCB2E04DC",
		"9ec79c33-ec99-42ab-8353-589fcb2e04dc",
		"9EC79C33-ec99-42AB-8353-589fcb2e04dc",
		"{9ec79c33-ec99-42ab-8353-589fcb2e04dc}",
		"urn:uuid:9ec79c33-ec99-42ab-8353-589fcb2e04dc",
		"URN:UUID:9ec79c33-ec99-42ab-8353-589fcb2e04dc",
	} {
		if got, ok := NormalizeEventID(in); !ok || got != want {
			t.Errorf("NormalizeEventID(%q) = %q, %v", in, got, ok)
		}
	}
	if got, ok := NormalizeEventID("00000000000000000000000000000000"); !ok || got != "00000000000000000000000000000000" {
		t.Errorf("nil UUID: %q %v", got, ok)
	}
	for _, bad := range []string{
		"", "9ec79c33ec9942ab8353589fcb2e04d", "9ec79c33ec9942ab8353589fcb2e04dcc",
		"9ec79c33ec9942ab8353589fcb2e04dg", "9ec79c33-ec99-42ab-8353-589fcb2e04d", "9ec79c33_ec99-42ab-8353-589fcb2e04dc",
		"9ec79c33-ec9942ab-8353-589fcb2e04dc-", "{9ec79c33-ec99-42ab-8353-589fcb2e04dc", "(9ec79c33-ec99-42ab-8353-589fcb2e04dc)",
		"urn:uid:9ec79c33-ec99-42ab-8353-589fcb2e04dcx", " 9ec79c33ec9942ab8353589fcb2e04d", "9ec79c33ec9942ab8353589fcb2e04d\n",
		"{9ec79c33ec9942ab8353589fcb2e04dc}",
	} {
		if got, ok := NormalizeEventID(bad); ok {
			t.Errorf("NormalizeEventID(%q) = %q, want rejection", bad, got)
		}
	}
}

func TestNewEventID(t *testing.T) {
	v4 := regexp.MustCompile(`^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := NewEventID()
		if !v4.MatchString(id) {
			t.Fatalf("NewEventID() = %q, not a v4 UUID in 32 hex", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
	}
}
