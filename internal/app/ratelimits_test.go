package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/fakesentry"
)

const rlKey = "0123456789abcdef0123456789abcdef"

// proxyRelay is app.Run in proxy mode on dir against up; stop ends it.
type proxyRelay struct {
	url    string
	cancel context.CancelFunc
	done   chan error
}

func startProxyRelay(t *testing.T, dir, upstreamURL string, port int) *proxyRelay {
	t.Helper()
	yml := fmt.Sprintf("relay:\n  mode: proxy\n  upstream: %s\n  host: 127.0.0.1\n  port: %d\nhttp:\n  retry_delay: 50ms\n  max_retry_interval: 200ms\nlimits:\n  shutdown_timeout: 3s\n", upstreamURL, port)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &proxyRelay{url: fmt.Sprintf("http://127.0.0.1:%d/api/42/envelope/", port), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- Run(ctx, cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *proxyRelay) stop(t *testing.T) {
	t.Helper()
	if r.done == nil {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	r.done = nil
}

type answer struct {
	status             int
	retryAfter, limits string
}

// send posts one envelope with an item of type typ and the given event id,
// retrying while the relay is not listening yet.
func (r *proxyRelay) send(t *testing.T, typ, id string) answer {
	t.Helper()
	body := `{"event_id":"` + id + `"}` + "\n" + `{"type":"` + typ + `"}` + "\n{}\n"
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, r.url, strings.NewReader(body))
		req.Header.Set("X-Sentry-Auth", "Sentry sentry_key="+rlKey+", sentry_version=7")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				return answer{resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("X-Sentry-Rate-Limits")}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay never answered (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sendUntilRefused sends envelopes with ids from first on until the relay
// answers 429 itself, and returns that answer and the refused id. Between
// the upstream's 429 and the shared limit reaching ingest (a bucket write
// and its watch) a few envelopes may still be stored; the worker holds them.
func (r *proxyRelay) sendUntilRefused(t *testing.T, typ string, first int) (answer, string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i := first; ; i++ {
		a := r.send(t, typ, eventID(i))
		if a.status == http.StatusTooManyRequests {
			return a, eventID(i)
		}
		if a.status != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("no 429 from the relay; last answer %+v", a)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func eventID(i int) string { return fmt.Sprintf("%032x", i) }

func waitRL(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The upstream answers 429 with Retry-After: 2 → the relay's worker learns
// the limit and shares it → the next envelope of that key gets 429 from the
// relay itself, with Retry-After and X-Sentry-Rate-Limits → once the 2 s
// are over it is accepted again. The envelope that got the upstream's 429
// is held by the worker and delivered; the refused one was never stored.
func TestRunRefusesRateLimitedKeyUntilRetryAfter(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	up.SetMode(fakesentry.RateLimited("2", "", 1))
	r := startProxyRelay(t, t.TempDir(), up.URL(), freePort(t))

	if a := r.send(t, "event", eventID(1)); a.status != http.StatusOK {
		t.Fatalf("first envelope: %+v", a)
	}
	var t429 time.Time
	waitRL(t, "the upstream's 429", func() bool {
		for _, q := range up.Requests() {
			if q.Status == http.StatusTooManyRequests {
				t429 = q.At
				return true
			}
		}
		return false
	})
	// The worker shares the limit right after the 429; ingest sees it through
	// the bucket's watch a moment later.
	a, refused := r.sendUntilRefused(t, "event", 100)
	secs, err := strconv.Atoi(a.retryAfter)
	if err != nil || secs < 1 || secs > 2 {
		t.Fatalf("Retry-After = %q, want 1 or 2", a.retryAfter)
	}
	if a.limits != a.retryAfter+"::key:generic" {
		t.Fatalf("X-Sentry-Rate-Limits = %q, want %q", a.limits, a.retryAfter+"::key:generic")
	}
	time.Sleep(time.Until(t429.Add(2100 * time.Millisecond)))
	if a := r.send(t, "event", eventID(3)); a.status != http.StatusOK {
		t.Fatalf("after Retry-After: %+v", a)
	}
	waitRL(t, "the held and the new envelope delivered", func() bool {
		ids := up.EventIDs()
		return ids[eventID(1)] >= 1 && ids[eventID(3)] >= 1
	})
	if n := up.EventIDs()[refused]; n != 0 {
		t.Fatalf("the envelope refused with 429 reached the upstream %d times", n)
	}
}

// A per-category limit refuses only that category, and outlives a restart of
// the relay for as long as it lasts (the bucket is in JetStream's store).
func TestRunCategoryLimitSurvivesRestart(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	up.SetMode(fakesentry.RateLimited("30", "30:error:key:quota", 1))
	dir, port := t.TempDir(), freePort(t)
	r := startProxyRelay(t, dir, up.URL(), port)
	if a := r.send(t, "event", eventID(1)); a.status != http.StatusOK {
		t.Fatalf("first envelope: %+v", a)
	}
	waitRL(t, "the upstream's 429", func() bool { return len(up.Requests()) > 0 })
	_, refused := r.sendUntilRefused(t, "event", 100)
	r.stop(t)

	r = startProxyRelay(t, dir, up.URL(), port)
	a := r.send(t, "event", eventID(3))
	if a.status != http.StatusTooManyRequests || !strings.HasSuffix(a.limits, ":error:key:quota") {
		t.Fatalf("after restart, error: %+v; want 429 with the error limit", a)
	}
	if a := r.send(t, "transaction", eventID(4)); a.status != http.StatusOK || a.limits != "" {
		t.Fatalf("after restart, transaction: %+v; want 200 without limits", a)
	}
	waitRL(t, "the transaction delivered", func() bool { return up.EventIDs()[eventID(4)] >= 1 })
	for _, id := range []string{refused, eventID(3)} {
		if n := up.EventIDs()[id]; n != 0 {
			t.Fatalf("refused envelope %s reached the upstream %d times", id, n)
		}
	}
}

// A project file's quota with limit 0 is enforced at ingest without any
// answer from the upstream: errors get the relay's own 429 with Relay's
// headers (a minute, the quota's scope and reason), transactions go through,
// and nothing refused reaches the upstream.
func TestRunEnforcesProjectRejectAllQuota(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	dir, port := t.TempDir(), freePort(t)
	if err := os.MkdirAll(filepath.Join(dir, "projects"), 0o700); err != nil {
		t.Fatal(err)
	}
	doc := `{"publicKeys":[{"publicKey":"` + rlKey + `"}],"config":{"quotas":[
		{"id":"no-errors","categories":["error"],"scope":"project","limit":0,"reasonCode":"disabled_here"}]}}`
	if err := os.WriteFile(filepath.Join(dir, "projects", "42.json"), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startProxyRelay(t, dir, up.URL(), port)
	a := r.send(t, "event", eventID(1))
	if a.status != http.StatusTooManyRequests || a.retryAfter != "60" || a.limits != "60:error:project:disabled_here" {
		t.Fatalf("error under a limit-0 quota: %+v; want 429, Retry-After 60, 60:error:project:disabled_here", a)
	}
	if a := r.send(t, "transaction", eventID(2)); a.status != http.StatusOK || a.limits != "" {
		t.Fatalf("transaction: %+v; want 200 without limits", a)
	}
	waitRL(t, "the transaction delivered", func() bool { return up.EventIDs()[eventID(2)] >= 1 })
	if n := up.EventIDs()[eventID(1)]; n != 0 {
		t.Fatalf("the refused error reached the upstream %d times", n)
	}
}
