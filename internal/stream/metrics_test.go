package stream

import (
	"bytes"
	"math"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

func scrapeSet(t *testing.T, set *metrics.Set) map[string]float64 {
	t.Helper()
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	out := map[string]float64{}
	for _, m := range regexp.MustCompile(`(?m)^(relay_stream_\w+) (\S+)$`).FindAllStringSubmatch(buf.String(), -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("%s: %v", m[0], err)
		}
		out[m[1]] = v
	}
	return out
}

type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *stepClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// The depth gauges follow the stream and the consumer, and one reading
// serves every scrape within depthCacheTTL.
func TestMetricsSetDepth(t *testing.T) {
	c := openTest(t, testConfig(t))
	clk := &stepClock{t: time.Now()}
	set := c.metricsSet("workers", clk.now)

	// Before the consumer exists nothing is pending on it.
	got := scrapeSet(t, set)
	if got["relay_stream_messages"] != 0 || got["relay_stream_consumer_pending_messages"] != 0 {
		t.Fatalf("empty stream: %v", got)
	}

	k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, c, 0, 5)
	// Cached: the reading from before the publishes still serves.
	if got := scrapeSet(t, set); got["relay_stream_messages"] != 0 {
		t.Fatalf("within the cache TTL the gauges changed: %v", got)
	}
	clk.add(depthCacheTTL)
	got = scrapeSet(t, set)
	if got["relay_stream_messages"] != 5 || got["relay_stream_bytes"] <= 0 ||
		got["relay_stream_consumer_pending_messages"] != 5 || got["relay_stream_consumer_ack_pending_messages"] != 0 {
		t.Fatalf("after 5 publishes: %v", got)
	}

	ds := fetchAll(t, k, 2, 5*time.Second)
	clk.add(depthCacheTTL)
	got = scrapeSet(t, set)
	if got["relay_stream_messages"] != 5 || got["relay_stream_consumer_pending_messages"] != 3 ||
		got["relay_stream_consumer_ack_pending_messages"] != 2 {
		t.Fatalf("after fetching 2: %v", got)
	}
	ackAll(t, ds)
	clk.add(time.Minute)
	got = scrapeSet(t, set)
	if got["relay_stream_messages"] != 3 || got["relay_stream_consumer_ack_pending_messages"] != 0 {
		t.Fatalf("after acking 2: %v", got)
	}
	if age := got["relay_stream_oldest_age_seconds"]; age < 59 || age > 120 {
		t.Fatalf("oldest age %v, want about a minute on the test clock", age)
	}

	// A server that does not answer makes the gauges unknown, not zero.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	clk.add(depthCacheTTL)
	errs := depthErrors.Get()
	got = scrapeSet(t, set)
	if !math.IsNaN(got["relay_stream_messages"]) || !math.IsNaN(got["relay_stream_consumer_pending_messages"]) {
		t.Fatalf("closed connection: %v", got)
	}
	if depthErrors.Get() != errs+2 {
		t.Fatalf("info errors counted %d, want 2", depthErrors.Get()-errs)
	}
}
