package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/status"
)

// statusScreenshot, when set, is where TestStatusPageInChromium saves its
// screenshot (the README's picture: internal/status/status-page.png).
var statusScreenshot = flag.String("status-screenshot", "", "save the status page test's screenshot (PNG) to this path")

// TestStatusPageInChromium loads the relay's status page in headless
// Chromium after known traffic — envelopes forwarded, then spooled during
// an upstream outage — waits until the page has drawn its charts, and
// checks that the numbers it shows are /metrics' numbers, that each chart
// drew what the counters grew by, and that the page loaded nothing but
// itself and its JSON.
//
// It installs what it needs as TestBrowserSDKThroughTunnel does; where that
// is impossible it skips, except under CI=true, where it fails.
func TestStatusPageInChromium(t *testing.T) {
	tools := statusPageTools(t)

	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	p := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL()})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// Two batches forwarded in different sampling intervals, then a third
	// spooled: the charts get more than one point with data.
	const first, forwarded, spooled = 5, 8, 4
	var l ledger
	for i := range forwarded {
		if i == first {
			waitReport(t, p, "the first batch sampled", func(r status.Report) bool { return sum(r.History.Forwarded) == first })
		}
		if st := sendAcked(ctx, p.url(), &l, fmt.Sprintf("status page %d", i)); st != http.StatusOK {
			t.Fatalf("envelope %d answered %d", i, st)
		}
		if i == first-1 {
			waitDelivered(t, up.EventIDs, l.ids(), 30*time.Second)
		}
	}
	waitDelivered(t, up.EventIDs, l.ids(), 30*time.Second)
	waitReport(t, p, "the forwards counted", func(r status.Report) bool { return r.Totals.Forwarded == forwarded })
	up.Down()
	for i := range spooled {
		if st := sendAcked(ctx, p.url(), &l, fmt.Sprintf("status page, upstream down %d", i)); st != http.StatusOK {
			t.Fatalf("envelope %d in the outage answered %d", i, st)
		}
	}
	// Every envelope counted, spooled in an outage, and sampled into the
	// history (every 5 s), so the charts have it all.
	waitReport(t, p, "the outage's envelopes spooled and sampled", func(r status.Report) bool {
		return r.Totals.Spooled == spooled && r.Upstream.State == status.UpstreamOutage &&
			r.Spool != nil && r.Spool.Records == spooled &&
			sum(r.History.Accepted) == forwarded+spooled && sum(r.History.Forwarded) == forwarded && sum(r.History.Spooled) == spooled
	})

	shot := filepath.Join(t.TempDir(), "status-page.png")
	cmd := exec.CommandContext(ctx, tools.node, filepath.Join(tools.work, "status-page.js"), p.url()+status.PagePath, shot, "60000")
	cmd.Dir = tools.work
	cmd.Env = append(os.Environ(), "CHROMIUM="+tools.chromium)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("status-page.js: %v\n%s", err, out)
	}
	var page struct {
		Facts  map[string]string `json:"facts"`
		Charts map[string]struct {
			Points, Sum, Vertices int
			Height, Width         float64
		} `json:"charts"`
		Updates int `json:"updates"`
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "[result] "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "[result] ")), &page); err != nil {
				t.Fatalf("driver result: %v: %s", err, line)
			}
		case strings.HasPrefix(line, "[csp]"), strings.HasPrefix(line, "[pageerror]"),
			strings.HasPrefix(line, "[requestfailed]"), strings.HasPrefix(line, "[console.error]"):
			t.Errorf("in the browser: %s", line)
		case strings.HasPrefix(line, "[request] "):
			// The page loads itself and its JSON, from the relay, nothing else.
			u := strings.Fields(line)[2]
			if u != p.url()+status.PagePath && u != p.url()+status.JSONPath {
				t.Errorf("the page loaded %s", u)
			}
		case strings.HasPrefix(line, "[page] ") && line != "[page] 200 csp=set":
			t.Errorf("the page itself: %s", line)
		}
	}
	if page.Facts == nil {
		t.Fatalf("the driver reported nothing:\n%s", out)
	}

	// What /metrics says now; no traffic moves the counters any more (the
	// upstream stays down, the spool holds).
	m := scrapeForStatus(t, p.url())
	metric := func(names ...string) int {
		total := 0.0
		for _, n := range names {
			v, ok := m[n]
			if !ok {
				t.Fatalf("/metrics has no %s", n)
			}
			total += v
		}
		return int(total)
	}
	shown := func(fact string) int {
		v, err := strconv.Atoi(page.Facts[fact])
		if err != nil {
			t.Fatalf("the page shows %q for %s, not a number", page.Facts[fact], fact)
		}
		return v
	}
	checks := []struct {
		fact    string
		metrics []string // summed
		want    int
	}{
		{"totals.accepted", []string{"relay_ingest_accepted_envelopes_total"}, forwarded + spooled},
		{"totals.forwarded", []string{"relay_worker_forwarded_total", "relay_worker_drained_total"}, forwarded},
		{"totals.spooled", []string{"relay_worker_spooled_total"}, spooled},
		{"spool.records", []string{"relay_spool_records"}, spooled},
		{"spool.dead_letters", []string{"relay_spool_dead_letters"}, 0},
		{"stream.messages", []string{"relay_stream_messages"}, 0},
		{"stream.pending", []string{"relay_stream_consumer_pending_messages"}, 0},
		{"stream.ack_pending", []string{"relay_stream_consumer_ack_pending_messages"}, 0},
	}
	for _, c := range checks {
		got := shown(c.fact)
		if mv := metric(c.metrics...); got != mv {
			t.Errorf("the page shows %s = %d, /metrics %s = %d", c.fact, got, strings.Join(c.metrics, " + "), mv)
		}
		if got != c.want {
			t.Errorf("the page shows %s = %d, want %d", c.fact, got, c.want)
		}
	}
	if got := page.Facts["upstream.state"]; got != status.UpstreamOutage || metric("relay_worker_outage") != 1 {
		t.Errorf("the page shows upstream %q, /metrics relay_worker_outage = %d; want outage, 1", got, metric("relay_worker_outage"))
	}
	if got := page.Facts["mode"]; got != "proxy" {
		t.Errorf("the page shows mode %q", got)
	}
	if !strings.HasSuffix(page.Facts["spool.oldest"], " old") {
		t.Errorf("the page shows the spool's oldest as %q", page.Facts["spool.oldest"])
	}
	// Each chart drew what its counter grew by since the relay started.
	for name, want := range map[string]int{
		"accepted":  metric("relay_ingest_accepted_envelopes_total"),
		"forwarded": metric("relay_worker_forwarded_total", "relay_worker_drained_total"),
		"spooled":   metric("relay_worker_spooled_total"),
	} {
		c, ok := page.Charts[name]
		if !ok {
			t.Errorf("no %s chart", name)
			continue
		}
		if c.Sum != want || c.Points < 2 || c.Vertices != 2*c.Points || c.Height <= 0 || c.Width < 200 {
			t.Errorf("%s chart: %+v, want a drawn line over %d envelopes", name, c, want)
		}
	}
	if t.Failed() {
		t.Logf("browser log:\n%s", out)
	}
	if *statusScreenshot != "" {
		b, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*statusScreenshot, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_ = p.term(10 * time.Second)
}

func sum(s []uint64) uint64 {
	var n uint64
	for _, v := range s {
		n += v
	}
	return n
}

// waitReport polls the relay's status report until cond holds (60 s).
func waitReport(t *testing.T, p *relayProc, what string, cond func(status.Report) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last *status.Report
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := status.Fetch(ctx, nil, p.url())
		cancel()
		if err == nil {
			last = r
			if cond(*r) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last report: %+v (err %v)", what, last, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// scrapeForStatus reads /metrics into series → value, a series being its
// name with its labels as exposed.
func scrapeForStatus(t *testing.T, base string) map[string]float64 {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %v", res.StatusCode, err)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("/metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

// statusPageTools installs (when missing) Chromium, node and the locked npm
// packages of testdata/browser (playwright-core drives the browser), and
// puts the driver beside them.
func statusPageTools(t *testing.T) browserSetup {
	t.Helper()
	unavailable := t.Skipf
	if os.Getenv("CI") == "true" {
		unavailable = t.Fatalf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var s browserSetup
	var err error
	if s.chromium, err = findOrInstall(ctx, t, "chromium", "chromium"); err != nil {
		unavailable("headless Chromium: %v", err)
	}
	if s.node, err = findOrInstall(ctx, t, "node", "nodejs", "npm"); err != nil {
		unavailable("node: %v", err)
	}
	npm, err := findOrInstall(ctx, t, "npm", "npm")
	if err != nil {
		unavailable("npm: %v", err)
	}
	modules, err := nodeModules(ctx, t, npm, "browser")
	if err != nil {
		unavailable("npm packages for the browser test: %v", err)
	}
	s.work = t.TempDir()
	b, err := os.ReadFile(filepath.Join("testdata", "browser", "status-page.js"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.work, "status-page.js"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(modules, filepath.Join(s.work, "node_modules")); err != nil {
		t.Fatal(err)
	}
	return s
}
