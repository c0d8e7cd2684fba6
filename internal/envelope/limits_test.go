package envelope

import (
	"errors"
	"strings"
	"testing"
)

func TestDefaultLimits(t *testing.T) {
	l := DefaultLimits()
	// relay-protocol.md §5.1 defaults.
	want := Limits{
		MaxEventSize: 1 << 20, MaxAttachmentSize: 200 << 20, MaxAttachmentCount: 30, MaxAttachmentsSize: 200 << 20,
		MaxReplayCompressedSize: 10 << 20, MaxSessionsSize: 10 << 20, MaxSessionCount: 100,
		MaxClientReportsSize: 100 << 10, MaxClientReportsCount: 100, MaxProfileSize: 50 << 20,
		MaxCheckInSize: 100 << 10, MaxStatsdSize: 1 << 20, MaxMetricBucketsSize: 1 << 20, MaxLogSize: 2 << 20,
		MaxTraceMetricSize: 1 << 20, MaxSpanSize: 10 << 20, MaxStandaloneSpanCount: 25, MaxContainerSize: 12 << 20,
	}
	if l != want {
		t.Errorf("DefaultLimits() = %+v\nwant %+v", l, want)
	}
}

// item describes one test item: type, payload size and extra header JSON members.
type item struct {
	typ   string
	size  int
	extra string
}

func buildEnvelope(t *testing.T, items ...item) *Envelope {
	t.Helper()
	var b strings.Builder
	b.WriteString("{}\n")
	for _, it := range items {
		b.WriteString(`{"type":"` + it.typ + `","length":` + itoa(it.size) + it.extra + "}\n")
		b.WriteString(strings.Repeat("x", it.size))
		b.WriteString("\n")
	}
	e, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func repeat(it item, n int) []item {
	out := make([]item, n)
	for i := range out {
		out[i] = it
	}
	return out
}

func TestCheckSizeLimits(t *testing.T) {
	// Small limits keep the test envelopes small; each group gets its own numbers.
	l := Limits{
		MaxEventSize: 100, MaxAttachmentSize: 50, MaxAttachmentCount: 3, MaxAttachmentsSize: 120,
		MaxReplayCompressedSize: 40, MaxSessionsSize: 60, MaxSessionCount: 4,
		MaxClientReportsSize: 30, MaxClientReportsCount: 2, MaxProfileSize: 70,
		MaxCheckInSize: 20, MaxStatsdSize: 25, MaxMetricBucketsSize: 26, MaxLogSize: 10,
		MaxTraceMetricSize: 11, MaxSpanSize: 12, MaxStandaloneSpanCount: 3, MaxContainerSize: 90,
	}
	const logCT = `,"content_type":"application/vnd.sentry.items.log+json"`
	const spanCT = `,"content_type":"application/vnd.sentry.items.span.v2+json"`
	const metricCT = `,"content_type":"application/vnd.sentry.items.trace-metric+json"`
	tests := []struct {
		name     string
		items    []item
		itemType string // "" = within limits
		limit    string
	}{
		{"empty", nil, "", ""},
		{"event at limit", []item{{"event", 100, ""}}, "", ""},
		{"event over", []item{{"event", 101, ""}}, "event", "item_size"},
		{"two events", []item{{"event", 1, ""}, {"event", 1, ""}}, "event", "total_count"},
		{"event and transaction share the budget", []item{{"transaction", 1, ""}, {"event", 1, ""}}, "event", "total_count"},
		{"security over", []item{{"security", 101, ""}}, "security", "item_size"},
		{"raw_security over", []item{{"raw_security", 101, ""}}, "raw_security", "item_size"},
		{"replay_event over", []item{{"replay_event", 101, ""}}, "replay_event", "item_size"},
		{"feedback over is user_report_v2", []item{{"feedback", 101, ""}}, "user_report_v2", "item_size"},
		{"form_data over", []item{{"form_data", 101, ""}}, "form_data", "item_size"},
		{"attachment over", []item{{"attachment", 51, ""}}, "attachment:attachment", "item_size"},
		{"minidump over", []item{{"attachment", 51, `,"attachment_type":"event.minidump"`}}, "attachment:minidump", "item_size"},
		{"view hierarchy over", []item{{"attachment", 51, `,"attachment_type":"event.view_hierarchy"`}}, "attachment:view_hierarchy", "item_size"},
		{"unknown attachment type over", []item{{"attachment", 51, `,"attachment_type":"event.new_kind"`}}, "attachment:attachment", "item_size"},
		{"attachments total", []item{{"attachment", 50, ""}, {"attachment", 50, ""}, {"attachment", 21, ""}}, "attachment:attachment", "total_size"},
		{"attachments count", repeat(item{"attachment", 1, ""}, 4), "attachment:attachment", "total_count"},
		{"unreal_report shares attachments", []item{{"attachment", 50, ""}, {"unreal_report", 50, ""}, {"user_report", 21, ""}}, "user_report", "total_size"},
		{"attachments and event together fit", []item{{"event", 100, ""}, {"attachment", 50, ""}, {"attachment", 50, ""}}, "", ""},
		{"replay_recording over", []item{{"replay_recording", 41, ""}}, "replay_recording", "item_size"},
		{"recording and video each once", []item{{"replay_recording", 40, ""}, {"replay_video", 40, ""}}, "", ""},
		{"two recordings", []item{{"replay_recording", 1, ""}, {"replay_recording", 1, ""}}, "replay_recording", "total_count"},
		{"session over", []item{{"session", 61, ""}}, "session", "item_size"},
		{"sessions total", []item{{"session", 30, ""}, {"sessions", 31, ""}}, "sessions", "total_size"},
		{"session count", repeat(item{"session", 1, ""}, 5), "session", "total_count"},
		{"client_report count", repeat(item{"client_report", 1, ""}, 3), "client_report", "total_count"},
		{"client_report over", []item{{"client_report", 31, ""}}, "client_report", "item_size"},
		{"profile over", []item{{"profile", 71, ""}}, "profile", "item_size"},
		{"profile and chunk share", []item{{"profile", 1, ""}, {"profile_chunk", 1, ""}}, "profile_chunk", "total_count"},
		{"check_in over", []item{{"check_in", 21, ""}}, "check_in", "item_size"},
		{"statsd over", []item{{"statsd", 26, ""}}, "statsd", "item_size"},
		{"metric_buckets over", []item{{"metric_buckets", 27, ""}}, "metric_buckets", "item_size"},
		{"log non-container over", []item{{"log", 11, ""}}, "log", "item_size"},
		{"log container average under", []item{{"log", 80, logCT + `,"item_count":8`}}, "", ""},
		{"log container average rounds down", []item{{"log", 87, logCT + `,"item_count":8`}}, "", ""},
		{"log container average over", []item{{"log", 88, logCT + `,"item_count":8`}}, "log", "item_size"},
		{"log container over total", []item{{"log", 91, logCT + `,"item_count":10`}}, "log", "total_size"},
		{"log container item_count 0", []item{{"log", 11, logCT + `,"item_count":0`}}, "log", "item_size"},
		{"log content type case-insensitive", []item{{"log", 80, `,"content_type":"Application/VND.sentry.items.log+json","item_count":8`}}, "", ""},
		{"two logs", []item{{"log", 1, ""}, {"log", 1, ""}}, "log", "total_count"},
		{"trace_metric container", []item{{"trace_metric", 88, metricCT + `,"item_count":8`}}, "", ""},
		{"trace_metric over", []item{{"trace_metric", 12, ""}}, "trace_metric", "item_size"},
		{"span container", []item{{"span", 90, spanCT + `,"item_count":8`}}, "", ""},
		{"span container over", []item{{"span", 91, spanCT + `,"item_count":7`}}, "span", "item_size"},
		{"two span containers", []item{{"span", 1, spanCT}, {"span", 1, spanCT}}, "span", "total_count"},
		{"standalone spans", repeat(item{"span", 12, ""}, 3), "", ""},
		{"too many standalone spans", repeat(item{"span", 1, ""}, 4), "span", "total_count"},
		{"standalone span over", []item{{"span", 13, ""}}, "span", "item_size"},
		{"unknown types unchecked", []item{{"brand_new", 1000, ""}, {"brand_new", 1000, ""}, {"nel", 1000, ""}, {"otel_span", 1000, ""}}, "", ""},
		{"first offender reported", []item{{"session", 61, ""}, {"event", 101, ""}}, "session", "item_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := buildEnvelope(t, tt.items...)
			err := CheckSizeLimits(e, l)
			if tt.itemType == "" {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			var se *SizeError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *SizeError", err)
			}
			if se.ItemType != tt.itemType || se.Limit != tt.limit {
				t.Errorf("got %s/%s, want %s/%s", se.ItemType, se.Limit, tt.itemType, tt.limit)
			}
			want := "envelope exceeded size limits for type '" + tt.itemType + "' (https://develop.sentry.dev/sdk/envelopes/#size-limits)"
			if err.Error() != want {
				t.Errorf("Error() = %q, want %q", err, want)
			}
		})
	}
}

func TestCheckSizeLimitsDefaultsOnFixtures(t *testing.T) {
	for name, body := range fixtureEnvelopes(t) {
		e, err := Parse(body)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckSizeLimits(e, DefaultLimits()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
