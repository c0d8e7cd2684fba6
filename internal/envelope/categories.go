package envelope

import "strings"

// Data-category names on the wire (relay-protocol.md §4.4), as used in X-Sentry-Rate-Limits and
// client reports.
const (
	CategoryDefault            = "default"
	CategoryError              = "error"
	CategoryTransaction        = "transaction"
	CategorySecurity           = "security"
	CategoryAttachment         = "attachment"
	CategorySession            = "session"
	CategoryProfile            = "profile"
	CategoryReplay             = "replay"
	CategoryTransactionIndexed = "transaction_indexed"
	CategoryMonitor            = "monitor"
	CategoryProfileIndexed     = "profile_indexed"
	CategorySpan               = "span"
	CategoryFeedback           = "feedback"
	CategoryMetricBucket       = "metric_bucket"
	CategorySpanIndexed        = "span_indexed"
	CategoryProfileChunk       = "profile_chunk"
	CategoryAttachmentItem     = "attachment_item"
	CategoryLogItem            = "log_item"
	CategoryLogByte            = "log_byte"
	CategoryProfileChunkUI     = "profile_chunk_ui"
	CategoryTraceMetric        = "trace_metric"
	CategoryProfileBackend     = "profile_backend"
	CategoryProfileUI          = "profile_ui"
)

// Shared, read-only category lists: DataCategories returns these without allocating.
var (
	catsError          = []string{CategoryError}
	catsTransaction    = []string{CategoryTransaction, CategoryTransactionIndexed}
	catsSecurity       = []string{CategorySecurity}
	catsAttachment     = []string{CategoryAttachment, CategoryAttachmentItem}
	catsFeedback       = []string{CategoryFeedback}
	catsSession        = []string{CategorySession}
	catsMetricBucket   = []string{CategoryMetricBucket}
	catsProfile        = []string{CategoryProfile, CategoryProfileIndexed}
	catsProfileBackend = []string{CategoryProfile, CategoryProfileIndexed, CategoryProfileBackend}
	catsProfileUI      = []string{CategoryProfile, CategoryProfileIndexed, CategoryProfileUI}
	catsProfileChunk   = []string{CategoryProfileChunk}
	catsProfileChunkUI = []string{CategoryProfileChunkUI}
	catsReplay         = []string{CategoryReplay}
	catsMonitor        = []string{CategoryMonitor}
	catsLog            = []string{CategoryLogByte, CategoryLogItem}
	catsTraceMetric    = []string{CategoryTraceMetric}
	catsSpan           = []string{CategorySpan, CategorySpanIndexed}
)

// DataCategories returns the data categories the item counts against (relay-protocol.md §3.4,
// Relay's ItemType::quantities plus the indexed categories), for matching rate limits. The
// returned slice is shared: do not modify it. Items that Relay never rate limits
// (client_report, form_data, nel, unknown types) return nil.
//
//   - statsd/metric_buckets return metric_bucket; Relay scopes those limits by metric namespace,
//     which the caller has to check itself.
//   - profile adds profile_ui or profile_backend when the header names a platform; profile_chunk
//     counts as profile_chunk_ui or profile_chunk by header platform, and as nothing without one.
//   - A crash-dump attachment also creates an error event; that is the caller's concern (Relay
//     keeps dump attachments when only attachments are limited).
func (it *Item) DataCategories() []string {
	switch it.Type {
	case "event", "unreal_report":
		return catsError
	case "transaction":
		return catsTransaction
	case "security", "raw_security":
		return catsSecurity
	case "attachment":
		return catsAttachment
	case "user_report", "feedback":
		return catsFeedback
	case "session", "sessions":
		return catsSession
	case "statsd", "metric_buckets":
		return catsMetricBucket
	case "profile":
		switch {
		case it.platform == "":
			return catsProfile
		case isUIPlatform(it.platform):
			return catsProfileUI
		default:
			return catsProfileBackend
		}
	case "profile_chunk", "profile_chunk_ui":
		switch {
		case it.platform == "":
			return nil
		case isUIPlatform(it.platform):
			return catsProfileChunkUI
		default:
			return catsProfileChunk
		}
	case "replay_event", "replay_recording", "replay_video":
		return catsReplay
	case "check_in":
		return catsMonitor
	case "log":
		return catsLog
	case "trace_metric":
		return catsTraceMetric
	case "span", "otel_span", "otel_traces_data":
		return catsSpan
	}
	return nil
}

// isUIPlatform is relay_profiling's ProfileType::from_platform.
func isUIPlatform(p string) bool {
	return p == "cocoa" || p == "android" || p == "javascript"
}

// RequiresEvent reports whether the item "requires an event" (Relay's Item::requires_event):
// it is kept and dropped together with the event and forces an envelope event_id.
func (it *Item) RequiresEvent() bool {
	switch it.Type {
	case "event", "transaction", "security", "raw_security", "attachment", "form_data",
		"unreal_report", "user_report", "feedback", "replay_event", "profile":
		return true
	}
	return false
}

// canSupportContainer is Relay's ItemType::can_support_container: only these types may carry an
// item_count.
func (it *Item) canSupportContainer() bool {
	switch it.Type {
	case "event", "transaction", "security", "attachment", "form_data", "raw_security", "nel",
		"unreal_report", "user_report", "replay_event", "replay_recording", "replay_video",
		"otel_traces_data", "feedback", "integration":
		return false
	}
	return true // session(s), statsd, metric_buckets, client_report, profile(_chunk), check_in,
	// log, span, otel_span, trace_metric and unknown types
}

// IsContainer reports whether the item is an item container (its content_type is one of the
// container types, compared case-insensitively as Relay does).
func (it *Item) IsContainer() bool {
	ct := it.contentType
	return strings.EqualFold(ct, "application/vnd.sentry.items.log+json") ||
		strings.EqualFold(ct, "application/vnd.sentry.items.span.v2+json") ||
		strings.EqualFold(ct, "application/vnd.sentry.items.trace-metric+json")
}
