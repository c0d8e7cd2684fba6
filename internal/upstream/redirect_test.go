package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
)

// TestRedirectsAreNeverFollowed: the relay talks to its configured upstream
// and nothing else. An upstream (or something posing as it) answering with a
// redirect to another listener must not make the relay send the envelope —
// or even a probe — there: that would be the server-side request forgery of
// hand-written browser tunnels (CVE-2023-46729), by way of a redirect.
func TestRedirectsAreNeverFollowed(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(other.Close)

	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+r.URL.Path, status)
			})
			c := newClient(t, Config{URL: rec.URL})
			res := c.Send(context.Background(), baseRequest())
			if res.Class != Retryable || res.Status != status {
				t.Fatalf("Send = %v %d (%v), want retryable %d: the envelope stays with the relay", res.Class, res.Status, res.Err, status)
			}
			if err := c.Probe(context.Background()); err != nil {
				t.Fatalf("Probe: %v", err)
			}
			if n := elsewhere.Load(); n != 0 {
				t.Fatalf("the redirect target received %d requests", n)
			}
			if n := len(rec.requests()); n != 2 {
				t.Fatalf("the upstream received %d requests, want the envelope and the probe", n)
			}
		})
	}
}
