package ingest

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/upstream"
)

// RateLimitSource gives the upstream's rate limits of a key as the whole
// deployment knows them (protocol doc §4.2, §4.3); internal/ratelimit's
// *Shared is the real one. Limits is called on every request of a route
// that enforces limits: it must answer from memory, never block.
type RateLimitSource interface {
	Limits(publicKey string) upstream.RateLimits
}

// enforcesRateLimits reports whether the route refuses limited data with
// 429. Relay's minidump, unreal, cron, NEL and OTLP-logs endpoints never
// answer 429 (crash reporters retry aggressively): a route like those leaves
// the limits to the worker by answering false here.
func (r route) enforcesRateLimits() bool {
	switch r {
	case routeEnvelope, routeStore, routeStoreLegacy, routeTunnel:
		return true
	}
	return false
}

// Why an item was dropped for a rate limit: its own category is limited, or
// it depends on an event whose category is (Relay drops those together).
const (
	rateLimitedOwn   = "rate_limited"
	rateLimitedEvent = "event_rate_limited"
)

// droppedRateLimited counts refusals of a whole request: every item was
// rate limited, nothing was stored.
var droppedRateLimited = metrics.NewCounter(`relay_ingest_rejected_total{reason="rate_limited"}`)

// rateLimitedItems caches relay_ingest_rate_limited_items_total{reason,category}.
// The labels come from fixed sets (the two reasons above, the categories of
// envelope.Item.DataCategories and "none"), never from the request.
var rateLimitedItems sync.Map // reason + "/" + category → *metrics.Counter

func countRateLimitedItem(reason, category string) {
	k := reason + "/" + category
	c, ok := rateLimitedItems.Load(k)
	if !ok {
		c, _ = rateLimitedItems.LoadOrStore(k, metrics.GetOrCreateCounter(
			`relay_ingest_rate_limited_items_total{reason="`+reason+`",category="`+category+`"}`))
	}
	c.(*metrics.Counter).Inc()
}

// rateLimitDetail is Relay's BadStoreRequest::RateLimited text.
const rateLimitDetail = "Sentry dropped data due to a quota or internal rate limit being reached. " +
	"This will not affect your application. See https://docs.sentry.io/product/accounts/quotas/ for more information."

// enforceRateLimits removes from env the items the key's active limits hold,
// following Relay's enforcement (utils/rate_limits.rs, protocol doc §4.2):
//   - when the envelope's event category (error, transaction, security,
//     feedback; error for a crash dump without an event) is limited, the
//     event and every item that requires an event go;
//   - any other item goes when one of its own categories is limited, except
//     a crash-dump attachment, which creates the event and stays;
//   - items Relay never removes stay even when a limit matches them
//     (client_report, sessions, statsd, metric_buckets, form_data, nel,
//     unknown types), but the match still earns the SDK a 429;
//   - "_indexed" categories are not checked: a relay that does not extract
//     metrics drops an item only for its primary category, as the upstream
//     keeps the rest.
//
// It returns the limits that matched (empty: answer as usual). The caller
// stores what is left and answers 429 with those limits, also when some
// items were stored — Relay's "legacy" answer, which tells the SDK to back
// off for the limited categories; the stored items are not sent again.
func (s *Server) enforceRateLimits(rt route, publicKey string, env *envelope.Envelope) upstream.RateLimits {
	if s.cfg.RateLimits == nil || !rt.enforcesRateLimits() {
		return upstream.RateLimits{}
	}
	rl := s.cfg.RateLimits.Limits(publicKey)
	if rl.Len() == 0 {
		return upstream.RateLimits{}
	}
	now := s.now()
	var matched upstream.RateLimits
	// check reports whether cats are limited, remembering the limits that
	// matched (the ones the SDK is told about).
	check := func(cats []string) bool {
		cats = primaryCategories(cats)
		if len(cats) == 0 {
			return false
		}
		hit := false
		for _, l := range rl.Limits() {
			one := upstream.RateLimits{}.Add(l)
			if _, ok := one.IsLimited(cats, now); ok {
				matched, hit = matched.Merge(one), true
			}
		}
		return hit
	}

	eventLimited := false
	if cat := eventCategory(env); cat != "" {
		eventLimited = check([]string{cat})
	}
	kept := env.Items[:0]
	removed := false
	for _, it := range env.Items {
		cats := it.DataCategories()
		switch {
		case neverRateLimited(it):
			check(cats)
		case eventLimited && it.RequiresEvent():
			check(cats) // its own limits are announced too, as Relay does
			countRateLimitedItem(rateLimitedEvent, firstCategory(cats))
			removed = true
			continue
		case check(cats) && !createsEvent(it):
			countRateLimitedItem(rateLimitedOwn, firstCategory(cats))
			removed = true
			continue
		}
		kept = append(kept, it)
	}
	if removed {
		// Clear the tail so the removed items' payloads are not kept alive.
		clear(env.Items[len(kept):])
		env.Items = kept
	}
	return matched
}

// eventCategory is the category of the envelope's event (Relay's
// infer_event_category), "" when it has none.
func eventCategory(env *envelope.Envelope) string {
	dump := false
	for _, it := range env.Items {
		switch it.Type {
		case "event", "unreal_report":
			return envelope.CategoryError
		case "transaction":
			return envelope.CategoryTransaction
		case "security", "raw_security":
			return envelope.CategorySecurity
		case "feedback":
			return envelope.CategoryFeedback
		}
		dump = dump || createsEvent(it)
	}
	if dump {
		return envelope.CategoryError
	}
	return ""
}

// createsEvent reports whether an attachment is a crash dump the upstream
// turns into an error event (Relay's Item::creates_event).
func createsEvent(it *envelope.Item) bool {
	if it.Type != "attachment" {
		return false
	}
	switch it.HeaderString("attachment_type") {
	case "event.minidump", "event.applecrashreport", "playstation.prosperodump":
		return true
	}
	return false
}

// neverRateLimited reports whether Relay keeps the item whatever the
// cached limits say (Enforcement::retain_item, protocol doc §4.2).
func neverRateLimited(it *envelope.Item) bool {
	switch it.Type {
	case "client_report", "sessions", "statsd", "metric_buckets", "form_data", "nel":
		return true
	}
	return it.DataCategories() == nil && !it.RequiresEvent()
}

// primaryCategories leaves out the "_indexed" categories (see
// enforceRateLimits). It allocates only when there is one to leave out.
func primaryCategories(cats []string) []string {
	for i, c := range cats {
		if strings.HasSuffix(c, "_indexed") {
			out := append([]string(nil), cats[:i]...)
			for _, c := range cats[i+1:] {
				if !strings.HasSuffix(c, "_indexed") {
					out = append(out, c)
				}
			}
			return out
		}
	}
	return cats
}

func firstCategory(cats []string) string {
	if len(cats) == 0 {
		return "none"
	}
	return cats[0]
}

// writeRateLimited answers 429 as Relay does for cached limits: Retry-After
// is the longest matched limit's remaining time in whole seconds (rounded
// up), X-Sentry-Rate-Limits lists the matched limits in Relay's format.
func (s *Server) writeRateLimited(w http.ResponseWriter, r *http.Request, rt route, matched upstream.RateLimits, stored bool) {
	now := s.now()
	if !stored {
		droppedRateLimited.Inc()
	}
	h := w.Header()
	s.setCommon(h)
	if rt.storeLike() {
		setCORS(h, r)
	}
	h[keyContentType] = hdrJSON
	h[keySentryError] = []string{rateLimitDetail}
	secs := int64(math.Ceil(matched.Longest(now).Seconds()))
	h[keyRetryAfter] = []string{strconv.FormatInt(max(secs, 1), 10)}
	h["X-Sentry-Rate-Limits"] = []string{matched.Format(now)}
	body, err := json.Marshal(errorBody{Detail: rateLimitDetail})
	if err != nil {
		body = []byte(`{"detail":"internal error"}`)
	}
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(body)
	s.countRequest(rt, http.StatusTooManyRequests)
}
