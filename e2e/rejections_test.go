package e2e

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
)

// An upstream that answers 401, then 403, then 404 (a relay not yet
// authorised, a wrong upstream path, a key being fixed) while SDKs keep
// sending: nothing acknowledged is lost, and everything arrives once the
// upstream answers 200. Measured before 401/403/404 were told apart from
// final rejections: 1828 of 2400 acknowledged envelopes lost in this
// scenario with six-second phases.
func TestDeniedUpstreamLosesNothing(t *testing.T) {
	up, _, _, p := startRestartable(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var l ledger
	var sent atomic.Int64
	stop := make(chan struct{})
	wg := loadFor(ctx, p.url, 8, &l, stop, &sent)
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound} {
		up.SetMode(fakesentry.Rejecting(status, "denied", 0))
		time.Sleep(2 * time.Second)
	}
	close(stop)
	wg.Wait()
	if n := up.Count(); n != 0 {
		t.Fatalf("the fake Sentry accepted %d envelopes while it denied every one", n)
	}
	up.SetMode(fakesentry.Normal())

	acked := l.ids()
	if len(acked) < 100 {
		t.Fatalf("only %d envelopes acknowledged during the denials; ingest must keep accepting", len(acked))
	}
	waitDelivered(t, up.EventIDs, acked, 90*time.Second)
	t.Logf("acked %d events while the upstream denied them; all arrived, %d duplicates", len(acked), duplicates(up.EventIDs()))

	// One ERROR line per state change of the key, not one per envelope.
	if n := strings.Count(p.logs(), "upstream denies the key"); n == 0 || n > 6 {
		t.Errorf("%d 'upstream denies the key' log lines, want one per state change (3 statuses)", n)
	}
	if err := p.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}
