package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/filter"
	"github.com/relayhq/relay/internal/stream"
)

// Counters of the filter stage. Items are counted by reason where they are
// removed (filterDropCounter); the others count what the stage let through
// without deciding, so an operator can tell "nothing matched" from "could
// not look".
var (
	// an envelope lost its filtered items and carries a client report instead
	filterTrimmedTotal = metrics.NewCounter(`relay_worker_filter_envelopes_total{outcome="trimmed"}`)
	// every item of an envelope was filtered: it goes on as a client report alone
	filterReportOnlyTotal = metrics.NewCounter(`relay_worker_filter_envelopes_total{outcome="report_only"}`)
	// the project's filterSettings do not compile: its envelopes pass unfiltered
	filterBadSettingsTotal = metrics.NewCounter(`relay_worker_filter_unfiltered_total{reason="invalid_settings"}`)
	// an event payload the filters cannot read (not a JSON object): forwarded as is
	filterUnreadableTotal = metrics.NewCounter(`relay_worker_filter_unfiltered_total{reason="unreadable_event"}`)
)

// filterDropCounter returns relay_worker_filtered_items_total{reason,type}:
// items removed by an inbound filter. Both labels come from fixed sets (the
// filter reasons, and the item types the stage removes).
func filterDropCounter(reason filter.Reason, itemType string) *metrics.Counter {
	return metrics.GetOrCreateCounter(fmt.Sprintf(`relay_worker_filtered_items_total{reason=%q,type=%q}`,
		sanitizeLabel(string(reason)), sanitizeLabel(itemType)))
}

// FilterSettings finds the `filterSettings` JSON of the project that owns a
// public key (the project registry). ok is false while the project's config
// is unknown: the envelope then passes unfiltered, as Relay forwards what it
// cannot judge yet.
type FilterSettings interface {
	FilterSettings(publicKey string) (settings json.RawMessage, ok bool)
}

// FilterSettingsFunc adapts a lookup function to FilterSettings.
type FilterSettingsFunc func(publicKey string) (json.RawMessage, bool)

// FilterSettings implements FilterSettings.
func (f FilterSettingsFunc) FilterSettings(publicKey string) (json.RawMessage, bool) {
	return f(publicKey)
}

var _ FilterSettings = FilterSettingsFunc(nil)

// FilterStage applies a project's inbound filters (internal/filter) to the
// event-like items of an envelope — `event`, `transaction`, `security`,
// `raw_security` — and reports what it removed upstream in a
// `client_report` item (`filtered_events`), as an external Relay does.
//
//   - A filtered item is removed with the items that live and die with it
//     (attachments, user reports, form data, Unreal reports, profiles) —
//     unless another event-like item of the envelope passed, which keeps them.
//   - Every other item (sessions, client reports, logs, spans, replays, …) is
//     kept byte for byte: the envelope is rebuilt with internal/envelope's
//     serialiser, which writes untouched items as received.
//   - When every item was filtered, the stage does not Drop the message: it
//     replaces the items by the one client report and keeps it. A Drop would
//     ack the JetStream message and end the story there, and the stage cannot
//     send anything itself — a report sent on the side would bypass the spool
//     and be lost in an outage or a crash, and would have to invent its own
//     retries. Rewritten in place, the report rides the message the SDK's 200
//     already promised to deliver: forwarded, spooled during an outage,
//     redelivered after a crash, exactly like any envelope. The envelope keeps
//     its header (dsn, sent_at, …): the report is for the same project and
//     key. Client reports are never rate limited (§3.4), so the report cannot
//     be held back by the limits that might hold the event.
//   - The stage filters nothing when the project's config is unknown, its
//     settings are empty, or they do not compile (counted, logged once per
//     distinct document), or for an event it cannot read: filters save quota,
//     they guard nothing — scrubbing, which does, fails closed in its own
//     stage.
//
// The compiled settings are cached by content hash (filter.Cache): a project
// costs one compile per settings document, not one per envelope.
type FilterStage struct {
	settings FilterSettings
	cache    *filter.Cache
	log      *slog.Logger
	now      func() time.Time
}

// NewFilterStage returns the filter stage reading settings from s. log may be
// nil (nothing is logged).
func NewFilterStage(s FilterSettings, log *slog.Logger) *FilterStage {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &FilterStage{settings: s, cache: filter.NewCache(0), log: log, now: time.Now}
}

// Name implements Stage.
func (*FilterStage) Name() string { return "filter" }

// filterKind maps the item types the filters judge to filter.Input kinds.
func filterKind(typ string) string {
	switch typ {
	case "event":
		return filter.KindEvent
	case "transaction":
		return filter.KindTransaction
	case "security", "raw_security":
		return filter.KindSecurity
	}
	return ""
}

// dependsOnEvent reports whether the item is removed together with a
// filtered event of its envelope (Relay keeps them in the event's processing
// group and drops the group as a whole).
func dependsOnEvent(typ string) bool {
	switch typ {
	case "attachment", "form_data", "unreal_report", "user_report", "profile":
		return true
	}
	return false
}

// Process implements Stage. Cost when a project has filters: one envelope
// parse (no payload copies) and one JSON decode per event-like item; the
// envelope is re-serialised only when something was filtered. On error m is
// left as it was.
func (st *FilterStage) Process(_ context.Context, m *stream.Message) (Verdict, error) {
	raw, ok := st.settings.FilterSettings(m.PublicKey)
	if !ok || len(raw) == 0 {
		return Keep(), nil
	}
	settings, fresh, err := st.cache.Get(raw)
	if err != nil {
		filterBadSettingsTotal.Inc()
		if fresh {
			st.log.Warn("project filterSettings do not compile; its envelopes pass unfiltered",
				"project", m.ProjectID, "err", err)
		}
		return Keep(), nil
	}
	if settings.Empty() {
		return Keep(), nil
	}
	env, err := envelope.Parse(m.Envelope)
	if err != nil {
		return Verdict{}, fmt.Errorf("filter: parse envelope: %w", err)
	}

	clientIP := filter.ClientIP(m.ForwardedFor, m.RemoteAddr)
	var (
		reasons   []filter.Reason // per item, "" when kept
		firstDrop filter.Reason
		passed    bool // an event-like item passed every filter
	)
	for i, it := range env.Items {
		kind := filterKind(it.Type)
		if kind == "" {
			continue
		}
		reason, err := settings.Check(filter.Input{Kind: kind, Payload: it.Payload, ClientIP: clientIP, UserAgent: m.UserAgent})
		if errors.Is(err, filter.ErrNotAnEvent) {
			filterUnreadableTotal.Inc()
			passed = true
			continue
		}
		if reason == "" {
			passed = true
			continue
		}
		if reasons == nil {
			reasons = make([]filter.Reason, len(env.Items))
		}
		reasons[i] = reason
		if firstDrop == "" {
			firstDrop = reason
		}
	}
	if firstDrop == "" {
		return Keep(), nil
	}

	kept := make([]*envelope.Item, 0, len(env.Items)+1)
	var outcomes []filter.Outcome
	for i, it := range env.Items {
		reason := reasons[i]
		if reason == "" && !passed && dependsOnEvent(it.Type) {
			reason = firstDrop
		}
		if reason == "" {
			kept = append(kept, it)
			continue
		}
		filterDropCounter(reason, it.Type).Inc()
		outcomes = append(outcomes, itemOutcomes(reason, it)...)
	}
	at := m.ReceivedAt
	if at.IsZero() {
		at = st.now()
	}
	report, err := filter.ClientReport(at, outcomes)
	if err != nil {
		return Verdict{}, err
	}
	if len(kept) == 0 {
		filterReportOnlyTotal.Inc()
	} else {
		filterTrimmedTotal.Inc()
	}
	env.Items = append(kept, envelope.NewItem("client_report", report))
	m.Envelope = env.AppendTo(make([]byte, 0, len(m.Envelope)+len(report)+64))
	return Keep(), nil
}

// itemOutcomes are the quantities a removed item is reported with: one per
// data category it counts against (internal/envelope's DataCategories, the
// categories rate limits use), attachments by their size in bytes. Items in
// no category (form data) are removed without a report line, as Relay
// reports none for them.
func itemOutcomes(reason filter.Reason, it *envelope.Item) []filter.Outcome {
	cats := it.DataCategories()
	out := make([]filter.Outcome, 0, len(cats))
	for _, c := range cats {
		q := uint64(1)
		if c == envelope.CategoryAttachment {
			q = uint64(max(len(it.Payload), 1))
		}
		out = append(out, filter.Outcome{Reason: reason, Category: c, Quantity: q})
	}
	return out
}
