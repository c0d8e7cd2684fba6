package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// pool is the load on one target: conns loops, each with its own keep-alive
// connection and one request in flight, sending only while the pool is open.
// A request counts when it completes while the pool is measured; the
// measured time is the sum of the windows it was measured in. Closing a pool
// waits until its requests in flight are answered, so that two pools driven
// in turn never overlap (drivePair).
type pool struct {
	url, auth string
	conns     int
	bodies    [][]byte
	tr        *http.Transport
	client    *http.Client

	gateMu sync.Mutex
	open   bool
	opened chan struct{} // closed while open

	stop      atomic.Bool
	measuring atomic.Bool
	inflight  atomic.Int64
	wg        sync.WaitGroup

	mu       sync.Mutex // guards what the loops merge when they end
	lats     []time.Duration
	ok, bad  int64
	byStatus map[int]int64
	firstErr error

	// Owned by the driver.
	measured time.Duration
	cpu      int64 // µs of the target's CPU over the measured windows (pid > 0)
	pid      int
}

// newPool probes url once (a wrong URL fails at once, not after -d) and
// starts the loops, closed.
func newPool(ctx context.Context, url string, pid int, o options, bodies [][]byte) (*pool, error) {
	p := &pool{
		url:    url,
		auth:   "Sentry sentry_key=" + o.key + ", sentry_version=7, sentry_client=relay-load/1.0",
		conns:  o.conns,
		bodies: bodies,
		tr: &http.Transport{
			MaxIdleConns:        o.conns,
			MaxIdleConnsPerHost: o.conns,
			MaxConnsPerHost:     o.conns,
			DisableCompression:  true,
			IdleConnTimeout:     30 * time.Second,
		},
		opened:   make(chan struct{}),
		byStatus: map[int]int64{},
		pid:      pid,
	}
	p.client = &http.Client{Transport: p.tr, Timeout: 30 * time.Second}
	if st, err := send(ctx, p.client, url, p.auth, bodies[0]); err != nil {
		p.tr.CloseIdleConnections()
		return nil, err
	} else if st != http.StatusOK {
		p.tr.CloseIdleConnections()
		return nil, fmt.Errorf("probe request answered %d", st)
	}
	for i := 0; i < o.conns; i++ {
		p.wg.Add(1)
		go p.loop(ctx, i)
	}
	return p, nil
}

func (p *pool) loop(ctx context.Context, i int) {
	defer p.wg.Done()
	local := make([]time.Duration, 0, 1<<14)
	var lok, lbad int64
	lstatus := map[int]int64{}
	var lerr error
	for n := i; ; n += p.conns {
		p.waitOpen()
		if p.stop.Load() {
			break
		}
		// Counted in flight before the gate is checked again: close sees
		// either this request in flight or a closed gate here, never a
		// request sent after it found none in flight.
		p.inflight.Add(1)
		if !p.isOpen() {
			p.inflight.Add(-1)
			continue
		}
		t0 := time.Now()
		st, err := send(ctx, p.client, p.url, p.auth, p.bodies[n%len(p.bodies)])
		d := time.Since(t0)
		if p.measuring.Load() {
			switch {
			case err != nil:
				lbad++
				if lerr == nil {
					lerr = err
				}
			case st != http.StatusOK:
				lbad++
				lstatus[st]++
			default:
				lok++
				local = append(local, d)
			}
		}
		p.inflight.Add(-1)
	}
	p.mu.Lock()
	p.lats = append(p.lats, local...)
	p.ok += lok
	p.bad += lbad
	for k, v := range lstatus {
		p.byStatus[k] += v
	}
	if p.firstErr == nil {
		p.firstErr = lerr
	}
	p.mu.Unlock()
}

func (p *pool) waitOpen() {
	p.gateMu.Lock()
	ch := p.opened
	p.gateMu.Unlock()
	<-ch
}

func (p *pool) isOpen() bool {
	p.gateMu.Lock()
	defer p.gateMu.Unlock()
	return p.open
}

func (p *pool) setOpen(open bool) {
	p.gateMu.Lock()
	defer p.gateMu.Unlock()
	switch {
	case open && !p.open:
		close(p.opened)
	case !open && p.open:
		p.opened = make(chan struct{})
	}
	p.open = open
}

// close stops sending and waits until every request in flight was answered.
func (p *pool) close() {
	p.setOpen(false)
	for p.inflight.Load() > 0 {
		time.Sleep(100 * time.Microsecond)
	}
}

// run sends unmeasured for d (a warm-up), then closes.
func (p *pool) run(d time.Duration) {
	p.setOpen(true)
	time.Sleep(d)
	p.close()
}

// window sends for d, measured, then closes: the target's CPU is read at the
// window's start (nothing in flight) and end.
func (p *pool) window(d time.Duration) error {
	var cpu0 int64
	if p.pid > 0 {
		var err error
		if cpu0, err = procCPU(p.pid); err != nil {
			return err
		}
	}
	p.measuring.Store(true)
	start := time.Now()
	p.setOpen(true)
	time.Sleep(d)
	p.measuring.Store(false)
	p.measured += time.Since(start)
	if p.pid > 0 {
		cpu1, err := procCPU(p.pid)
		if err != nil {
			return err
		}
		p.cpu += cpu1 - cpu0
	}
	p.close()
	return nil
}

// end stops the loops and releases the connections.
func (p *pool) end() {
	p.stop.Store(true)
	p.setOpen(true) // wakes the loops, which then see stop
	p.wg.Wait()
	p.tr.CloseIdleConnections()
}

// result summarises the measured windows; envelopes, when > 0, replaces the
// answered requests as the divisor of the CPU figure.
func (p *pool) result(envelopes int64) (*result, error) {
	if p.ok == 0 {
		return nil, fmt.Errorf("no request succeeded (first error: %v, statuses: %v)", p.firstErr, p.byStatus)
	}
	if envelopes <= 0 {
		envelopes = p.ok
	}
	var cpuPer float64
	if p.pid > 0 {
		cpuPer = float64(p.cpu) / float64(envelopes)
	}
	slices.Sort(p.lats)
	return &result{
		cpuPerEnvelope: cpuPer,
		rps:            float64(p.ok) / p.measured.Seconds(),
		p50:            p.lats[len(p.lats)/2],
		p99:            p.lats[len(p.lats)*99/100],
		max:            p.lats[len(p.lats)-1],
		ok:             p.ok,
		errors:         p.bad,
		byStatus:       p.byStatus,
	}, nil
}

// drive loads one target for the warm-up and then the measured duration.
// With o.countURL the CPU is divided by the envelopes the upstream received,
// counted until it went quiet (the relay keeps forwarding after the load
// stopped; its CPU for what it accepted counts until then).
func drive(ctx context.Context, url string, o options, bodies [][]byte) (*result, error) {
	p, err := newPool(ctx, url, o.pid, o, bodies)
	if err != nil {
		return nil, err
	}
	p.run(o.warmup)
	var count0, countEnd, envelopes int64
	if o.countURL != "" {
		if count0, err = fetchCount(ctx, o.countURL); err != nil {
			p.end()
			return nil, err
		}
	}
	cpu0 := int64(0)
	if o.pid > 0 {
		if cpu0, err = procCPU(o.pid); err != nil {
			p.end()
			return nil, err
		}
	}
	p.measuring.Store(true)
	start := time.Now()
	p.setOpen(true)
	time.Sleep(o.duration)
	p.measuring.Store(false)
	p.measured = time.Since(start)
	if o.countURL != "" {
		if countEnd, err = fetchCount(ctx, o.countURL); err != nil {
			p.end()
			return nil, err
		}
	}
	p.end()
	var deliveredRPS float64
	if o.countURL != "" {
		deliveredRPS = float64(countEnd-count0) / p.measured.Seconds()
		n, err := settleCount(ctx, o.countURL, countEnd)
		if err != nil {
			return nil, err
		}
		envelopes = n - count0
	}
	if o.pid > 0 {
		cpu1, err := procCPU(o.pid)
		if err != nil {
			return nil, err
		}
		p.cpu = cpu1 - cpu0
	}
	r, err := p.result(envelopes)
	if err != nil {
		return nil, err
	}
	r.deliveredRPS = deliveredRPS
	return r, nil
}

// drivePair loads two targets in turn, never both at once, in windows of
// o.slice until each was measured for o.duration, in the order ABBA ABBA…
// (a drift of the machine over the run then weighs on both alike). Why:
// this machine's speed moves within seconds — one-second windows of the same
// two targets, back to back, read 0.54–0.95 of each other — so a ratio from
// two runs a minute apart measures the machine as much as the targets. Each
// target is warmed up alone first. A window's requests still in flight at
// its end are answered but not counted (at 64 connections, ~3 ms of a 1 s
// window, alike for both).
func drivePair(ctx context.Context, urls [2]string, pids [2]int, o options, bodies [][]byte) ([2]*result, error) {
	var res [2]*result
	var ps [2]*pool
	for i := range ps {
		p, err := newPool(ctx, urls[i], pids[i], o, bodies)
		if err != nil {
			if i == 1 {
				ps[0].end()
			}
			return res, fmt.Errorf("%s: %w", urls[i], err)
		}
		ps[i] = p
	}
	ended := false
	endAll := func() {
		if !ended {
			ended = true
			for _, p := range ps {
				p.end() // merges the loops' counts into p
			}
		}
	}
	defer endAll()
	for _, p := range ps {
		p.run(o.warmup)
	}
	n := max(1, int(o.duration/o.slice))
	w := o.duration / time.Duration(n)
	for i := 0; i < n; i++ {
		order := [2]int{0, 1}
		if i%2 == 1 {
			order = [2]int{1, 0}
		}
		for _, k := range order {
			if err := ps[k].window(w); err != nil {
				return res, err
			}
		}
	}
	endAll()
	for i, p := range ps {
		r, err := p.result(0)
		if err != nil {
			return res, fmt.Errorf("%s: %w", urls[i], err)
		}
		res[i] = r
	}
	return res, nil
}
