package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/relayhq/relay/internal/fakesentry"
)

// soakFor is how long the soak test runs its load. CI runs the default;
// longer runs pass e.g. -soak=30m (with a go test -timeout above it).
var soakFor = flag.Duration("soak", 5*time.Minute, "how long TestSoak keeps the load on (e.g. 30m)")

// soakPhase is one disturbance the soak cycles through while the load runs.
type soakPhase struct {
	name string
	run  func(ctx context.Context, s *soak, d time.Duration)
}

// soak is the state of one soak run: the relay process of the moment, the
// fake Sentry, and the peaks the monitor saw.
type soak struct {
	t    *testing.T
	up   *fakesentry.Server
	dir  string
	port int

	mu sync.Mutex
	p  *relayProc

	kills, restarts            atomic.Int64
	peakRSS                    atomic.Int64 // bytes, VmHWM of any relay process
	peakSpool, peakSpoolRecs   atomic.Int64 // relay_spool_disk_bytes, relay_spool_records
	peakStream                 atomic.Int64 // relay_stream_messages
	sendErrors, refused, acked atomic.Int64
}

func (s *soak) proc() *relayProc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

// restart SIGKILLs the relay and starts a new process on the same
// directory and port.
func (s *soak) restart() {
	s.mu.Lock()
	old := s.p
	s.mu.Unlock()
	s.notePeak(old)
	old.kill9()
	s.kills.Add(1)
	p := launch(s.t, s.dir, s.port)
	if err := p.waitReady(2 * time.Minute); err != nil {
		s.t.Errorf("restart: %v\n%s", err, p.logs())
	}
	s.restarts.Add(1)
	s.mu.Lock()
	s.p = p
	s.mu.Unlock()
}

// vmHWM reads the peak resident set size of a process from /proc.
func vmHWM(pid int) (int64, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

func (s *soak) notePeak(p *relayProc) {
	if p == nil || p.exited() {
		return
	}
	if hwm, ok := vmHWM(p.cmd.Process.Pid); ok {
		storeMax(&s.peakRSS, hwm)
	}
}

// monitor samples the relay's peak RSS and its spool and stream sizes
// (from /metrics) until ctx ends.
func (s *soak) monitor(ctx context.Context) {
	c := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p := s.proc()
		s.notePeak(p)
		resp, err := c.Get(p.url() + "/metrics")
		if err != nil {
			continue // being restarted
		}
		e, err := parseExposition(resp.Body)
		resp.Body.Close()
		if err != nil {
			s.t.Errorf("soak: /metrics: %v", err)
			continue
		}
		storeMax(&s.peakSpool, int64(e.val("relay_spool_disk_bytes")))
		storeMax(&s.peakSpoolRecs, int64(e.val("relay_spool_records")))
		storeMax(&s.peakStream, int64(e.val("relay_stream_messages")))
	}
}

// ackRecorder is the SDK's HTTP transport: it records the event id of each
// envelope the relay acknowledged with 200 in the ledger.
type ackRecorder struct {
	next http.RoundTripper
	l    *ledger
	s    *soak
}

func (a *ackRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := a.next.RoundTrip(r)
	if err != nil {
		a.s.sendErrors.Add(1)
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if err != nil {
		a.s.sendErrors.Add(1)
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if resp.StatusCode != http.StatusOK {
		a.s.refused.Add(1)
		return resp, nil
	}
	var out struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &out) == nil && out.ID != "" {
		a.l.add(out.ID)
		a.s.acked.Add(1)
	}
	return resp, nil
}

// load runs one real SDK client (sentry-go, synchronous transport) sending
// an event every interval until ctx ends.
func (s *soak) load(ctx context.Context, l *ledger, n int, interval time.Duration) {
	client, err := sentry.NewClient(sentry.ClientOptions{
		Dsn:           fmt.Sprintf("http://%s@127.0.0.1:%d/%s", testKey, s.port, testProject),
		Transport:     sentry.NewHTTPSyncTransport(),
		HTTPTransport: &ackRecorder{next: &http.Transport{MaxIdleConnsPerHost: 2}, l: l, s: s},
	})
	if err != nil {
		s.t.Errorf("sentry client: %v", err)
		return
	}
	hub := sentry.NewHub(client, sentry.NewScope())
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		hub.CaptureMessage(fmt.Sprintf("soak client %d event %d", n, i))
	}
}

var soakPhases = []soakPhase{
	{"steady", func(ctx context.Context, s *soak, d time.Duration) { sleepCtx(ctx, d) }},
	{"upstream down, then back", func(ctx context.Context, s *soak, d time.Duration) {
		s.up.Down()
		sleepCtx(ctx, d*2/3)
		if err := s.up.Up(); err != nil {
			s.t.Errorf("fake sentry up: %v", err)
		}
		sleepCtx(ctx, d/3)
	}},
	{"slow upstream (1.5s per request)", func(ctx context.Context, s *soak, d time.Duration) {
		s.up.SetDelay(1500 * time.Millisecond)
		sleepCtx(ctx, d)
		s.up.SetDelay(0)
	}},
	{"relay SIGKILLed and restarted, twice", func(ctx context.Context, s *soak, d time.Duration) {
		sleepCtx(ctx, d/3)
		s.restart()
		sleepCtx(ctx, d/3)
		s.restart()
		sleepCtx(ctx, d/3)
	}},
	{"upstream down, relay SIGKILLed with a full spool, upstream back", func(ctx context.Context, s *soak, d time.Duration) {
		s.up.Down()
		sleepCtx(ctx, d/2)
		s.restart()
		sleepCtx(ctx, d/4)
		if err := s.up.Up(); err != nil {
			s.t.Errorf("fake sentry up: %v", err)
		}
		sleepCtx(ctx, d/4)
	}},
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// TestSoak keeps constant load from real SDK clients on the relay for -soak
// (5 minutes by default) while it cycles through an upstream outage, a slow
// upstream, SIGKILLs and restarts, and a SIGKILL during an outage. Ledger
// check: every envelope the relay acknowledged reaches the fake Sentry. It
// logs the duplicates, the peak RSS of the relay processes (VmHWM) and the
// peak spool size. No speed is asserted: the box may be loaded.
func TestSoak(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	s := &soak{t: t, up: up, dir: t.TempDir()}
	s.p = startRelay(t, s.dir, relayConfig{upstream: up.URL(), extra: "jetstream:\n  ack_wait: 5s\n"})
	s.port = mustPort(t, s.p.addr)

	phaseLen := time.Minute
	if *soakFor < time.Duration(len(soakPhases))*phaseLen {
		phaseLen = *soakFor / time.Duration(len(soakPhases))
	}
	start := time.Now()
	loadCtx, stopLoad := context.WithCancel(context.Background())
	monCtx, stopMon := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	l := &ledger{}
	const clients = 4
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.load(loadCtx, l, i, 50*time.Millisecond) // 4 × 20/s
		}()
	}
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		s.monitor(monCtx)
	}()

	for i := 0; time.Since(start) < *soakFor; i++ {
		ph := soakPhases[i%len(soakPhases)]
		d := min(phaseLen, *soakFor-time.Since(start))
		t.Logf("soak %s: phase %q for %s (acked %d so far)", time.Since(start).Round(time.Second), ph.name, d.Round(time.Second), s.acked.Load())
		ph.run(loadCtx, s, d)
		if t.Failed() {
			break
		}
	}
	stopLoad()
	wg.Wait()
	up.SetDelay(0)
	if up.IsDown() {
		if err := up.Up(); err != nil {
			t.Fatal(err)
		}
	}
	acked := l.ids()
	t.Logf("soak: load stopped after %s; %d acknowledged, %d refused, %d send errors; waiting for delivery",
		time.Since(start).Round(time.Second), len(acked), s.refused.Load(), s.sendErrors.Load())
	waitDelivered(t, up.EventIDs, acked, 5*time.Minute)
	stopMon()
	<-monDone
	s.notePeak(s.proc())

	got := up.EventIDs()
	t.Logf("soak figures: duration %s, clients %d, acknowledged %d, lost 0, duplicates %d, SIGKILLs %d, "+
		"peak RSS (VmHWM, any relay process) %.1f MiB, peak spool %d records / %.1f MiB on disk, peak stream depth %d",
		soakFor.String(), clients, len(acked), duplicates(got), s.kills.Load(),
		float64(s.peakRSS.Load())/(1<<20), s.peakSpoolRecs.Load(), float64(s.peakSpool.Load())/(1<<20), s.peakStream.Load())
	if len(acked) == 0 {
		t.Fatal("the relay acknowledged nothing: the soak tested nothing")
	}
	if s.peakSpoolRecs.Load() == 0 {
		t.Error("nothing was ever spooled: the outages did not reach the spool")
	}
	if s.kills.Load() == 0 {
		t.Error("the relay was never killed")
	}
}
