package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
)

// scrapeMetrics GETs /metrics and parses it strictly.
func scrapeMetrics(t testing.TB, base string) *exposition {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: Content-Type %q", ct)
	}
	e, err := parseExposition(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text: %v", err)
	}
	return e
}

// val is the value of one series, 0 when it is absent (a counter not yet
// created counts 0).
func (e *exposition) val(name string, labels ...string) float64 {
	v, _ := e.get(name, labels...)
	return v
}

// waitMetric scrapes until cond holds for the series' value.
func waitMetric(t testing.TB, base string, limit time.Duration, what string, cond func(*exposition) bool) *exposition {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		e := scrapeMetrics(t, base)
		if cond(e) {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics: %s not reached within %s", what, limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The real binary's /metrics after known traffic: exact deltas of the
// request, ack, publish, forward, upstream, scrub and spool metrics through
// normal delivery, a refusal and an outage; and every metric it serves obeys
// the naming rules.
func TestMetricsAfterKnownTraffic(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	p := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL(), extra: scrubDefaultsYAML})
	base := p.url()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	before := scrapeMetrics(t, base)
	var l ledger
	const n = 5
	for i := range n {
		if st := sendAcked(ctx, base, &l, fmt.Sprintf("metrics %d", i)); st != http.StatusOK {
			t.Fatalf("send %d: status %d", i, st)
		}
	}
	waitDelivered(t, up.EventIDs, l.ids(), time.Minute)
	// One refusal: an envelope with no auth at all.
	_, noAuth := eventEnvelope("no auth")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/"+testProject+"/envelope/", bytes.NewReader(noAuth))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	refusedStatus := fmt.Sprint(resp.StatusCode)

	after := waitMetric(t, base, 30*time.Second, "stream empty and 5 forwarded", func(e *exposition) bool {
		return e.val("relay_worker_forwarded_total")-before.val("relay_worker_forwarded_total") >= n &&
			e.val("relay_stream_messages") == 0
	})
	deltas := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"relay_ingest_requests_total", []string{"route", "envelope", "status", "200"}, n},
		{"relay_ingest_requests_total", []string{"route", "envelope", "status", refusedStatus}, 1},
		{"relay_ingest_ack_duration_seconds_count", nil, n},
		{"relay_ingest_publish_duration_seconds_count", nil, n},
		{"relay_worker_forwarded_total", nil, n},
		{"relay_worker_scrub_duration_seconds_count", nil, n},
		{"relay_upstream_requests_total", []string{"class", "accepted", "status", "200"}, n},
		{"relay_upstream_request_duration_seconds_count", nil, n},
		{"relay_worker_spooled_total", nil, 0},
	}
	for _, d := range deltas {
		if got := after.val(d.name, d.labels...) - before.val(d.name, d.labels...); got != d.want {
			t.Errorf("%s%v grew by %v, want %v", d.name, d.labels, got, d.want)
		}
	}
	// The refusal is counted once, under one reason.
	if got := sumFamily(after, "relay_ingest_rejected_total") - sumFamily(before, "relay_ingest_rejected_total"); got != 1 {
		t.Errorf("relay_ingest_rejected_total grew by %v in all, want 1", got)
	}
	for _, g := range []string{"relay_stream_messages", "relay_stream_consumer_pending_messages",
		"relay_stream_consumer_ack_pending_messages", "relay_spool_records", "relay_spool_bytes",
		"relay_spool_oldest_age_seconds", "relay_spool_dead_letters", "relay_worker_outage"} {
		if v, ok := after.get(g); !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0 after delivery", g, v, ok)
		}
	}
	for _, g := range []string{"process_resident_memory_bytes", "go_goroutines"} {
		if v, ok := after.get(g); !ok || v <= 0 {
			t.Errorf("process metric %s = %v (present %v)", g, v, ok)
		}
	}

	// An outage: three envelopes go to the spool, then drain.
	up.Down()
	var l2 ledger
	for i := range 3 {
		if st := sendAcked(ctx, base, &l2, fmt.Sprintf("outage %d", i)); st != http.StatusOK {
			t.Fatalf("send during outage %d: status %d", i, st)
		}
	}
	during := waitMetric(t, base, time.Minute, "3 records in the spool", func(e *exposition) bool {
		return e.val("relay_spool_records") == 3 && e.val("relay_worker_outage") == 1
	})
	if during.val("relay_spool_bytes") <= 0 || during.val("relay_worker_spooled_total")-after.val("relay_worker_spooled_total") != 3 {
		t.Errorf("during the outage: spool bytes %v, spooled_total grew by %v, want > 0 and 3",
			during.val("relay_spool_bytes"), during.val("relay_worker_spooled_total")-after.val("relay_worker_spooled_total"))
	}
	if during.val("relay_worker_outages_total")-after.val("relay_worker_outages_total") != 1 {
		t.Errorf("relay_worker_outages_total grew by %v, want 1", during.val("relay_worker_outages_total")-after.val("relay_worker_outages_total"))
	}
	time.Sleep(1100 * time.Millisecond)
	if age := scrapeMetrics(t, base).val("relay_spool_oldest_age_seconds"); age < 1 {
		t.Errorf("relay_spool_oldest_age_seconds = %v a second after the spool filled, want ≥ 1", age)
	}
	if err := up.Up(); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, up.EventIDs, l2.ids(), time.Minute)
	end := waitMetric(t, base, 30*time.Second, "spool drained", func(e *exposition) bool {
		return e.val("relay_spool_records") == 0 && e.val("relay_worker_outage") == 0
	})
	if got := end.val("relay_worker_drained_total") - during.val("relay_worker_drained_total"); got != 3 {
		t.Errorf("relay_worker_drained_total grew by %v, want 3", got)
	}
	if got := end.val("relay_spool_oldest_age_seconds"); got != 0 {
		t.Errorf("relay_spool_oldest_age_seconds = %v after the drain, want 0", got)
	}

	if bad := lintExposition(end); len(bad) > 0 {
		t.Errorf("%d metrics break the naming rules:\n%s", len(bad), strings.Join(bad, "\n"))
	}
}

// The checker itself: each rule catches what it is there for.
func TestExpositionLintCatches(t *testing.T) {
	const ok = "# HELP relay_x_events_total x\n# TYPE relay_x_events_total counter\nrelay_x_events_total{reason=\"a\"} 1\n"
	tests := []struct {
		name, text, want string // want: a substring of the parse error or of a violation
	}{
		{"clean", ok, ""},
		{"counter without _total", "# HELP relay_x_events x\n# TYPE relay_x_events counter\nrelay_x_events 1\n", "ends in _total"},
		{"gauge with _total", "# HELP relay_x_open_total x\n# TYPE relay_x_open_total gauge\nrelay_x_open_total 1\n", "only counters"},
		{"milliseconds", "# HELP relay_x_wait_ms x\n# TYPE relay_x_wait_ms gauge\nrelay_x_wait_ms 1\n", "base units"},
		{"duration without seconds", "# HELP relay_x_duration x\n# TYPE relay_x_duration gauge\nrelay_x_duration 1\n", "_seconds"},
		{"size without bytes", "# HELP relay_x_batch_size x\n# TYPE relay_x_batch_size gauge\nrelay_x_batch_size 1\n", "_bytes"},
		{"vmrange histogram", "# HELP relay_x_duration_seconds x\n# TYPE relay_x_duration_seconds untyped\nrelay_x_duration_seconds_bucket{vmrange=\"1e0...2e0\"} 1\nrelay_x_duration_seconds_sum 1\nrelay_x_duration_seconds_count 1\n", "type untyped"},
		{"key as label value", "# HELP relay_x_events_total x\n# TYPE relay_x_events_total counter\nrelay_x_events_total{reason=\"0123456789abcdef0123456789abcdef\"} 1\n", "looks unbounded"},
		{"url as label value", "# HELP relay_x_events_total x\n# TYPE relay_x_events_total counter\nrelay_x_events_total{reason=\"http://x/y\"} 1\n", "looks unbounded"},
		{"unknown label", "# HELP relay_x_events_total x\n# TYPE relay_x_events_total counter\nrelay_x_events_total{project_id=\"42\"} 1\n", "bounded labels"},
		{"not relay_", "# HELP foo_events_total x\n# TYPE foo_events_total counter\nfoo_events_total 1\n", "relay_<subsystem>"},
		{"no TYPE", "relay_x_events_total 1\n", "no HELP/TYPE"},
		{"histogram count off", "# HELP relay_x_duration_seconds x\n# TYPE relay_x_duration_seconds histogram\nrelay_x_duration_seconds_bucket{le=\"1\"} 1\nrelay_x_duration_seconds_bucket{le=\"+Inf\"} 2\nrelay_x_duration_seconds_sum 1\nrelay_x_duration_seconds_count 3\n", "_count differs"},
		{"split family", ok + "# HELP relay_y_a_total y\n# TYPE relay_y_a_total counter\nrelay_y_a_total 1\nrelay_x_events_total{reason=\"b\"} 1\n", "not contiguous"},
		{"second TYPE", ok + "# TYPE relay_x_events_total counter\n", "after its samples"},
		{"duplicate series", ok + "relay_x_events_total{reason=\"a\"} 2\n", "duplicate series"},
		{"bad value", "# HELP relay_x_events_total x\n# TYPE relay_x_events_total counter\nrelay_x_events_total one\n", "invalid syntax"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := parseExposition(strings.NewReader(tc.text))
			var got []string
			if err != nil {
				got = []string{err.Error()}
			} else {
				got = lintExposition(e)
			}
			all := strings.Join(got, "\n")
			if tc.want == "" && len(got) > 0 {
				t.Fatalf("clean exposition flagged: %s", all)
			}
			if tc.want != "" && !strings.Contains(all, tc.want) {
				t.Fatalf("want a complaint with %q, got %q", tc.want, all)
			}
		})
	}
}

// sumFamily adds up every series of a counter family.
func sumFamily(e *exposition, name string) float64 {
	f := e.families[name]
	if f == nil {
		return 0
	}
	var sum float64
	for _, s := range f.samples {
		sum += s.value
	}
	return sum
}
