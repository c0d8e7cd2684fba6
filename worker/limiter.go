package worker

import (
	"sync"
	"time"

	"github.com/relayhq/relay/internal/upstream"
)

// rateLimiter remembers the upstream's 429s per public key, shared by every
// consumer and the drainer, so that once one of them got a 429 nobody sends
// for that key (and those data categories) before the limit expires.
//
// Invariants: the limits of a key are merged as Relay's RateLimits::add does
// (per categories and scope, the later expiry wins; upstream.RateLimits
// implements it); expired limits are removed lazily on lookup; an envelope
// whose categories are unknown (nil) is held by every limit of its key.
//
// Limits scoped to an organisation or project are kept per key too: this
// relay does not know which keys share an organisation, so each key learns
// such a limit from its own first 429 (one request per key, not a storm).
type rateLimiter struct {
	now func() time.Time

	mu   sync.Mutex
	keys map[string]upstream.RateLimits
}

func newRateLimiter(now func() time.Time) *rateLimiter {
	return &rateLimiter{now: now, keys: make(map[string]upstream.RateLimits)}
}

// record merges limits learnt for key.
func (l *rateLimiter) record(key string, limits upstream.RateLimits) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	// The new limits first: a set holds at most 64 limits and Merge drops
	// what does not fit, so the limits that answer the latest 429 — the one
	// holding the envelope that got it — must never be the ones dropped.
	merged := limits.Active(now).Merge(l.keys[key].Active(now))
	if merged.Len() == 0 {
		delete(l.keys, key)
		return
	}
	l.keys[key] = merged
}

// has reports whether key has any recorded limit (maybe expired).
func (l *rateLimiter) has(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.keys[key]
	return ok
}

// until returns when the limits that hold an envelope of key with categories
// cats expire, or the zero time when none does. cats == nil means unknown:
// every limit of the key applies.
func (l *rateLimiter) until(key string, cats []string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	rl, ok := l.keys[key]
	if !ok {
		return time.Time{}
	}
	now := l.now()
	active := rl.Active(now)
	if active.Len() == 0 {
		delete(l.keys, key)
		return time.Time{}
	}
	if active.Len() != rl.Len() {
		l.keys[key] = active
	}
	if cats == nil {
		var u time.Time
		for _, lim := range active.Limits() {
			if lim.Until.After(u) {
				u = lim.Until
			}
		}
		return u
	}
	u, _ := active.IsLimited(cats, now)
	return u
}

// wait is how long an envelope of key with categories cats must still wait.
// A key with no limit costs one map lookup: cats are not worked out.
func (l *rateLimiter) wait(key string, cats *categories) time.Duration {
	if !l.has(key) {
		return 0
	}
	u := l.until(key, cats.get())
	if u.IsZero() {
		return 0
	}
	return max(u.Sub(l.now()), 0)
}

// limitsFrom turns a 429 into the limits to record (§4.3): the parsed
// X-Sentry-Rate-Limits when one of them holds this envelope; otherwise a
// synthesised limit of Retry-After (or, with neither header, defaultWait —
// the SDK rule; Relay would cache nothing) for the whole key when the
// header gave nothing, or for the envelope's categories when it gave limits
// for other ones. Either way the envelope that got the 429 waits before it
// is sent again.
func limitsFrom(res upstream.Result, cats []string, now time.Time, defaultWait time.Duration) upstream.RateLimits {
	rl := res.RateLimits.Active(now)
	covered := false
	if cats == nil {
		covered = rl.Len() > 0
	} else {
		_, covered = rl.IsLimited(cats, now)
	}
	if covered {
		return rl
	}
	d := res.RetryAfter
	if d <= 0 {
		d = defaultWait
	}
	synth := upstream.RateLimit{Scope: upstream.ScopeKey, ReasonCode: "generic", Until: now.Add(d)}
	if rl.Len() > 0 {
		// Only known categories: a limit on "unknown" would match nothing
		// and let the envelope be sent again at once.
		for _, c := range cats {
			if upstream.CanonicalCategory(c) != upstream.CategoryUnknown {
				synth.Categories = append(synth.Categories, c)
			}
		}
	}
	// The synthesised limit first, for the same reason as in record: a
	// header full of other entries must not push it out of the set.
	return upstream.RateLimits{}.Add(synth).Merge(rl)
}
