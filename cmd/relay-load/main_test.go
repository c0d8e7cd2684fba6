package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       int64
		wantErr    bool
	}{
		{"plain", "1234 (relay) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 100 0 0", 3_250_000, false},
		{"name with spaces and parens", "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 0 0", 30_000, false},
		{"short", "7 (x) R 1 2 3", 0, true},
		{"no name", "garbage", 0, true},
		{"not a number", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 u 2 0", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat(tc.line)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("parseProcStat = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestProcCPUOfThisProcess(t *testing.T) {
	// The figure is Linux-only by design (/proc).
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

// The forwarder passes the request through — path, query, body and Sentry
// headers — and answers with the upstream's status and body.
func TestForwardHandler(t *testing.T) {
	var gotPath, gotAuth, gotBody string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotPath, gotAuth, gotBody = r.URL.RequestURI(), r.Header.Get("X-Sentry-Auth"), string(b)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"detail":"slow down"}`)
	}))
	defer up.Close()
	fw := httptest.NewServer(forwardHandler(up.URL, up.Client()))
	defer fw.Close()

	req, _ := http.NewRequest(http.MethodPost, fw.URL+"/api/42/envelope/?sentry_key=k", strings.NewReader("envelope bytes"))
	req.Header.Set("X-Sentry-Auth", "Sentry sentry_key=k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || string(body) != `{"detail":"slow down"}` {
		t.Fatalf("forwarder answered %d %q", resp.StatusCode, body)
	}
	if gotPath != "/api/42/envelope/?sentry_key=k" || gotAuth != "Sentry sentry_key=k" || gotBody != "envelope bytes" {
		t.Fatalf("upstream got %q %q %q", gotPath, gotAuth, gotBody)
	}

	up.Close() // an upstream that is gone is a 502, not a hang
	resp, err = http.Post(fw.URL+"/api/42/envelope/", "application/x-sentry-envelope", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("forwarder with its upstream gone answered %d, want 502", resp.StatusCode)
	}
}

// drivePair measures two targets in turns: never both loaded at once, each
// for the whole duration, every request counted for the target it went to.
func TestDrivePairTakesTurns(t *testing.T) {
	var inflight [2]atomic.Int64
	var served [2]atomic.Int64
	var overlaps atomic.Int64
	handler := func(i int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inflight[i].Add(1)
			defer inflight[i].Add(-1)
			if inflight[1-i].Load() > 0 {
				overlaps.Add(1)
			}
			_, _ = io.Copy(io.Discard, r.Body)
			served[i].Add(1)
			time.Sleep(200 * time.Microsecond) // long enough for an overlap to be seen
		})
	}
	a := httptest.NewServer(handler(0))
	defer a.Close()
	b := httptest.NewServer(handler(1))
	defer b.Close()

	o := options{conns: 8, duration: 400 * time.Millisecond, warmup: 50 * time.Millisecond, slice: 100 * time.Millisecond,
		key: "0123456789abcdef0123456789abcdef", pid: os.Getpid()}
	bodies, err := makeBodies("", 4)
	if err != nil {
		t.Fatal(err)
	}
	res, err := drivePair(context.Background(), [2]string{a.URL, b.URL}, [2]int{os.Getpid(), 0}, [2]string{}, o, bodies)
	if err != nil {
		t.Fatal(err)
	}
	if n := overlaps.Load(); n > 0 {
		t.Fatalf("%d requests reached one target while the other had one in flight", n)
	}
	for i, r := range res {
		if r == nil || r.ok == 0 || r.errors != 0 {
			t.Fatalf("target %d: result %+v", i, r)
		}
		// Counted requests were all served by this target (warm-up and
		// window ends are served but not counted).
		if r.ok > served[i].Load() {
			t.Fatalf("target %d: %d counted, %d served", i, r.ok, served[i].Load())
		}
		// rps is over the measured windows only: duration in all, a little
		// more when a sleep overran (the whole run takes ~0.9 s).
		if got := float64(r.ok) / r.rps; got < 0.39 || got > 0.7 {
			t.Fatalf("target %d measured for %.2f s, want 0.4 (its windows only)", i, got)
		}
	}
	if res[0].cpuPerEnvelope <= 0 || res[1].cpuPerEnvelope != 0 {
		t.Fatalf("CPU per request: %v (pid given), %v (none)", res[0].cpuPerEnvelope, res[1].cpuPerEnvelope)
	}
}

// A target that forwards (a count URL) is measured until its upstream went
// quiet after each window: its backlog is forwarded in its own turn, never
// in the other target's, and every envelope it accepted is counted
// delivered.
func TestDrivePairWaitsForTheBacklog(t *testing.T) {
	var pending, delivered, spilled, accepted atomic.Int64
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet { // the upstream's counter
			fmt.Fprintf(w, "%d\n", delivered.Load())
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		accepted.Add(1)
		pending.Add(1)
		time.AfterFunc(30*time.Millisecond, func() { delivered.Add(1); pending.Add(-1) })
	}))
	defer relay.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if pending.Load() > 0 {
			spilled.Add(1)
		}
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer other.Close()

	o := options{conns: 4, duration: 300 * time.Millisecond, warmup: 0, slice: 100 * time.Millisecond,
		key: "0123456789abcdef0123456789abcdef"}
	bodies, err := makeBodies("", 4)
	if err != nil {
		t.Fatal(err)
	}
	res, err := drivePair(context.Background(), [2]string{relay.URL, other.URL}, [2]int{os.Getpid(), 0},
		[2]string{relay.URL + "/_count", ""}, o, bodies)
	if err != nil {
		t.Fatal(err)
	}
	if n := spilled.Load(); n > 0 {
		t.Fatalf("%d requests reached the other target while the relay still had envelopes to forward", n)
	}
	r := res[0]
	// Delivered/s is over the windows and the drain after each: at most
	// one envelope per 30 ms per connection can be in the backlog at once.
	if r.deliveredRPS <= 0 || r.deliveredRPS > r.rps*1.05 {
		t.Fatalf("delivered/s %.0f against accepted/s %.0f", r.deliveredRPS, r.rps)
	}
	if r.cpuPerEnvelope <= 0 {
		t.Fatalf("CPU per delivered envelope %v", r.cpuPerEnvelope)
	}
}
