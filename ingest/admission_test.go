package ingest

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestByteBudget: grants in arrival order, never over the size, clamps a
// request larger than the whole budget, and a waiter that gives up (timeout,
// cancelled, stopped) takes nothing and lets the next one in.
func TestByteBudget(t *testing.T) {
	ctx := context.Background()
	never := make(chan struct{})
	b := &byteBudget{size: 100}

	if got, err := b.acquire(ctx, never, time.Second, 60); err != nil || got != 60 {
		t.Fatalf("acquire 60 = %d, %v", got, err)
	}
	// 50 does not fit: it waits past its timeout and takes nothing.
	if got, err := b.acquire(ctx, never, 10*time.Millisecond, 50); !errors.Is(err, errBudgetTimeout) || got != 0 {
		t.Fatalf("acquire over the budget = %d, %v; want errBudgetTimeout", got, err)
	}
	if b.inUse() != 60 {
		t.Fatalf("in use %d after a timed-out wait, want 60", b.inUse())
	}

	// Queue 50 then 10: 10 would fit now, but must not overtake 50.
	type res struct {
		name string
		got  int64
		err  error
	}
	out := make(chan res, 2)
	go func() {
		got, err := b.acquire(ctx, never, 5*time.Second, 50)
		out <- res{"fifty", got, err}
	}()
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.waiters.Len() == 1 })
	go func() {
		got, err := b.acquire(ctx, never, 5*time.Second, 10)
		out <- res{"ten", got, err}
	}()
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.waiters.Len() == 2 })
	select {
	case r := <-out:
		t.Fatalf("%s granted while an older waiter is queued", r.name)
	case <-time.After(20 * time.Millisecond):
	}
	b.release(60)
	for range 2 {
		if r := <-out; r.err != nil {
			t.Fatalf("%s: %v", r.name, r.err)
		}
	}
	if b.inUse() != 60 {
		t.Fatalf("in use %d, want 60", b.inUse())
	}
	b.release(60)

	// Larger than the whole budget: clamped, so it is admitted alone.
	if got, err := b.acquire(ctx, never, time.Second, 1000); err != nil || got != 100 {
		t.Fatalf("acquire 1000 of 100 = %d, %v; want 100", got, err)
	}
	// A cancelled and a stopped waiter take nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if got, err := b.acquire(cctx, never, time.Second, 1); !errors.Is(err, context.Canceled) || got != 0 {
		t.Fatalf("cancelled acquire = %d, %v", got, err)
	}
	stop := make(chan struct{})
	close(stop)
	if got, err := b.acquire(ctx, stop, time.Second, 1); !errors.Is(err, errBudgetClosed) || got != 0 {
		t.Fatalf("stopped acquire = %d, %v", got, err)
	}
	b.release(100)
	if b.inUse() != 0 {
		t.Fatalf("in use %d at the end", b.inUse())
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// blockedRequests starts n envelope posts whose publishes block until the
// returned release is called; it returns once all n are inside Publish.
func blockedRequests(t *testing.T, url string, pub *fakePublisher, n int) (release func(), results chan response) {
	t.Helper()
	results = make(chan response, n)
	for range n {
		go func() {
			results <- do(t, "POST", url+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth), validEnvelope, false)
		}()
	}
	for range n {
		select {
		case <-pub.calls:
		case <-time.After(5 * time.Second):
			t.Fatal("requests did not reach the publisher")
		}
	}
	var once sync.Once
	release = func() { once.Do(func() { close(pub.block) }) }
	t.Cleanup(release)
	return release, results
}

// TestMaxConcurrentRequests: with limits.max_concurrent_requests requests
// inside the handler, the next one is answered 503 "failed to queue envelope"
// with Retry-After at once, and is not published; once they finish, requests
// are taken again.
func TestMaxConcurrentRequests(t *testing.T) {
	pub := &fakePublisher{block: make(chan struct{}), calls: make(chan struct{}, 16)}
	cfg := testConfig()
	cfg.MaxConcurrentRequests = 2
	ts := startServer(t, New(cfg, pub, nil, testLogger(t)))

	release, results := blockedRequests(t, ts.URL, pub, 2)
	res := do(t, "POST", ts.URL+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth), validEnvelope, false)
	if res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" {
		t.Fatalf("request over the limit: %d (Retry-After %q) %s", res.status, res.header.Get("Retry-After"), res.body)
	}
	if e := res.errorBody(t); e.Detail != "failed to queue envelope" || len(e.Causes) != 1 || e.Causes[0] != "too many concurrent requests" {
		t.Fatalf("answer %+v", e)
	}
	select {
	case <-pub.calls:
		t.Fatal("the request over the limit reached the publisher")
	default:
	}
	release()
	for range 2 {
		if r := <-results; r.status != 200 {
			t.Fatalf("admitted request: %d %s", r.status, r.body)
		}
	}
	go func() { <-pub.calls }()
	if r := do(t, "POST", ts.URL+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth), validEnvelope, false); r.status != 200 {
		t.Fatalf("after the burst: %d %s", r.status, r.body)
	}
	if n := len(pub.messages()); n != 3 {
		t.Fatalf("published %d, want 3", n)
	}
}

// TestMemoryBudget: a body whose charge does not fit the in-flight budget
// waits for room: it is admitted when room frees within AdmissionTimeout,
// answered 503 with Retry-After when it does not, and never read meanwhile.
// Plain bodies are charged up front, chunked and compressed ones as their
// buffer grows; every charge is given back once the answer is written.
func TestMemoryBudget(t *testing.T) {
	// Larger than any pooled buffer, so every request allocates its own of at
	// least len+1 bytes and is charged at least 2(len+1); the budget fits
	// one such request whatever its buffer grew to (at most 2·len), never two.
	att := strings.Repeat("x", maxPooledBuffer+maxPooledBuffer/4)
	body := []byte(`{"event_id":"` + testEventID + `"}` + "\n" +
		`{"type":"attachment","filename":"a.bin","length":` + strconv.Itoa(len(att)) + "}\n" + att + "\n")
	charge := 2 * int64(len(body)+1)

	for _, tc := range []struct {
		name    string
		header  http.Header
		body    []byte
		chunked bool
	}{
		{"content-length", hdr("X-Sentry-Auth", testAuth), body, false},
		{"chunked", hdr("X-Sentry-Auth", testAuth), body, true},
		{"gzip", hdr("X-Sentry-Auth", testAuth, "Content-Encoding", "gzip"), gzipBytes(t, body), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := &fakePublisher{block: make(chan struct{}), calls: make(chan struct{}, 16)}
			cfg := testConfig()
			cfg.MaxEnvelopeSize = 4 << 20
			cfg.MaxInFlightBytes = 2*charge - 2
			cfg.AdmissionTimeout = 100 * time.Millisecond
			s := New(cfg, pub, nil, testLogger(t))
			ts := startServer(t, s)

			first := make(chan response, 1)
			go func() { first <- do(t, "POST", ts.URL+"/api/42/envelope/", tc.header, tc.body, tc.chunked) }()
			select {
			case <-pub.calls:
			case r := <-first:
				t.Fatalf("first request answered before publishing: %d %s", r.status, r.body)
			}
			if used := s.budget.inUse(); used < charge {
				t.Fatalf("a body of %d bytes being published holds %d bytes of budget, want ≥ %d", len(body), used, charge)
			}

			// Over the budget, nothing frees within the timeout: 503.
			res := do(t, "POST", ts.URL+"/api/42/envelope/", tc.header, tc.body, tc.chunked)
			if res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" {
				t.Fatalf("over the budget: %d (Retry-After %q) %s", res.status, res.header.Get("Retry-After"), res.body)
			}
			if e := res.errorBody(t); e.Detail != "failed to queue envelope" || e.Causes[0] != "too many request bytes in flight" {
				t.Fatalf("answer %+v", e)
			}

			// Over the budget, room frees while it waits: admitted.
			s.cfg.AdmissionTimeout = 10 * time.Second
			second := make(chan response, 1)
			go func() { second <- do(t, "POST", ts.URL+"/api/42/envelope/", tc.header, tc.body, tc.chunked) }()
			waitFor(t, func() bool { s.budget.mu.Lock(); defer s.budget.mu.Unlock(); return s.budget.waiters.Len() == 1 })
			close(pub.block)
			for _, ch := range []chan response{first, second} {
				if r := <-ch; r.status != 200 {
					t.Fatalf("admitted request: %d %s", r.status, r.body)
				}
			}
			if n := len(pub.messages()); n != 2 {
				t.Fatalf("published %d, want 2", n)
			}
			if used := s.budget.inUse(); used != 0 {
				t.Fatalf("%d bytes of budget still held after every answer", used)
			}
		})
	}
}

// TestBudgetWaitEndsOnShutdown: a request waiting for budget room when
// shutdown starts is answered 503 at once, not after AdmissionTimeout, so it
// does not hold the shutdown up.
func TestBudgetWaitEndsOnShutdown(t *testing.T) {
	pub := &fakePublisher{block: make(chan struct{}), calls: make(chan struct{}, 16)}
	cfg := testConfig()
	cfg.MaxInFlightBytes = 2 * int64(len(validEnvelope)+1)
	cfg.AdmissionTimeout = time.Minute
	s := New(cfg, pub, nil, testLogger(t))
	ts := startServer(t, s)

	release, results := blockedRequests(t, ts.URL, pub, 1)
	waiting := make(chan response, 1)
	go func() {
		waiting <- do(t, "POST", ts.URL+"/api/42/envelope/", hdr("X-Sentry-Auth", testAuth), validEnvelope, false)
	}()
	waitFor(t, func() bool { s.budget.mu.Lock(); defer s.budget.mu.Unlock(); return s.budget.waiters.Len() == 1 })
	start := time.Now()
	s.StartDraining()
	res := <-waiting
	if res.status != http.StatusServiceUnavailable || time.Since(start) > 10*time.Second {
		t.Fatalf("waiting request at shutdown: %d after %v: %s", res.status, time.Since(start), res.body)
	}
	if e := res.errorBody(t); len(e.Causes) != 1 || e.Causes[0] != "relay is shutting down" {
		t.Fatalf("answer %+v", e)
	}
	release()
	if r := <-results; r.status != 200 {
		t.Fatalf("in-flight request: %d %s", r.status, r.body)
	}
	waitFor(t, func() bool { return s.inflight.Load() == 0 })
}
