package status

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/history"
)

var t0 = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

type fakeReg struct{ state, reason string }

func (f fakeReg) Registration() (string, string) { return f.state, f.reason }

type fakeUp struct {
	state  string
	since  time.Time
	denied bool
}

func (f fakeUp) UpstreamState() (string, time.Time, bool) { return f.state, f.since, f.denied }

type fakeStream struct {
	st    Stream
	err   error
	block bool
}

func (f fakeStream) StreamDepth(ctx context.Context) (Stream, error) {
	if f.block {
		<-ctx.Done()
		return Stream{Name: f.st.Name}, ctx.Err()
	}
	return f.st, f.err
}

type fakeSpool struct {
	sp     Spool
	oldest time.Time
	err    error
}

func (f fakeSpool) SpoolState() (Spool, time.Time, error) { return f.sp, f.oldest, f.err }

// collector returns a Collector over fakes with three samples of history
// at 5 s intervals, the clock at t0+10s, and live totals above the last
// sample.
func collector() *Collector {
	now := t0
	var c history.Counts
	rec := history.New(history.SourceFunc(func() history.Counts { return c }), history.Options{Every: 5 * time.Second, Now: func() time.Time { return now }})
	for _, s := range []history.Counts{{}, {Accepted: 10, Forwarded: 5}, {Accepted: 30, Forwarded: 20, Spooled: 5}} {
		c = s
		rec.Sample()
		now = now.Add(5 * time.Second)
	}
	c = history.Counts{Accepted: 31, Forwarded: 21, Spooled: 6}
	return &Collector{
		Version:      "1.2.3",
		Mode:         "managed",
		Ingest:       true,
		Worker:       true,
		UpstreamURL:  "https://user:secret@sentry.example.com/base/?token=abc#frag",
		StartedAt:    t0,
		History:      rec,
		Registration: fakeReg{"registering", "not registered with the upstream yet"},
		Upstream:     fakeUp{state: UpstreamOutage, since: t0.Add(2 * time.Second)},
		Stream:       fakeStream{st: Stream{Name: "RELAY", Messages: 7, Bytes: 700, Pending: 3, AckPending: 4}},
		Spool:        fakeSpool{sp: Spool{Records: 5, Bytes: 500, DiskBytes: 4096, DeadLetters: 1}, oldest: t0.Add(-50 * time.Second)},
		Now:          func() time.Time { return t0.Add(10 * time.Second) },
	}
}

func TestCollect(t *testing.T) {
	r := collector().Collect(context.Background())
	since := t0.Add(2 * time.Second)
	oldest := t0.Add(-50 * time.Second)
	want := Report{
		Version: "1.2.3", Time: t0.Add(10 * time.Second), StartedAt: t0, Mode: "managed", Ingest: true, Worker: true,
		Registration: &Registration{State: "registering", Reason: "not registered with the upstream yet"},
		Upstream:     Upstream{URL: "https://sentry.example.com/base/", State: UpstreamOutage, Since: &since},
		Stream:       Stream{Name: "RELAY", Messages: 7, Bytes: 700, Pending: 3, AckPending: 4},
		Spool:        &Spool{Records: 5, Bytes: 500, DiskBytes: 4096, DeadLetters: 1, Oldest: &oldest, OldestAgeSeconds: 60},
		Totals:       history.Counts{Accepted: 31, Forwarded: 21, Spooled: 6},
		Rates:        Rates{WindowSeconds: 10, Accepted: 3, Forwarded: 2, Spooled: 0.5},
		History: History{IntervalSeconds: 5, End: []int64{t0.Add(5 * time.Second).UnixMilli(), t0.Add(10 * time.Second).UnixMilli()},
			Accepted: []uint64{10, 20}, Forwarded: []uint64{5, 15}, Spooled: []uint64{0, 5}},
	}
	gotJSON, _ := json.Marshal(r)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Fatalf("report\n got %s\nwant %s", gotJSON, wantJSON)
	}
	if strings.Contains(string(gotJSON), "secret") || strings.Contains(string(gotJSON), "token") {
		t.Fatalf("the report shows the upstream URL's credentials: %s", gotJSON)
	}
}

// TestUpstreamWaitsForRegistration: a managed relay that is not registered
// has sent nothing, so "up" would claim what nobody knows.
func TestUpstreamWaitsForRegistration(t *testing.T) {
	for _, tc := range []struct {
		reg, up, want string
	}{
		{"registering", UpstreamUp, UpstreamWaiting},
		{"denied", UpstreamUp, UpstreamWaiting},
		{"registered", UpstreamUp, UpstreamUp},
		{"renewing", UpstreamUp, UpstreamUp},
		{"registering", UpstreamOutage, UpstreamOutage}, // sends did fail: say so
	} {
		c := collector()
		c.Registration = fakeReg{state: tc.reg}
		c.Upstream = fakeUp{state: tc.up}
		if got := c.Collect(context.Background()).Upstream.State; got != tc.want {
			t.Errorf("registration %s, worker %s: upstream %q, want %q", tc.reg, tc.up, got, tc.want)
		}
	}
	c := collector()
	c.Registration = nil
	c.Upstream = fakeUp{state: UpstreamUp}
	if got := c.Collect(context.Background()).Upstream.State; got != UpstreamUp {
		t.Errorf("proxy mode: upstream %q, want up", got)
	}
}

// TestRatesSpanTheMinuteDespiteLateTicks: samples a few milliseconds late
// still give rates over the whole minute, not over 55 s of it.
func TestRatesSpanTheMinuteDespiteLateTicks(t *testing.T) {
	now := t0
	var c history.Counts
	rec := history.New(history.SourceFunc(func() history.Counts { return c }), history.Options{Every: 5 * time.Second, Now: func() time.Time { return now }})
	for i := range 30 {
		c = history.Counts{Accepted: uint64(i) * 10}
		rec.Sample()
		now = now.Add(5*time.Second + 3*time.Millisecond)
	}
	col := collector()
	col.History = rec
	r := col.Collect(context.Background())
	if r.Rates.WindowSeconds < 60 || r.Rates.WindowSeconds > 61 {
		t.Fatalf("rates over %.3f s, want the minute", r.Rates.WindowSeconds)
	}
	if r.Rates.Accepted < 1.99 || r.Rates.Accepted > 2 {
		t.Fatalf("accepted rate %.4f/s, want about 2", r.Rates.Accepted)
	}
}

func TestCollectWithoutWorkerOrRegistration(t *testing.T) {
	c := collector()
	c.Registration, c.Upstream, c.Spool, c.Worker = nil, nil, nil, false
	c.Stream = fakeStream{err: errors.New("stream: ready: connection CLOSED")}
	b, _ := json.Marshal(c.Collect(context.Background()))
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"registration", "spool"} {
		if _, ok := m[k]; ok {
			t.Errorf("report has %q without its source: %s", k, b)
		}
	}
	if up := m["upstream"].(map[string]any); up["state"] != UpstreamUnknown {
		t.Errorf("upstream state without a worker = %v, want %q", up["state"], UpstreamUnknown)
	}
	if st := m["stream"].(map[string]any); st["error"] != "stream: ready: connection CLOSED" {
		t.Errorf("stream error = %v", st["error"])
	}
}

// TestCollectDoesNotWaitForAStuckStream: a stream that never answers costs
// the report StreamTimeout, and the rest is still there.
func TestCollectDoesNotWaitForAStuckStream(t *testing.T) {
	c := collector()
	c.Stream = fakeStream{st: Stream{Name: "RELAY"}, block: true}
	c.StreamTimeout = 50 * time.Millisecond
	done := make(chan Report, 1)
	go func() { done <- c.Collect(context.Background()) }()
	select {
	case r := <-done:
		if !strings.Contains(r.Stream.Error, "deadline") || r.Stream.Name != "RELAY" || r.Totals.Accepted != 31 {
			t.Fatalf("report with a stuck stream: %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Collect waited for a stuck stream")
	}
}

func TestCollectSpoolError(t *testing.T) {
	c := collector()
	c.Spool = fakeSpool{sp: Spool{Records: 2}, err: errors.New("spool: read oldest: boom")}
	r := c.Collect(context.Background())
	if r.Spool.Records != 2 || r.Spool.Error != "spool: read oldest: boom" || r.Spool.Oldest != nil {
		t.Fatalf("spool with a read error: %+v", r.Spool)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                                    "",
		"https://sentry.io/":                  "https://sentry.io/",
		"http://a:b@host:9000/x?k=v#f":        "http://host:9000/x",
		"not a url":                           "(not shown: not a URL)",
		"https://sentry.example.com/?secret=": "https://sentry.example.com/",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHandlerServesJSONAndPage(t *testing.T) {
	srv := httptest.NewServer(NewHandler(collector(), nil))
	defer srv.Close()

	res, body := httpGet(t, srv.URL+JSONPath)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("JSON: %d %v", res.StatusCode, res.Header)
	}
	var r Report
	if err := json.Unmarshal(body, &r); err != nil || r.Totals.Accepted != 31 {
		t.Fatalf("JSON report: %v %s", err, body)
	}

	for _, p := range []string{PagePath, PagePath + "/"} {
		res, body = httpGet(t, srv.URL+p)
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("page %s: %d %v", p, res.StatusCode, res.Header)
		}
	}
	page := string(body)
	csp := res.Header.Get("Content-Security-Policy")
	// The inline script and style run only because their hashes are in the
	// policy: check the hashes are of exactly what the page carries.
	for _, tag := range []string{"script", "style"} {
		m := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllStringSubmatch(page, -1)
		if len(m) != 1 {
			t.Fatalf("page has %d inline <%s> elements, want 1", len(m), tag)
		}
		h := sha256.Sum256([]byte(m[0][1]))
		if want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"; !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	// No external assets: nothing is loaded by src or href but an empty
	// data: icon (without it the browser asks for /favicon.ico).
	if m := regexp.MustCompile(`(?i)\b(src|href)\s*=\s*"(?:[^d]|d[^a]|da[^t]|dat[^a]|data[^:])`).FindString(page); m != "" {
		t.Errorf("page loads something (%q)", m)
	}
	if !strings.Contains(page, `<link rel="icon" href="data:,">`) {
		t.Error("page has no empty icon: the browser would ask the relay for /favicon.ico")
	}
	for _, f := range []string{"totals.accepted", "totals.forwarded", "totals.spooled", "stream.messages", "spool.records",
		"spool.oldest", "upstream.state", "registration.state", "rates.accepted", "mode"} {
		if !strings.Contains(page, `data-fact="`+f+`"`) {
			t.Errorf("page shows no %s", f)
		}
	}
	for _, c := range []string{"accepted", "forwarded", "spooled"} {
		if !strings.Contains(page, `data-chart="`+c+`"`) {
			t.Errorf("page has no %s chart", c)
		}
	}
}

func TestHandlerRefusals(t *testing.T) {
	srv := httptest.NewServer(NewHandler(collector(), nil))
	defer srv.Close()
	res, err := http.Post(srv.URL+JSONPath, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d Allow=%q", res.StatusCode, res.Header.Get("Allow"))
	}
	if res, _ := httpGet(t, srv.URL+"/relay/statusx"); res.StatusCode != 404 {
		t.Errorf("other path: %d, want 404", res.StatusCode)
	}
}

func TestMountRoutesOnlyStatusPaths(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	srv := httptest.NewServer(Mount(NewHandler(collector(), nil), next))
	defer srv.Close()
	for p, want := range map[string]int{PagePath: 200, PagePath + "/": 200, JSONPath: 200, "/api/42/envelope/": 299, "/relay/status/x": 299, "/metrics": 299} {
		if res, _ := httpGet(t, srv.URL+p); res.StatusCode != want {
			t.Errorf("%s: %d, want %d", p, res.StatusCode, want)
		}
	}
}

func TestFetchAndHealth(t *testing.T) {
	ready := true
	mux := http.NewServeMux()
	mux.Handle(JSONPath, NewHandler(collector(), nil))
	mux.HandleFunc("/api/relay/healthcheck/live/", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{"is_healthy":true}`) })
	mux.HandleFunc("/api/relay/healthcheck/ready/", func(w http.ResponseWriter, r *http.Request) {
		if ready {
			_, _ = io.WriteString(w, `{"is_healthy":true}`)
			return
		}
		w.WriteHeader(503)
		_, _ = io.WriteString(w, `{"is_healthy":false}`)
	})
	mux.HandleFunc("/huge"+JSONPath, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(make([]byte, maxReport+10))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()

	r, err := Fetch(ctx, nil, srv.URL)
	if err != nil || r.Totals.Accepted != 31 || r.Mode != "managed" {
		t.Fatalf("Fetch: %v %+v", err, r)
	}
	if _, err := Fetch(ctx, nil, strings.TrimPrefix(srv.URL, "http://")); err != nil {
		t.Fatalf("Fetch of host:port: %v", err)
	}
	if _, err := Fetch(ctx, nil, srv.URL+"/huge"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Fetch of a huge answer: %v", err)
	}
	if err := Health(ctx, nil, srv.URL, HealthLive); err != nil {
		t.Fatalf("live: %v", err)
	}
	if err := Health(ctx, nil, srv.URL, HealthReady); err != nil {
		t.Fatalf("ready: %v", err)
	}
	ready = false
	if err := Health(ctx, nil, srv.URL, HealthReady); !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("not ready: %v", err)
	}
	if err := Health(ctx, nil, srv.URL, "dead"); err == nil || errors.Is(err, ErrUnhealthy) {
		t.Fatalf("bad mode: %v", err)
	}

	// Nothing listening: an error that is not ErrUnhealthy, naming the address.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, err := range []error{Health(ctx, nil, addr, HealthLive), func() error { _, err := Fetch(ctx, nil, addr); return err }()} {
		if err == nil || errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "no relay answers at http://"+addr) {
			t.Errorf("nothing listening: %v", err)
		}
	}
	if _, err := Fetch(ctx, nil, "ftp://x"); err == nil {
		t.Error("Fetch accepted an ftp URL")
	}
}

func httpGet(t *testing.T, u string) (*http.Response, []byte) {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

// TestAFullHourFitsTheClient: the report of a relay that has run for hours
// with large counters stays far below what Fetch reads (maxReport), so
// `relay status` never refuses a healthy relay's answer.
func TestAFullHourFitsTheClient(t *testing.T) {
	now := t0
	var c history.Counts
	rec := history.New(history.SourceFunc(func() history.Counts { return c }), history.Options{Now: func() time.Time { return now }})
	for i := range 3 * 721 { // three hours at the default 5 s: the ring holds the last one
		c = history.Counts{Accepted: 1e12 + uint64(i)*1e6, Forwarded: 1e12 + uint64(i)*1e6, Spooled: 1e12 + uint64(i)*1e6}
		rec.Sample()
		now = now.Add(history.DefaultEvery)
	}
	col := collector()
	col.History = rec
	col.Now = func() time.Time { return now }
	b, err := json.Marshal(col.Collect(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.History.End) != 720 || r.History.Accepted[0] != 1e6 {
		t.Fatalf("a full hour: %d points, first %d", len(r.History.End), r.History.Accepted[0])
	}
	if len(b) > maxReport/16 {
		t.Fatalf("a full hour's report is %d bytes; the client reads at most %d", len(b), maxReport)
	}
	t.Logf("a full hour's report: %d bytes", len(b))
}
