package envelope

// Limits are the per-item size and count limits Relay checks at ingest (relay-protocol.md §3.5;
// Relay's utils/sizes.rs check_envelope_size_limits). Sizes are bytes. The names follow Relay's
// `limits.*` config keys.
type Limits struct {
	MaxEventSize            int64 // event, transaction, security, raw_security, replay_event, feedback, form_data
	MaxAttachmentSize       int64 // one attachment, unreal_report or user_report
	MaxAttachmentCount      int64
	MaxAttachmentsSize      int64 // all of them together
	MaxReplayCompressedSize int64 // replay_recording, replay_video (one of each)
	MaxSessionsSize         int64 // session + sessions, each and together
	MaxSessionCount         int64
	MaxClientReportsSize    int64
	MaxClientReportsCount   int64
	MaxProfileSize          int64 // profile, profile_chunk (one)
	MaxCheckInSize          int64
	MaxStatsdSize           int64
	MaxMetricBucketsSize    int64
	MaxLogSize              int64 // per contained log on average (container size / item_count)
	MaxTraceMetricSize      int64 // likewise per trace metric
	MaxSpanSize             int64 // per span (container average, or one legacy span item)
	MaxStandaloneSpanCount  int64 // legacy non-container span items per envelope
	MaxContainerSize        int64 // total of log / trace_metric / span items
}

const (
	kib = 1024
	mib = 1024 * kib
)

// DefaultLimits returns Relay's defaults (newest relay-config, relay-protocol.md §5.1).
func DefaultLimits() Limits {
	return Limits{
		MaxEventSize:            1 * mib,
		MaxAttachmentSize:       200 * mib,
		MaxAttachmentCount:      30,
		MaxAttachmentsSize:      200 * mib,
		MaxReplayCompressedSize: 10 * mib,
		MaxSessionsSize:         10 * mib,
		MaxSessionCount:         100,
		MaxClientReportsSize:    100 * kib,
		MaxClientReportsCount:   100,
		MaxProfileSize:          50 * mib,
		MaxCheckInSize:          100 * kib,
		MaxStatsdSize:           1 * mib,
		MaxMetricBucketsSize:    1 * mib,
		MaxLogSize:              2 * mib,
		MaxTraceMetricSize:      1 * mib,
		MaxSpanSize:             10 * mib,
		MaxStandaloneSpanCount:  25,
		MaxContainerSize:        12 * mib,
	}
}

// SizeError says which item type made the envelope exceed a size limit; ingest answers 413.
type SizeError struct {
	// ItemType is Relay's DiscardItemType name: the item type ("event", "log", "user_report_v2"
	// for feedback) or "attachment:<kind>" for items with an attachment_type header.
	ItemType string
	// Limit says which check failed: "item_size", "total_count" or "total_size" (Relay's
	// envelope.size_limited metric tag).
	Limit string
}

func (e *SizeError) Error() string {
	return "envelope exceeded size limits for type '" + e.ItemType +
		"' (https://develop.sentry.dev/sdk/envelopes/#size-limits)"
}

// limit is one group's remaining budget while the items are checked.
type limit struct {
	itemSize   int64
	totalCount int64
	totalSize  int64
}

// apply charges the item to the budget, as Relay's Limit::apply: the item size first (for
// containers the average per contained item), then one from the count, then the bytes from the
// total.
func (l *limit) apply(it *Item) string {
	size := int64(len(it.Payload))
	if it.IsContainer() {
		n := int64(1)
		if c, ok := it.ItemCount(); ok && it.canSupportContainer() && c > 0 {
			n = int64(c)
		}
		size /= n
	}
	if size > l.itemSize {
		return "item_size"
	}
	if l.totalCount--; l.totalCount < 0 {
		return "total_count"
	}
	if l.totalSize -= int64(len(it.Payload)); l.totalSize < 0 {
		return "total_size"
	}
	return ""
}

// CheckSizeLimits checks every item against its group's limits (relay-protocol.md §3.5) and
// returns a *SizeError for the first item over a limit, nil if the envelope fits. Unknown item
// types are not checked. (The whole-body limit, max_envelope_size, is the caller's.)
func CheckSizeLimits(e *Envelope, l Limits) error {
	var (
		event          = limit{l.MaxEventSize, 1, l.MaxEventSize}
		attachment     = limit{l.MaxAttachmentSize, l.MaxAttachmentCount, l.MaxAttachmentsSize}
		replayRec      = limit{l.MaxReplayCompressedSize, 1, l.MaxReplayCompressedSize}
		replayVideo    = limit{l.MaxReplayCompressedSize, 1, l.MaxReplayCompressedSize}
		session        = limit{l.MaxSessionsSize, l.MaxSessionCount, l.MaxSessionsSize}
		clientReport   = limit{l.MaxClientReportsSize, l.MaxClientReportsCount, l.MaxClientReportsSize}
		profile        = limit{l.MaxProfileSize, 1, l.MaxProfileSize}
		checkIn        = limit{l.MaxCheckInSize, 1, l.MaxCheckInSize}
		statsd         = limit{l.MaxStatsdSize, 1, l.MaxStatsdSize}
		metricBuckets  = limit{l.MaxMetricBucketsSize, 1, l.MaxMetricBucketsSize}
		log            = limit{l.MaxLogSize, 1, l.MaxContainerSize}
		traceMetric    = limit{l.MaxTraceMetricSize, 1, l.MaxContainerSize}
		span           = limit{l.MaxSpanSize, 1, l.MaxContainerSize}
		spanStandalone = limit{l.MaxSpanSize, l.MaxStandaloneSpanCount, l.MaxContainerSize}
	)
	for _, it := range e.Items {
		var lim *limit
		switch it.Type {
		case "event", "transaction", "security", "raw_security", "replay_event", "feedback", "form_data":
			lim = &event
		case "attachment", "unreal_report", "user_report":
			lim = &attachment
		case "replay_recording":
			lim = &replayRec
		case "replay_video":
			lim = &replayVideo
		case "session", "sessions":
			lim = &session
		case "client_report":
			lim = &clientReport
		case "profile", "profile_chunk", "profile_chunk_ui":
			lim = &profile
		case "check_in":
			lim = &checkIn
		case "statsd":
			lim = &statsd
		case "metric_buckets":
			lim = &metricBuckets
		case "log":
			lim = &log
		case "trace_metric":
			lim = &traceMetric
		case "span":
			if it.IsContainer() {
				lim = &span
			} else {
				lim = &spanStandalone
			}
		default:
			continue // unknown types are forwarded as they are, unchecked
		}
		if which := lim.apply(it); which != "" {
			return &SizeError{ItemType: discardItemType(it), Limit: which}
		}
	}
	return nil
}

// discardItemType is Relay's DiscardItemType name for an item: the attachment kind when the
// item has an attachment_type header Relay knows, else the item type.
func discardItemType(it *Item) string {
	switch it.attachmentType {
	case "event.attachment":
		return "attachment:attachment"
	case "event.minidump":
		return "attachment:minidump"
	case "event.applecrashreport":
		return "attachment:apple_crash_report"
	case "event.payload":
		return "attachment:event_payload"
	case "event.breadcrumbs":
		return "attachment:breadcrumbs"
	case "playstation.prosperodump":
		return "attachment:prosperodump"
	case "nswitch.dying_message":
		return "attachment:nnswitch_dying_message"
	case "unreal.context":
		return "attachment:unreal_context"
	case "unreal.logs":
		return "attachment:unreal_logs"
	case "event.view_hierarchy":
		return "attachment:view_hierarchy"
	}
	switch it.Type {
	case "attachment":
		return "attachment:attachment"
	case "feedback":
		return "user_report_v2"
	case "profile_chunk_ui":
		return "profile_chunk"
	}
	return it.Type
}
