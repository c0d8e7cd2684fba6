package upstream

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Rate-limit scopes as they appear on the wire (§4.1). Relay maps anything
// else to ScopeKey, the most specific scope.
const (
	ScopeOrganization = "organization"
	ScopeProject      = "project"
	ScopeKey          = "key"
	ScopeGlobal       = "global"
)

// CategoryUnknown is what an unrecognised category name parses to. A limit
// naming only unknown categories matches nothing: no item the relay sends
// belongs to a category it does not know (§4.1).
const CategoryUnknown = "unknown"

// categoryNames are the data category names of §4.4, indexed by Relay's
// numeric id (relay-base-schema DataCategory). The id order matters: Relay
// keeps a limit's categories sorted by id, and that is the order it writes
// them in X-Sentry-Rate-Limits ("4711:transaction;security:project").
var categoryNames = []string{
	"default", "error", "transaction", "security", "attachment", "session", "profile", "replay",
	"transaction_processed", "transaction_indexed", "monitor", "profile_indexed", "span",
	"monitor_seat", "feedback", "metric_bucket", "span_indexed", "profile_duration",
	"profile_chunk", "metric_second", "replay_video", "uptime", "attachment_item", "log_item",
	"log_byte", "profile_duration_ui", "profile_chunk_ui", "seer_autofix", "seer_scanner",
	"prevent_user", "prevent_review", "size_analysis", "installable_build", "trace_metric",
	"seer_user", "profile_backend", "profile_ui",
}

// categoryIDs maps names (and the inbound alias user_report_v2) to ids;
// CategoryUnknown is -1, as in Relay.
var categoryIDs = func() map[string]int {
	m := make(map[string]int, len(categoryNames)+2)
	for id, name := range categoryNames {
		m[name] = id
	}
	m["user_report_v2"] = m["feedback"]
	m[CategoryUnknown] = -1
	return m
}()

// CanonicalCategory returns the wire name of a data category, resolving
// aliases, or CategoryUnknown for a name Relay does not know.
func CanonicalCategory(name string) string {
	if id, ok := categoryIDs[name]; ok && id >= 0 {
		return categoryNames[id]
	}
	return CategoryUnknown
}

// categoryID returns the id of a canonical name (-1 for unknown).
func categoryID(name string) int {
	if id, ok := categoryIDs[name]; ok {
		return id
	}
	return -1
}

// maxRetryAfterSecs is the largest retry_after a time.Duration can hold.
// Relay treats a value whose expiry overflows its clock as already expired;
// we do the same rather than wrapping around.
const maxRetryAfterSecs = float64(math.MaxInt64 / int64(time.Second))

// RateLimit is one entry of X-Sentry-Rate-Limits, with its expiry resolved
// against the clock of the response that carried it.
type RateLimit struct {
	// Categories are canonical category names without duplicates, in
	// Relay's order (by category id; Relay treats them as a set). Empty
	// means every category.
	Categories []string
	// Scope is one of the Scope* constants.
	Scope string
	// ReasonCode is free text such as "quota_exceeded"; "" when absent.
	ReasonCode string
	// Namespaces are metric namespaces (only meaningful for metric_bucket).
	Namespaces []string
	// Until is when the limit expires.
	Until time.Time
}

// sameKey reports whether two limits describe the same thing (Relay's
// RateLimits::add compares the category set and the scope; namespaces are
// part of the identity in newer Relay versions, and we include them so that
// two namespace-specific limits never overwrite each other).
func (l RateLimit) sameKey(o RateLimit) bool {
	return l.Scope == o.Scope && slices.Equal(l.Categories, o.Categories) && slices.Equal(l.Namespaces, o.Namespaces)
}

// matches reports whether the limit, if active, applies to any of the given
// categories. Limits with namespaces apply only to metric buckets of those
// namespaces, which the relay never asks about; they match nothing here.
func (l RateLimit) matches(categories []string) bool {
	if len(l.Namespaces) > 0 {
		return false
	}
	if len(l.Categories) == 0 {
		return true
	}
	for _, c := range categories {
		c = CanonicalCategory(c)
		if c == CategoryUnknown {
			continue
		}
		if slices.Contains(l.Categories, c) {
			return true
		}
	}
	return false
}

// RateLimits is a set of rate limits, as learnt from an upstream or about to
// be announced to an SDK. The zero value is empty. Values are immutable:
// Add and Merge return a new set and never modify the receiver's storage, so
// a RateLimits can be shared between goroutines once built.
type RateLimits struct {
	limits []RateLimit
}

// Limits returns a copy of the limits in insertion order.
func (r RateLimits) Limits() []RateLimit {
	out := make([]RateLimit, len(r.limits))
	copy(out, r.limits)
	return out
}

// Len returns the number of limits, expired ones included.
func (r RateLimits) Len() int { return len(r.limits) }

// Add returns the set with l added. As in Relay, a limit with the same
// categories, scope (and namespaces) as an existing one replaces it only if
// it expires later.
func (r RateLimits) Add(l RateLimit) RateLimits {
	out := RateLimits{limits: make([]RateLimit, len(r.limits), len(r.limits)+1)}
	copy(out.limits, r.limits)
	out.add(l)
	return out
}

// add inserts l in place; only for sets whose storage nobody else sees.
// It returns false when l is new and the set already holds maxLimits.
func (r *RateLimits) add(l RateLimit) bool {
	l.Categories = normaliseSet(l.Categories, true)
	l.Namespaces = normaliseSet(l.Namespaces, false)
	if l.Scope == "" {
		l.Scope = ScopeKey
	}
	for i := range r.limits {
		if r.limits[i].sameKey(l) {
			if l.Until.After(r.limits[i].Until) {
				r.limits[i] = l
			}
			return true
		}
	}
	if len(r.limits) >= maxLimits {
		return false
	}
	r.limits = append(r.limits, l)
	return true
}

// maxLimits caps the distinct limits one set holds. Real headers carry a
// handful; the cap keeps a hostile or broken header (up to the 1 MB Go lets
// through) from costing quadratic time. Limits beyond it are ignored and
// counted.
const maxLimits = 64

var rateLimitsOverflow = metrics.NewCounter(`relay_upstream_rate_limits_ignored_total{reason="too_many"}`)

// Merge returns the union of r and o, keeping per (categories, scope,
// namespaces) the limit with the later expiry.
func (r RateLimits) Merge(o RateLimits) RateLimits {
	if len(o.limits) == 0 {
		return r
	}
	out := RateLimits{limits: make([]RateLimit, len(r.limits), len(r.limits)+len(o.limits))}
	copy(out.limits, r.limits)
	for _, l := range o.limits {
		if !out.add(l) {
			rateLimitsOverflow.Inc()
		}
	}
	return out
}

// Active returns the set without the limits that have expired at now
// (Relay's clean_expired, done lazily by whoever holds the set).
func (r RateLimits) Active(now time.Time) RateLimits {
	var out []RateLimit
	for _, l := range r.limits {
		if l.Until.After(now) {
			out = append(out, l)
		}
	}
	return RateLimits{limits: out}
}

// IsLimited reports whether any active limit applies to at least one of the
// given categories, and until when the last of those limits holds. An empty
// categories list is matched only by limits that cover every category.
func (r RateLimits) IsLimited(categories []string, now time.Time) (until time.Time, ok bool) {
	for _, l := range r.limits {
		if !l.Until.After(now) || !l.matches(categories) {
			continue
		}
		if !ok || l.Until.After(until) {
			until, ok = l.Until, true
		}
	}
	return until, ok
}

// Longest returns how long the longest active limit still holds at now, or 0
// (Relay's RateLimits::longest; it becomes the Retry-After of a 429).
func (r RateLimits) Longest(now time.Time) time.Duration {
	var longest time.Duration
	for _, l := range r.limits {
		if d := l.Until.Sub(now); d > longest {
			longest = d
		}
	}
	return longest
}

// Format writes the active limits in Relay's X-Sentry-Rate-Limits format
// (relay-server utils/rate_limits.rs::format_rate_limits):
// "<secs>:<cat;cat>:<scope>[:<reason>][:<ns;ns>]" joined by ", ", with the
// remaining seconds rounded up and an empty reason field written only when
// namespaces follow. Expired limits are left out; "" when none is active.
func (r RateLimits) Format(now time.Time) string {
	var b strings.Builder
	for _, l := range r.limits {
		if !l.Until.After(now) {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatInt(ceilSeconds(l.Until.Sub(now)), 10))
		b.WriteByte(':')
		b.WriteString(strings.Join(l.Categories, ";"))
		b.WriteByte(':')
		b.WriteString(l.Scope)
		if l.ReasonCode != "" {
			b.WriteByte(':')
			b.WriteString(l.ReasonCode)
		} else if len(l.Namespaces) > 0 {
			b.WriteByte(':')
		}
		if len(l.Namespaces) > 0 {
			b.WriteByte(':')
			b.WriteString(strings.Join(l.Namespaces, ";"))
		}
	}
	return b.String()
}

// ceilSeconds rounds a positive duration up to whole seconds, as Relay's
// RetryAfter::remaining_seconds does.
func ceilSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}

// ParseRateLimits parses an X-Sentry-Rate-Limits value (several header values
// joined by ", " are fine) as Relay does (§4.1, relay-server
// utils/rate_limits.rs::parse_rate_limits), resolving each retry_after
// against now:
//   - limits are separated by ","; surrounding spaces are ignored, as are
//     spaces around each ":"-separated field, and fields after namespaces;
//   - retry_after is a float of seconds, rounded up; an entry whose
//     retry_after does not parse is skipped; negative, NaN, infinite or
//     overflowing values give an already expired limit, which is dropped;
//   - categories are ";"-separated; empty means all; unknown names become
//     CategoryUnknown (so the limit matches nothing unless it also names a
//     known category);
//   - an unknown or missing scope becomes ScopeKey.
//
// It never fails: a header with nothing usable yields an empty set.
func ParseRateLimits(header string, now time.Time) RateLimits {
	var out RateLimits
	for entry := range strings.SplitSeq(header, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		fields := strings.SplitN(entry, ":", 6)
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		secs, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		if math.IsNaN(secs) || math.IsInf(secs, 0) || secs <= 0 || math.Ceil(secs) > maxRetryAfterSecs {
			continue // expired on arrival: matches nothing, announces nothing
		}
		l := RateLimit{Until: now.Add(time.Duration(math.Ceil(secs)) * time.Second), Scope: ScopeKey}
		if len(fields) > 1 {
			for c := range strings.SplitSeq(fields[1], ";") {
				if c = strings.TrimSpace(c); c != "" {
					l.Categories = append(l.Categories, CanonicalCategory(c))
				}
			}
		}
		if len(fields) > 2 {
			switch fields[2] {
			case ScopeOrganization, ScopeProject, ScopeKey, ScopeGlobal:
				l.Scope = fields[2]
			}
		}
		if len(fields) > 3 {
			l.ReasonCode = fields[3]
		}
		if len(fields) > 4 {
			for ns := range strings.SplitSeq(fields[4], ";") {
				if ns = strings.TrimSpace(ns); ns != "" {
					l.Namespaces = append(l.Namespaces, ns)
				}
			}
		}
		if !out.add(l) {
			rateLimitsOverflow.Inc()
		}
	}
	return out
}

// normaliseSet sorts and de-duplicates names, so that equal sets compare
// equal; categories are canonicalised and sorted by id, namespaces by name.
// It returns nil for an empty set.
func normaliseSet(names []string, categories bool) []string {
	if len(names) == 0 {
		return nil
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		if categories {
			n = CanonicalCategory(n)
		}
		out = append(out, n)
	}
	if categories {
		slices.SortFunc(out, func(a, b string) int { return categoryID(a) - categoryID(b) })
	} else {
		slices.Sort(out)
	}
	return slices.Compact(out)
}
