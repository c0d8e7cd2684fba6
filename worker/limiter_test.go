package worker

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/upstream"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestRateLimiter(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	lim := func(secs int, cats ...string) upstream.RateLimit {
		return upstream.RateLimit{Categories: cats, Scope: upstream.ScopeKey, Until: at(secs)}
	}
	set := func(ls ...upstream.RateLimit) upstream.RateLimits {
		var r upstream.RateLimits
		for _, l := range ls {
			r = r.Add(l)
		}
		return r
	}
	type rec struct {
		key    string
		limits upstream.RateLimits
	}
	tests := []struct {
		name    string
		records []rec
		now     int
		key     string
		cats    []string
		want    time.Duration
	}{
		{"nothing recorded", nil, 0, "k", []string{"error"}, 0},
		{"key-wide limit holds every category", []rec{{"k", set(lim(2))}}, 0, "k", []string{"transaction"}, 2 * time.Second},
		{"key-wide limit holds unknown categories", []rec{{"k", set(lim(2))}}, 0, "k", nil, 2 * time.Second},
		{"other key is free", []rec{{"k", set(lim(2))}}, 0, "other", []string{"error"}, 0},
		{"category limit holds its category", []rec{{"k", set(lim(5, "error"))}}, 1, "k", []string{"error", "attachment"}, 4 * time.Second},
		{"category limit leaves other categories free", []rec{{"k", set(lim(5, "transaction"))}}, 0, "k", []string{"error"}, 0},
		{"unknown categories wait for every limit", []rec{{"k", set(lim(5, "transaction"), lim(9, "error"))}}, 0, "k", nil, 9 * time.Second},
		{"the longest matching limit wins", []rec{{"k", set(lim(3, "error"), lim(7))}}, 0, "k", []string{"error"}, 7 * time.Second},
		{"merge keeps the later expiry", []rec{{"k", set(lim(8, "error"))}, {"k", set(lim(3, "error"))}}, 0, "k", []string{"error"}, 8 * time.Second},
		{"merge extends", []rec{{"k", set(lim(3, "error"))}, {"k", set(lim(8, "error"))}}, 0, "k", []string{"error"}, 8 * time.Second},
		{"expired limits hold nothing", []rec{{"k", set(lim(2))}}, 2, "k", []string{"error"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := t0
			l := newRateLimiter(func() time.Time { return now })
			for _, r := range tt.records {
				l.record(r.key, r.limits)
			}
			now = at(tt.now)
			if got := l.wait(tt.key, knownCategories(tt.cats)); got != tt.want {
				t.Fatalf("wait = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRateLimiterForgetsExpiredKeys(t *testing.T) {
	now := t0
	l := newRateLimiter(func() time.Time { return now })
	l.record("k", upstream.RateLimits{}.Add(upstream.RateLimit{Until: t0.Add(time.Second)}))
	now = t0.Add(2 * time.Second)
	if w := l.wait("k", knownCategories(nil)); w != 0 {
		t.Fatalf("wait = %s after expiry", w)
	}
	if len(l.keys) != 0 {
		t.Fatalf("expired key kept: %v", l.keys)
	}
}

func TestLimitsFrom(t *testing.T) {
	const def = time.Minute
	hdr := func(h string) upstream.RateLimits { return upstream.ParseRateLimits(h, t0) }
	tests := []struct {
		name      string
		res       upstream.Result
		cats      []string
		ask       []string // categories to look up afterwards
		want      time.Duration
		wantCount int
	}{
		{"header covers the envelope", upstream.Result{Class: upstream.RateLimited, RetryAfter: 60 * time.Second, RateLimits: hdr("2:error:key")},
			[]string{"error"}, []string{"error"}, 2 * time.Second, 1},
		{"header covers the envelope, other categories stay free", upstream.Result{Class: upstream.RateLimited, RetryAfter: 60 * time.Second, RateLimits: hdr("2:error:key")},
			[]string{"error"}, []string{"transaction"}, 0, 1},
		{"no header: Retry-After for the whole key", upstream.Result{Class: upstream.RateLimited, RetryAfter: 2 * time.Second},
			[]string{"error"}, []string{"transaction"}, 2 * time.Second, 1},
		{"neither header: the SDK default for the whole key", upstream.Result{Class: upstream.RateLimited},
			[]string{"error"}, []string{"session"}, def, 1},
		{"header for other categories: Retry-After for the envelope's", upstream.Result{Class: upstream.RateLimited, RetryAfter: 3 * time.Second, RateLimits: hdr("9:transaction:key")},
			[]string{"error", "attachment"}, []string{"attachment"}, 3 * time.Second, 2},
		{"header for other categories: unknown categories are not a limit", upstream.Result{Class: upstream.RateLimited, RetryAfter: 3 * time.Second, RateLimits: hdr("9:transaction:key")},
			[]string{"nonsense"}, []string{"error"}, 3 * time.Second, 2},
		{"unknown envelope categories: any header limit covers", upstream.Result{Class: upstream.RateLimited, RetryAfter: 3 * time.Second, RateLimits: hdr("9:transaction:key")},
			nil, nil, 9 * time.Second, 1},
		{"expired header limits are ignored", upstream.Result{Class: upstream.RateLimited, RetryAfter: 4 * time.Second, RateLimits: upstream.ParseRateLimits("1:error:key", t0.Add(-time.Hour))},
			[]string{"error"}, []string{"error"}, 4 * time.Second, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := limitsFrom(tt.res, tt.cats, t0, def)
			if got.Len() != tt.wantCount {
				t.Errorf("limits = %+v, want %d", got.Limits(), tt.wantCount)
			}
			l := newRateLimiter(func() time.Time { return t0 })
			l.record("k", got)
			if w := l.wait("k", knownCategories(tt.ask)); w != tt.want {
				t.Errorf("wait(%v) = %s, want %s (limits %+v)", tt.ask, w, tt.want, got.Limits())
			}
			if w := l.wait("k", knownCategories(tt.cats)); w <= 0 {
				t.Errorf("the envelope that got the 429 may be sent again at once (limits %+v)", got.Limits())
			}
		})
	}
}

func TestEnvelopeCategories(t *testing.T) {
	tests := []struct {
		name string
		env  string
		want []string
	}{
		{"event with attachment", "{}\n{\"type\":\"event\"}\n{}\n{\"type\":\"attachment\",\"length\":2}\nab\n", []string{"error", "attachment", "attachment_item"}},
		{"two events count once", "{}\n{\"type\":\"event\"}\n{}\n{\"type\":\"event\"}\n{}\n", []string{"error"}},
		{"transaction", "{}\n{\"type\":\"transaction\"}\n{}\n", []string{"transaction", "transaction_indexed"}},
		{"client report only: known, no category", "{}\n{\"type\":\"client_report\"}\n{}\n", []string{}},
		{"garbage: unknown", "not an envelope", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := envelopeCategories([]byte(tt.env))
			if (got == nil) != (tt.want == nil) || !slices.Equal(got, tt.want) {
				t.Fatalf("categories = %#v, want %#v", got, tt.want)
			}
		})
	}
}

// manyOtherLimits is an X-Sentry-Rate-Limits value with more distinct
// entries than a set holds (upstream caps it at 64), none of which holds an
// error event: metric-bucket limits of many namespaces.
func manyOtherLimits(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "2:metric_bucket:organization:quota:ns%d", i)
	}
	return b.String()
}

// A 429 whose header is full of entries that do not hold the envelope still
// makes the envelope wait: the synthesised limit must not be the one left
// out when the set is at its cap — neither when the 429 is turned into
// limits nor when they are merged into what the key already had.
func TestLimitsFromFullHeaderStillHolds(t *testing.T) {
	res := upstream.Result{Class: upstream.RateLimited, RetryAfter: 5 * time.Second,
		RateLimits: upstream.ParseRateLimits(manyOtherLimits(100), t0)}
	cats := []string{"error"}
	got := limitsFrom(res, cats, t0, time.Minute)
	if _, ok := got.IsLimited(cats, t0); !ok {
		t.Fatalf("limitsFrom dropped the synthesised limit: %d limits, none holds %v", got.Len(), cats)
	}

	l := newRateLimiter(func() time.Time { return t0 })
	l.record(keyA, upstream.ParseRateLimits(manyOtherLimits(100), t0)) // the key's set is already full
	l.record(keyA, got)
	if w := l.wait(keyA, knownCategories(cats)); w != 5*time.Second {
		t.Fatalf("wait = %s after a 429 with Retry-After 5 s, want 5s: the envelope would be resent at once", w)
	}
}

// The same at the worker: such a 429, answered to every send, is sent once
// per Retry-After — not in a loop.
func TestRateLimitedFullHeaderDoesNotLoop(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.up.SetMode(fakesentry.RateLimited("2", manyOtherLimits(100), 0))
	ids := h.publish(1, keyA)
	h.start(fastCfg(Config{Concurrency: 1, FetchBatch: 1}))
	eventually(t, 10*time.Second, "the first 429", func() bool { return len(h.envelopeRequests()) >= 1 })
	time.Sleep(time.Second)
	if n := len(h.envelopeRequests()); n != 1 {
		t.Fatalf("%d requests within a second of a 429 with Retry-After 2 s, want 1: the envelope is resent in a loop", n)
	}
	h.up.SetMode(fakesentry.Normal())
	eventually(t, 10*time.Second, "accepted after the limit", func() bool { return h.up.Count() == 1 })
	h.checkLedger(ids, 0)
}
