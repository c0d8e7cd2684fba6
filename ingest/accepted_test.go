package ingest

import (
	"errors"
	"testing"

	"github.com/relayhq/relay/internal/stream"
)

// TestAcceptedCountsStoredEnvelopesOnly: relay_ingest_accepted_envelopes_total
// (what the status page calls accepted) grows by one per envelope the stream
// stored and the client was told 200 for, and not for a refusal or a failed
// publish.
func TestAcceptedCountsStoredEnvelopesOnly(t *testing.T) {
	pub := &fakePublisher{}
	ts := startServer(t, New(testConfig(), pub, nil, testLogger(t)))
	h := hdr("X-Sentry-Auth", testAuth)
	before := AcceptedTotal()
	for range 3 {
		if res := do(t, "POST", ts.URL+"/api/42/envelope/", h, validEnvelope, false); res.status != 200 {
			t.Fatalf("status %d: %s", res.status, res.body)
		}
	}
	if res := do(t, "POST", ts.URL+"/api/42/envelope/", nil, validEnvelope, false); res.status == 200 {
		t.Fatal("a request without auth was accepted")
	}
	if res := do(t, "OPTIONS", ts.URL+"/api/42/envelope/", nil, nil, false); res.status != 200 {
		t.Fatalf("preflight: %d", res.status)
	}
	pub.mu.Lock()
	pub.err = errors.Join(stream.ErrUnavailable, errors.New("test: stream down"))
	pub.mu.Unlock()
	if res := do(t, "POST", ts.URL+"/api/42/envelope/", h, validEnvelope, false); res.status != 503 {
		t.Fatalf("failed publish answered %d, want 503", res.status)
	}
	if got := AcceptedTotal() - before; got != 3 {
		t.Fatalf("accepted grew by %d, want 3 (refusals, a preflight and a failed publish not counted)", got)
	}
}
