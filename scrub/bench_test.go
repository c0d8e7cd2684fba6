package scrub

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/testfixture"
)

// sdkEvents extracts the event and transaction payloads of the captured SDK
// traffic (envelopes and plain-JSON store bodies).
func sdkEvents(tb testing.TB) [][]byte {
	tb.Helper()
	dir := testfixture.SDKDir(tb)
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for _, e := range entries {
		name := e.Name()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			tb.Fatal(err)
		}
		switch {
		case strings.HasSuffix(name, ".envelope"):
			env, err := envelope.Parse(b)
			if err != nil {
				tb.Fatalf("%s: %v", name, err)
			}
			for _, it := range env.Items {
				if it.Type == "event" || it.Type == "transaction" {
					out = append(out, it.Payload)
				}
			}
		case strings.HasSuffix(name, ".store.json"):
			out = append(out, b)
		}
	}
	if len(out) < 10 {
		tb.Fatalf("only %d SDK events found in %s", len(out), dir)
	}
	return out
}

// bigEvent is a synthetic ~200 KB error event with breadcrumbs, frames with
// local variables, request data and some personal data sprinkled in.
func bigEvent(tb testing.TB) []byte {
	tb.Helper()
	ev := map[string]any{
		"event_id": "9ec79c33ec9942ab8353589fcb2e04dc", "platform": "python", "level": "error",
		"timestamp": 1700000000.5, "release": "app@1.2.3", "environment": "production", "server_name": "web-1",
		"user":    map[string]any{"id": "42", "email": "jane@example.com", "ip_address": "203.0.113.9", "username": "jane"},
		"request": map[string]any{"url": "https://example.com/checkout?step=2", "method": "POST", "query_string": "step=2&token=abc123", "cookies": "session=abcdef; theme=dark", "headers": [][2]string{{"User-Agent", "Mozilla/5.0"}, {"Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x"}, {"Accept", "text/html"}}, "data": map[string]any{"card": "4571 2345 6789 0111", "name": "Jane Doe", "password": "hunter2"}, "env": map[string]any{"REMOTE_ADDR": "203.0.113.9"}},
		"tags":    map[string]any{"browser": "Chrome", "customer": "acme"},
	}
	extra := map[string]any{}
	for i := 0; i < 600; i++ {
		extra[fmt.Sprintf("field_%d", i)] = fmt.Sprintf("some ordinary diagnostic text number %d with nothing special in it", i)
	}
	extra["db_url"] = "postgres://app:s3cret@db.internal:5432/app"
	ev["extra"] = extra
	var crumbs []any
	for i := 0; i < 650; i++ {
		crumbs = append(crumbs, map[string]any{
			"timestamp": 1700000000 + i, "category": "http", "type": "http",
			"message": fmt.Sprintf("GET /api/items/%d returned 200 in %dms", i, i%97),
			"data":    map[string]any{"url": fmt.Sprintf("/api/items/%d", i), "status_code": 200, "method": "GET"},
		})
	}
	ev["breadcrumbs"] = map[string]any{"values": crumbs}
	var frames []any
	for i := 0; i < 120; i++ {
		frames = append(frames, map[string]any{
			"function": fmt.Sprintf("handler_%d", i), "module": "app.views", "filename": "app/views.py",
			"abs_path": "/home/deploy/app/views.py", "lineno": i + 1, "in_app": true,
			"context_line": "    result = compute(value)", "pre_context": []string{"def f():", "    x = 1"},
			"vars": map[string]any{"value": fmt.Sprintf("%d", i), "self": "<View object>", "items": []any{1, 2, 3}, "api_key": "k-123"},
		})
	}
	ev["exception"] = map[string]any{"values": []any{map[string]any{"type": "ValueError", "value": "invalid literal for int()", "stacktrace": map[string]any{"frames": frames}}}}
	b, err := json.Marshal(ev)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

const tenRules = `{
  "rules": {
    "iban": {"type": "iban", "redaction": {"method": "replace", "text": "[iban]"}},
    "orders": {"type": "pattern", "pattern": "ORD-[0-9]{6,}", "redaction": {"method": "mask"}},
    "apikeys": {"type": "pattern", "pattern": "sk_(live|test)_[A-Za-z0-9]{16,}", "redaction": {"method": "replace", "text": "[key]"}},
    "secret-fields": {"type": "redact_pair", "keyPattern": "(?i)^(ssn|dob|passport)$", "redaction": {"method": "remove"}},
    "phones": {"type": "pattern", "pattern": "\\+[0-9]{7,15}", "redaction": {"method": "hash"}}
  },
  "applications": {
    "$string": ["iban", "orders", "apikeys", "phones", "@email:replace", "@creditcard:mask", "@ip:hash"],
    "$object.**": ["secret-fields"],
    "$http.headers.x-custom-token": ["@anything:remove"],
    "extra.customer_note": ["@anything:remove"]
  }
}`

func benchConfigs(tb testing.TB) []struct {
	name string
	s    *Scrubber
} {
	mk := func(c Config) *Scrubber {
		s, err := Compile(c)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
	return []struct {
		name string
		s    *Scrubber
	}{
		{"off", mk(Config{})},
		{"defaults", mk(Config{DataScrubbing: &DataScrubbing{ScrubData: true, ScrubDefaults: true}})},
		{"defaults+ip", mk(Config{DataScrubbing: &DataScrubbing{ScrubData: true, ScrubDefaults: true, ScrubIPAddresses: true}})},
		{"ten-rules", mk(Config{PIIConfig: []byte(tenRules)})},
	}
}

func BenchmarkScrubSDKEvents(b *testing.B) {
	events := sdkEvents(b)
	var total int
	for _, e := range events {
		total += len(e)
	}
	for _, c := range benchConfigs(b) {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(total))
			st := benchStart(b)
			for b.Loop() {
				for _, e := range events {
					if _, _, err := c.s.ScrubEvent(e); err != nil {
						b.Fatal(err)
					}
				}
			}
			reportPerEvent(b, st, b.N*len(events))
		})
	}
}

func BenchmarkScrubBigEvent(b *testing.B) {
	ev := bigEvent(b)
	for _, c := range benchConfigs(b) {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(ev)))
			st := benchStart(b)
			for b.Loop() {
				if _, _, err := c.s.ScrubEvent(ev); err != nil {
					b.Fatal(err)
				}
			}
			reportPerEvent(b, st, b.N)
		})
	}
}

// cpuTime is the CPU time this process has used. The per-core figure is
// computed from it rather than from wall time, so a loaded machine (shared
// CI, other tests) does not distort it.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type benchMark struct {
	cpu     time.Duration
	mallocs uint64
}

func benchStart(b *testing.B) benchMark {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return benchMark{cpu: cpuTime(b), mallocs: ms.Mallocs}
}

// reportPerEvent reports wall-clock events/s, events per CPU-second ("per
// core") and allocations per event over n events.
func reportPerEvent(b *testing.B, st benchMark, n int) {
	cpu := cpuTime(b) - st.cpu
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	if cpu > 0 {
		b.ReportMetric(float64(n)/cpu.Seconds(), "events/cpu-s")
	}
	b.ReportMetric(float64(ms.Mallocs-st.mallocs)/float64(n), "allocs/event")
}

func BenchmarkCompile(b *testing.B) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"defaults", Config{DataScrubbing: &DataScrubbing{ScrubData: true, ScrubDefaults: true, ScrubIPAddresses: true, SensitiveFields: []string{"foo", "bar"}}}},
		{"ten-rules", Config{PIIConfig: []byte(tenRules)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(c.cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestBenchInputsScrub(t *testing.T) {
	// The benchmark inputs are valid and the big event really is ~200 KB and
	// gets scrubbed.
	ev := bigEvent(t)
	if len(ev) < 150_000 || len(ev) > 260_000 {
		t.Fatalf("big event is %d bytes", len(ev))
	}
	for _, c := range benchConfigs(t) {
		out, changed, err := c.s.ScrubEvent(ev)
		if err != nil || !json.Valid(out) {
			t.Fatalf("%s: err=%v valid=%v", c.name, err, json.Valid(out))
		}
		if changed != (c.name != "off") {
			t.Fatalf("%s: changed=%v", c.name, changed)
		}
	}
	for _, e := range sdkEvents(t) {
		for _, c := range benchConfigs(t) {
			out, _, err := c.s.ScrubEvent(e)
			if err != nil || !json.Valid(out) {
				t.Fatalf("%s: err=%v on %.200s", c.name, err, e)
			}
		}
	}
}

// Every item of every captured envelope goes through ScrubItem without an
// error, and changed items stay valid for their type.
func TestSDKItemsScrub(t *testing.T) {
	dir := testfixture.SDKDir(t)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := mustCompile(t, Config{DataScrubbing: simple, PIIConfig: []byte(`{"applications":{"$attachments.'*'":["@ip"],"$string":["@email"]}}`)})
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".envelope") {
			continue
		}
		env, err := envelope.Parse(testfixture.SDKFile(t, e.Name()))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		for _, it := range env.Items {
			item := Item{Type: it.Type, Filename: it.HeaderString("filename"), AttachmentType: it.HeaderString("attachment_type"), ContentType: it.HeaderString("content_type")}
			out, changed, err := s.ScrubItem(item, it.Payload)
			if err != nil {
				t.Errorf("%s %s: %v", e.Name(), it.Type, err)
				continue
			}
			if changed && it.Type != "attachment" && it.Type != "replay_recording" && !json.Valid(out) {
				t.Errorf("%s %s: invalid JSON", e.Name(), it.Type)
			}
			if changed && it.Type == "attachment" && len(out) != len(it.Payload) {
				t.Errorf("%s: attachment length changed", e.Name())
			}
		}
	}
}
