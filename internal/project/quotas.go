package project

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/internal/upstream"
)

// RejectAllSecs is how long the refusal of a quota with limit 0 lasts, as
// Relay's REJECT_ALL_SECS: the SDK is told to come back in a minute, by when
// a changed project config may allow the data again.
const RejectAllSecs = 60

var quotaErrors = metrics.NewCounter(`relay_project_quota_errors_total{reason="unreadable"}`)

// quota is one entry of a project config's `quotas`, the fields a relay
// acts on.
type quota struct {
	ID         string          `json:"id"`
	Categories []string        `json:"categories"`
	Scope      string          `json:"scope"`
	ScopeID    json.RawMessage `json:"scopeId"`
	Limit      *uint64         `json:"limit"`
	ReasonCode string          `json:"reasonCode"`
}

// quotaCache holds, per project state, the header form of its limit-0
// quotas, so that a request costs a map lookup, not a JSON decode. States
// are replaced as configs are refetched; the cache starts over once it holds
// maxQuotaCache of them, so replaced states do not pile up.
type quotaCache struct {
	mu sync.Mutex
	m  map[*State][]string // X-Sentry-Rate-Limits entries without retry_after
}

const maxQuotaCache = 4096

func (c *quotaCache) get(e *Entry) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[e.State]; ok {
		return v
	}
	if c.m == nil || len(c.m) >= maxQuotaCache {
		c.m = make(map[*State][]string)
	}
	v := rejectAllEntries(e)
	c.m[e.State] = v
	return v
}

// QuotaLimits returns the rate limits publicKey's project config imposes on
// its own: its quotas with limit 0 ("reject all" — Relay's static quotas),
// each lasting RejectAllSecs from now. Quotas that count (limit above 0) need
// Sentry's rate-limit store; an external relay leaves them to the upstream,
// as Sentry's external Relays do, and learns them from its 429s. A key
// without a known state has none.
func (r *Registry) QuotaLimits(publicKey string, now time.Time) upstream.RateLimits {
	st, e := r.Lookup(publicKey)
	if st != Known || e.State == nil || len(e.State.Config.Quotas) == 0 {
		return upstream.RateLimits{}
	}
	entries := r.quotas.get(e)
	if len(entries) == 0 {
		return upstream.RateLimits{}
	}
	prefix := strconv.Itoa(RejectAllSecs) + ":"
	parts := make([]string, len(entries))
	for i, x := range entries {
		parts[i] = prefix + x
	}
	return upstream.ParseRateLimits(strings.Join(parts, ","), now)
}

// rejectAllEntries turns the limit-0 quotas that apply to e's key into
// X-Sentry-Rate-Limits entries ("categories:scope:reason_code"). A quota
// whose scope id names another organization, project or key does not apply
// (Relay's Quota::matches); one listing only categories Relay does not know
// applies to nothing (an empty list would mean every category). An entry
// that does not decode is skipped and counted, never guessed at.
func rejectAllEntries(e *Entry) []string {
	var raw []json.RawMessage
	if err := json.Unmarshal(e.State.Config.Quotas, &raw); err != nil {
		quotaErrors.Inc()
		return nil
	}
	var out []string
	for _, b := range raw {
		var q quota
		if err := json.Unmarshal(b, &q); err != nil {
			quotaErrors.Inc()
			continue
		}
		if q.Limit == nil || *q.Limit != 0 {
			continue
		}
		var scopeID uint64
		switch q.Scope {
		case "organization":
			scopeID = e.State.OrganizationID
		case "project":
			scopeID = e.ProjectID
		case "key":
			scopeID = e.Key.NumericID
		default:
			continue // a scope this relay cannot tell (e.g. "global"): Sentry decides
		}
		if id, ok := quotaScopeID(q.ScopeID); ok && id != scopeID {
			continue
		}
		cats := make([]string, 0, len(q.Categories))
		for _, c := range q.Categories {
			if c := upstream.CanonicalCategory(c); c != upstream.CategoryUnknown {
				cats = append(cats, c)
			}
		}
		if len(q.Categories) > 0 && len(cats) == 0 {
			continue
		}
		out = append(out, strings.Join(cats, ";")+":"+q.Scope+":"+sanitizeReason(q.ReasonCode))
	}
	return out
}

// quotaScopeID reads scopeId, a string in Relay's schema ("42"); a number is
// accepted too. Absent or null: the quota applies to every id of its scope.
func quotaScopeID(b json.RawMessage) (uint64, bool) {
	if len(nullToNil(b)) == 0 {
		return 0, false
	}
	var s string
	if json.Unmarshal(b, &s) != nil {
		s = string(b)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return ^uint64(0), true // an id we cannot read matches nothing
	}
	return id, true
}

// sanitizeReason keeps a reason code from breaking the header's syntax.
func sanitizeReason(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ':' || r == ',' || r == ';' || r < ' ' || r > '~' {
			return -1
		}
		return r
	}, s)
}
