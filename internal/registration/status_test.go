package registration

import (
	"strings"
	"testing"
	"time"
)

// TestRegistrationReportsStateAndReason: what the status page shows while
// the upstream refuses the key (registering, with the upstream's reason),
// and once it allows it (registered, no reason).
func TestRegistrationReportsStateAndReason(t *testing.T) {
	f := start(t, time.Hour, false, nil)
	if st, why := f.mon.Registration(); st != "registering" || why == "" {
		t.Fatalf("before the first answer: %q %q", st, why)
	}
	eventually(t, "a refused attempt", func() bool {
		_, why := f.mon.Registration()
		return strings.Contains(why, "Relay is not allowed to register")
	})
	if st, _ := f.mon.Registration(); st != "registering" {
		t.Fatalf("refused: state %q, want registering", st)
	}
	f.up.AllowRelay(f.creds.PublicKeyString())
	waitAuthenticated(t, f.mon)
	if st, why := f.mon.Registration(); st != "registered" || why != "" {
		t.Fatalf("allowed: %q %q, want registered with no reason", st, why)
	}
}
