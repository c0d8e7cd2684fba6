package envelope

import (
	"slices"
	"testing"
)

func TestDataCategories(t *testing.T) {
	tests := []struct {
		header string
		want   []string
	}{
		{`{"type":"event"}`, []string{"error"}},
		{`{"type":"unreal_report"}`, []string{"error"}},
		{`{"type":"transaction"}`, []string{"transaction", "transaction_indexed"}},
		{`{"type":"security"}`, []string{"security"}},
		{`{"type":"raw_security"}`, []string{"security"}},
		{`{"type":"attachment"}`, []string{"attachment", "attachment_item"}},
		{`{"type":"attachment","attachment_type":"event.minidump"}`, []string{"attachment", "attachment_item"}},
		{`{"type":"user_report"}`, []string{"feedback"}},
		{`{"type":"feedback"}`, []string{"feedback"}},
		{`{"type":"session"}`, []string{"session"}},
		{`{"type":"sessions"}`, []string{"session"}},
		{`{"type":"statsd"}`, []string{"metric_bucket"}},
		{`{"type":"metric_buckets"}`, []string{"metric_bucket"}},
		{`{"type":"profile"}`, []string{"profile", "profile_indexed"}},
		{`{"type":"profile","platform":"cocoa"}`, []string{"profile", "profile_indexed", "profile_ui"}},
		{`{"type":"profile","platform":"python"}`, []string{"profile", "profile_indexed", "profile_backend"}},
		{`{"type":"profile_chunk"}`, nil},
		{`{"type":"profile_chunk","platform":"android"}`, []string{"profile_chunk_ui"}},
		{`{"type":"profile_chunk","platform":"javascript"}`, []string{"profile_chunk_ui"}},
		{`{"type":"profile_chunk","platform":"node"}`, []string{"profile_chunk"}},
		{`{"type":"profile_chunk_ui","platform":"cocoa"}`, []string{"profile_chunk_ui"}},
		{`{"type":"replay_event"}`, []string{"replay"}},
		{`{"type":"replay_recording"}`, []string{"replay"}},
		{`{"type":"replay_video"}`, []string{"replay"}},
		{`{"type":"check_in"}`, []string{"monitor"}},
		{`{"type":"log","item_count":3}`, []string{"log_byte", "log_item"}},
		{`{"type":"trace_metric"}`, []string{"trace_metric"}},
		{`{"type":"span"}`, []string{"span", "span_indexed"}},
		{`{"type":"otel_span"}`, []string{"span", "span_indexed"}},
		{`{"type":"client_report"}`, nil},
		{`{"type":"form_data"}`, nil},
		{`{"type":"nel"}`, nil},
		{`{"type":"brand_new"}`, nil},
		{`{"type":"Event"}`, nil},
	}
	for _, tt := range tests {
		e, err := Parse([]byte("{}\n" + tt.header + "\n{}"))
		if err != nil {
			t.Fatalf("%s: %v", tt.header, err)
		}
		if got := e.Items[0].DataCategories(); !slices.Equal(got, tt.want) {
			t.Errorf("%s: DataCategories() = %q, want %q", tt.header, got, tt.want)
		}
	}
}

// Every category name is one Relay knows (relay-protocol.md §4.4).
func TestDataCategoryNamesAreKnown(t *testing.T) {
	known := map[string]bool{}
	for _, n := range []string{"default", "error", "transaction", "security", "attachment", "session", "profile",
		"replay", "transaction_processed", "transaction_indexed", "monitor", "profile_indexed", "span", "monitor_seat",
		"feedback", "metric_bucket", "span_indexed", "profile_duration", "profile_chunk", "metric_second",
		"replay_video", "uptime", "attachment_item", "log_item", "log_byte", "profile_duration_ui", "profile_chunk_ui",
		"seer_autofix", "seer_scanner", "prevent_user", "prevent_review", "size_analysis", "installable_build",
		"trace_metric", "seer_user", "profile_backend", "profile_ui"} {
		known[n] = true
	}
	types := []string{"event", "transaction", "security", "raw_security", "attachment", "form_data", "nel",
		"unreal_report", "user_report", "feedback", "session", "sessions", "statsd", "metric_buckets", "client_report",
		"profile", "profile_chunk", "replay_event", "replay_recording", "replay_video", "check_in", "log", "span",
		"otel_span", "otel_traces_data", "trace_metric"}
	for _, typ := range types {
		for _, platform := range []string{"", "cocoa", "python"} {
			it := newItem(typ, nil)
			it.platform = platform
			for _, c := range it.DataCategories() {
				if !known[c] {
					t.Errorf("%s/%s: unknown category %q", typ, platform, c)
				}
			}
		}
	}
}

func TestFixtureCategories(t *testing.T) {
	// Every captured SDK item type except client reports counts against some category.
	for name, body := range fixtureEnvelopes(t) {
		e, err := Parse(body)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range e.Items {
			if got := it.DataCategories(); (len(got) == 0) != (it.Type == "client_report") {
				t.Errorf("%s: %s → %q", name, it.Type, got)
			}
		}
	}
}
