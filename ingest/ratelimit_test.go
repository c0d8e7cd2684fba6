package ingest

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/ratelimit"
	"github.com/relayhq/relay/internal/upstream"
)

// staticLimits is a RateLimitSource with fixed limits per key.
type staticLimits struct {
	mu   sync.Mutex
	keys map[string]upstream.RateLimits
}

func (s *staticLimits) Limits(key string) upstream.RateLimits {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[key]
}

var _ RateLimitSource = (*staticLimits)(nil)

// testClock is an injected clock.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC).UnixNano())
	return c
}
func (c *testClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *testClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// env builds an envelope with an event id and the given item lines (each a
// header line and a payload line).
func env(items ...string) []byte {
	return []byte(`{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}` + "\n" + strings.Join(items, "\n") + "\n")
}

const (
	itEvent       = `{"type":"event"}` + "\n" + `{"message":"x"}`
	itTransaction = `{"type":"transaction"}` + "\n" + `{"type":"transaction"}`
	itAttachment  = `{"type":"attachment","filename":"a.txt"}` + "\n" + `hello`
	itMinidump    = `{"type":"attachment","attachment_type":"event.minidump","filename":"m.dmp"}` + "\n" + `MDMP`
	itSession     = `{"type":"session"}` + "\n" + `{"sid":"1"}`
	itSessions    = `{"type":"sessions"}` + "\n" + `{"aggregates":[]}`
	itReport      = `{"type":"client_report"}` + "\n" + `{"discarded_events":[]}`
	itUnknown     = `{"type":"future_thing"}` + "\n" + `x`
	itUserReport  = `{"type":"user_report"}` + "\n" + `{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}`
)

func limit(cats string, scope, reason string, d time.Duration, now time.Time) upstream.RateLimit {
	var cs []string
	if cats != "" {
		cs = strings.Split(cats, ";")
	}
	return upstream.RateLimit{Categories: cs, Scope: scope, ReasonCode: reason, Until: now.Add(d)}
}

// itemTypes lists the item types of a published envelope.
func itemTypes(t *testing.T, b []byte) string {
	t.Helper()
	e, err := envelope.Parse(b)
	if err != nil {
		t.Fatalf("published envelope does not parse: %v", err)
	}
	var out []string
	for _, it := range e.Items {
		out = append(out, it.Type)
	}
	return strings.Join(out, ",")
}

// Cached limits are enforced as Relay does: limited items are removed
// before the publish, what is left is stored, and any match answers 429
// with Retry-After and X-Sentry-Rate-Limits in Relay's format.
func TestRateLimitEnforcement(t *testing.T) {
	clk := newTestClock()
	now := clk.now()
	cases := []struct {
		name      string
		limits    []upstream.RateLimit
		path      string
		body      []byte
		status    int
		stored    string // item types published; "-" for nothing
		header    string // X-Sentry-Rate-Limits; "" for absent
		retry     string
		dropCount map[string]uint64 // reason/category → items dropped
	}{
		{name: "key-wide limit refuses everything",
			limits: []upstream.RateLimit{limit("", "key", "generic", 2*time.Second, now)},
			body:   env(itEvent, itAttachment), status: 429, stored: "-", header: "2::key:generic", retry: "2",
			dropCount: map[string]uint64{"event_rate_limited/error": 1, "event_rate_limited/attachment": 1}},
		{name: "error limit drops the event and what depends on it, keeps the rest",
			limits: []upstream.RateLimit{limit("error", "organization", "quota", 60*time.Second, now)},
			body:   env(itEvent, itAttachment, itUserReport, itSession, itReport, itUnknown), status: 429,
			stored: "session,client_report,future_thing", header: "60:error:organization:quota", retry: "60"},
		{name: "a limit on another category changes nothing",
			limits: []upstream.RateLimit{limit("transaction", "key", "", 60*time.Second, now)},
			body:   env(itEvent, itAttachment), status: 200, stored: "event,attachment"},
		{name: "transaction limit drops the transaction",
			limits: []upstream.RateLimit{limit("transaction", "key", "", 60*time.Second, now)},
			body:   env(itTransaction), status: 429, stored: "-", header: "60:transaction:key", retry: "60"},
		{name: "indexed-only limit does not drop the transaction",
			limits: []upstream.RateLimit{limit("transaction_indexed", "key", "", 60*time.Second, now)},
			body:   env(itTransaction), status: 200, stored: "transaction"},
		{name: "attachment limit drops the attachment, keeps the event",
			limits: []upstream.RateLimit{limit("attachment", "project", "", 30*time.Second, now)},
			body:   env(itEvent, itAttachment), status: 429, stored: "event", header: "30:attachment:project", retry: "30"},
		{name: "attachment limit keeps a crash dump, which creates the event",
			limits: []upstream.RateLimit{limit("attachment", "project", "", 30*time.Second, now)},
			body:   env(itMinidump), status: 429, stored: "attachment", header: "30:attachment:project", retry: "30"},
		{name: "error limit drops a crash dump",
			limits: []upstream.RateLimit{limit("error", "key", "", 30*time.Second, now)},
			body:   env(itMinidump, itReport), status: 429, stored: "client_report", header: "30:error:key", retry: "30"},
		{name: "session limit drops a session, keeps session aggregates but answers 429",
			limits: []upstream.RateLimit{limit("session", "key", "", 5*time.Second, now)},
			body:   env(itSession, itSessions), status: 429, stored: "sessions", header: "5:session:key", retry: "5"},
		{name: "client reports are never limited and alone earn no 429",
			limits: []upstream.RateLimit{limit("", "key", "", 60*time.Second, now)},
			body:   env(itReport), status: 200, stored: "client_report"},
		{name: "only the matched limits are announced, Retry-After is the longest",
			limits: []upstream.RateLimit{limit("error", "key", "", 10*time.Second, now),
				limit("attachment", "key", "a", 1500*time.Millisecond, now),
				limit("replay", "key", "", 99*time.Second, now)},
			body: env(itEvent, itAttachment), status: 429, stored: "-", header: "10:error:key, 2:attachment:key:a", retry: "10"},
		{name: "store endpoint enforces too",
			limits: []upstream.RateLimit{limit("error", "key", "", 3*time.Second, now)},
			path:   "/api/42/store/", body: []byte(`{"message":"x"}`), status: 429, stored: "-", header: "3:error:key", retry: "3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var rl upstream.RateLimits
			for _, l := range tc.limits {
				rl = rl.Add(l)
			}
			pub := &fakePublisher{}
			cfg := testConfig()
			cfg.RateLimits = &staticLimits{keys: map[string]upstream.RateLimits{testKey: rl}}
			srv := New(cfg, pub, nil, testLogger(t))
			srv.now = clk.now
			ts := startServer(t, srv)
			path := tc.path
			if path == "" {
				path = "/api/42/envelope/"
			}
			before := map[string]uint64{}
			for k := range tc.dropCount {
				before[k] = itemCounter(k)
			}
			res := do(t, "POST", ts.URL+path, hdr("X-Sentry-Auth", testAuth), tc.body, false)
			assertCommonHeaders(t, res)
			if res.status != tc.status {
				t.Fatalf("status = %d (%s), want %d", res.status, res.body, tc.status)
			}
			if got := res.header.Get("X-Sentry-Rate-Limits"); got != tc.header {
				t.Errorf("X-Sentry-Rate-Limits = %q, want %q", got, tc.header)
			}
			if got := res.header.Get("Retry-After"); got != tc.retry {
				t.Errorf("Retry-After = %q, want %q", got, tc.retry)
			}
			if tc.status == 429 {
				if d := res.errorBody(t).Detail; d != rateLimitDetail {
					t.Errorf("detail = %q", d)
				}
			}
			msgs := pub.messages()
			switch {
			case tc.stored == "-" && len(msgs) != 0:
				t.Fatalf("published %d messages, want none", len(msgs))
			case tc.stored != "-" && len(msgs) != 1:
				t.Fatalf("published %d messages, want 1", len(msgs))
			case tc.stored != "-":
				if got := itemTypes(t, msgs[0].Envelope); got != tc.stored {
					t.Errorf("stored items %q, want %q", got, tc.stored)
				}
			}
			for k, n := range tc.dropCount {
				if got := itemCounter(k) - before[k]; got != n {
					t.Errorf("dropped %s = %d, want %d", k, got, n)
				}
			}
		})
	}
}

func itemCounter(k string) uint64 {
	reason, cat, _ := strings.Cut(k, "/")
	return metrics.GetOrCreateCounter(`relay_ingest_rate_limited_items_total{reason="` + reason + `",category="` + cat + `"}`).Get()
}

// A limit expires by the clock: refused (429 with Retry-After 2) until 2 s
// have passed, accepted after. Other keys are never touched.
func TestRateLimitExpires(t *testing.T) {
	clk := newTestClock()
	other := "fedcba9876543210fedcba9876543210"
	src := &staticLimits{keys: map[string]upstream.RateLimits{
		testKey: upstream.RateLimits{}.Add(limit("", "key", "generic", 2*time.Second, clk.now())),
	}}
	pub := &fakePublisher{}
	cfg := testConfig()
	cfg.RateLimits = src
	srv := New(cfg, pub, nil, testLogger(t))
	srv.now = clk.now
	ts := startServer(t, srv)
	body := env(itEvent)
	if res := do(t, "POST", ts.URL+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth), body, false); res.status != 429 || res.header.Get("Retry-After") != "2" {
		t.Fatalf("limited: status %d, Retry-After %q", res.status, res.header.Get("Retry-After"))
	}
	otherAuth := strings.Replace(testAuth, testKey, other, 1)
	if res := do(t, "POST", ts.URL+"/api/42/envelope/", hdr("X-Sentry-Auth", otherAuth), body, false); res.status != 200 {
		t.Fatalf("other key: status %d", res.status)
	}
	clk.add(1900 * time.Millisecond)
	if res := do(t, "POST", ts.URL+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth), body, false); res.status != 429 || res.header.Get("Retry-After") != "1" {
		t.Fatalf("after 1.9 s: status %d, Retry-After %q", res.status, res.header.Get("Retry-After"))
	}
	clk.add(100 * time.Millisecond)
	if res := do(t, "POST", ts.URL+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth), body, false); res.status != 200 {
		t.Fatalf("after 2 s: status %d (%s)", res.status, res.body)
	}
	if n := len(pub.messages()); n != 2 {
		t.Fatalf("published %d, want 2 (other key, after expiry)", n)
	}
}

// A route that does not enforce limits stores what the limits hold (the
// worker then holds it): the opt-out the minidump, unreal, cron and NEL
// routes need.
func TestRateLimitRouteOptOut(t *testing.T) {
	for i := range routeNames {
		rt := route(i)
		want := rt == routeEnvelope || rt == routeStore || rt == routeStoreLegacy || rt == routeTunnel
		if got := rt.enforcesRateLimits(); got != want {
			t.Errorf("%s: enforcesRateLimits = %v, want %v", routeNames[rt], got, want)
		}
	}
	clk := newTestClock()
	cfg := testConfig()
	cfg.RateLimits = &staticLimits{keys: map[string]upstream.RateLimits{
		testKey: upstream.RateLimits{}.Add(limit("", "key", "", time.Minute, clk.now()))}}
	srv := New(cfg, &fakePublisher{}, nil, testLogger(t))
	srv.now = clk.now
	e, _ := envelope.Parse(env(itEvent))
	if got := srv.enforceRateLimits(routeHealthLive, testKey, e); got.Len() != 0 || len(e.Items) != 1 {
		t.Fatalf("route without enforcement: matched %d, items %d", got.Len(), len(e.Items))
	}
	if got := srv.enforceRateLimits(routeEnvelope, testKey, e); got.Len() != 1 || len(e.Items) != 0 {
		t.Fatalf("envelope route: matched %d, items %d", got.Len(), len(e.Items))
	}
}

// Two ingest servers on one JetStream (two relay processes of a deployment)
// share the limits through the bucket: a limit recorded by one process —
// as its worker does on an upstream 429 — is enforced by the other, which
// reads it from memory kept current by the bucket's watch.
func TestRateLimitSharedByTwoServers(t *testing.T) {
	conn := openStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func() *ratelimit.Shared {
		kv, err := conn.KeyValue(ctx, ratelimit.BucketName, ratelimit.BucketTTL)
		if err != nil {
			t.Fatalf("KeyValue: %v", err)
		}
		s, err := ratelimit.Open(ctx, kv, nil, testLogger(t))
		if err != nil {
			t.Fatalf("ratelimit.Open: %v", err)
		}
		return s
	}
	sharedA, sharedB := open(), open()
	serve := func(src RateLimitSource) string {
		cfg := testConfig()
		cfg.RateLimits = src
		return startServer(t, New(cfg, conn, nil, testLogger(t))).URL
	}
	urlA, urlB := serve(sharedA), serve(sharedB)
	body := env(itEvent)
	for _, u := range []string{urlA, urlB} {
		if res := do(t, "POST", u+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth), body, false); res.status != 200 {
			t.Fatalf("before the limit: %d %s", res.status, res.body)
		}
	}
	// Process A learns a limit on errors.
	if err := sharedA.Record(ctx, testKey, upstream.RateLimits{}.Add(limit("error", "key", "quota", time.Minute, time.Now()))); err != nil {
		t.Fatalf("Record: %v", err)
	}
	accepted := 2
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := do(t, "POST", urlB+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth), body, false)
		if res.status == 429 {
			if got := res.header.Get("X-Sentry-Rate-Limits"); !strings.HasSuffix(got, ":error:key:quota") {
				t.Fatalf("B: X-Sentry-Rate-Limits = %q", got)
			}
			break
		}
		if res.status != 200 || time.Now().After(deadline) {
			t.Fatalf("B never enforced A's limit: last answer %d %s", res.status, res.body)
		}
		accepted++ // the watch had not caught up yet: stored
		time.Sleep(10 * time.Millisecond)
	}
	// Transactions still go through on both.
	for _, u := range []string{urlA, urlB} {
		if res := do(t, "POST", u+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth), env(itTransaction), false); res.status != 200 {
			t.Fatalf("transaction: %d %s", res.status, res.body)
		}
	}
	// What was answered 200 and the two transactions; none of the 429s.
	msgs := fetchAll(t, conn, accepted+2)
	for _, m := range msgs[len(msgs)-2:] {
		if got := itemTypes(t, m.Envelope); got != "transaction" {
			t.Fatalf("last stored %q", got)
		}
	}
}
