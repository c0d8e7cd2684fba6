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
	pid      int
	countURL string        // the upstream's envelope counter, when the target forwards
	quiet    time.Duration // with countURL: how long the counter must stand still after a window
	measured time.Duration // the windows' load time
	cpu      int64         // µs of the target's CPU over the windows (pid > 0)
	// With countURL: envelopes the upstream received from each window's
	// start until it went quiet after it, and that time.
	delivered   int64
	deliverTime time.Duration
}

// newPool probes url once (a wrong URL fails at once, not after -d) and
// starts the loops, closed.
func newPool(ctx context.Context, url string, pid int, countURL string, o options, bodies [][]byte) (*pool, error) {
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
		countURL: countURL,
		quiet:    300 * time.Millisecond,
	}
	p.client = &http.Client{Transport: p.tr, Timeout: 30 * time.Second}
	if st, err := send(ctx, p.client, url, p.auth, bodies[0]); err != nil {
		p.tr.CloseIdleConnections()
		return nil, err
	} else if st != http.StatusOK {
		p.tr.CloseIdleConnections()
		return nil, fmt.Errorf("probe request answered %d", st)
	}
	if err := p.settle(ctx); err != nil {
		p.tr.CloseIdleConnections()
		return nil, err
	}
	for i := 0; i < o.conns; i++ {
		p.wg.Add(1)
		go p.loop(ctx, i)
	}
	return p, nil
}

// settle waits, when the target forwards, until its upstream's counter stood
// still for p.quiet: nothing of what it accepted is left to forward.
func (p *pool) settle(ctx context.Context) error {
	if p.countURL == "" {
		return nil
	}
	n, err := fetchCount(ctx, p.countURL)
	if err != nil {
		return err
	}
	_, _, err = settleCount(ctx, p.countURL, n, time.Now(), p.quiet)
	return err
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

// run sends unmeasured for d (a warm-up), then closes and settles.
func (p *pool) run(ctx context.Context, d time.Duration) error {
	p.setOpen(true)
	time.Sleep(d)
	p.close()
	return p.settle(ctx)
}

// window sends for d, measured, then closes. The target's CPU is read at the
// window's start (nothing in flight) and at its end — or, when the target
// forwards (countURL), once the upstream's counter stood still for p.quiet
// after the load: a relay's work for what it accepted ends when its backlog
// was forwarded, and that time counts to its delivery rate.
func (p *pool) window(ctx context.Context, d time.Duration) error {
	var cpu0, count0 int64
	var err error
	if p.countURL != "" {
		if count0, err = fetchCount(ctx, p.countURL); err != nil {
			return err
		}
	}
	if p.pid > 0 {
		if cpu0, err = procCPU(p.pid); err != nil {
			return err
		}
	}
	p.measuring.Store(true)
	start := time.Now()
	p.setOpen(true)
	time.Sleep(d)
	p.measuring.Store(false)
	stopped := time.Now()
	p.measured += stopped.Sub(start)
	readCPU := func() error {
		if p.pid == 0 {
			return nil
		}
		cpu1, err := procCPU(p.pid)
		p.cpu += cpu1 - cpu0
		return err
	}
	if p.countURL == "" {
		if err := readCPU(); err != nil {
			return err
		}
		p.close()
		return nil
	}
	countStop, err := fetchCount(ctx, p.countURL)
	if err != nil {
		return err
	}
	p.close()
	n, last, err := settleCount(ctx, p.countURL, countStop, stopped, p.quiet)
	if err != nil {
		return err
	}
	p.delivered += n - count0
	p.deliverTime += last.Sub(start)
	return readCPU()
}

// end stops the loops and releases the connections.
func (p *pool) end() {
	p.stop.Store(true)
	p.setOpen(true) // wakes the loops, which then see stop
	p.wg.Wait()
	p.tr.CloseIdleConnections()
}

// result summarises the measured windows. The CPU figure is per envelope
// delivered when the target forwards (countURL), per answered request
// otherwise.
func (p *pool) result() (*result, error) {
	if p.ok == 0 {
		return nil, fmt.Errorf("no request succeeded (first error: %v, statuses: %v)", p.firstErr, p.byStatus)
	}
	envelopes := p.ok
	var deliveredRPS float64
	if p.countURL != "" {
		envelopes = p.delivered
		if p.deliverTime > 0 {
			deliveredRPS = float64(p.delivered) / p.deliverTime.Seconds()
		}
	}
	var cpuPer float64
	if p.pid > 0 && envelopes > 0 {
		cpuPer = float64(p.cpu) / float64(envelopes)
	}
	slices.Sort(p.lats)
	return &result{
		cpuPerEnvelope: cpuPer,
		deliveredRPS:   deliveredRPS,
		rps:            float64(p.ok) / p.measured.Seconds(),
		p50:            p.lats[len(p.lats)/2],
		p99:            p.lats[len(p.lats)*99/100],
		max:            p.lats[len(p.lats)-1],
		ok:             p.ok,
		errors:         p.bad,
		byStatus:       p.byStatus,
	}, nil
}

// drive loads one target for the warm-up and then one measured window of
// o.duration. With o.countURL the CPU is divided by the envelopes the
// upstream received until it went quiet (the relay keeps forwarding after
// the load stopped), and delivered/s is over that time.
func drive(ctx context.Context, url string, o options, bodies [][]byte) (*result, error) {
	p, err := newPool(ctx, url, o.pid, o.countURL, o, bodies)
	if err != nil {
		return nil, err
	}
	p.quiet = 500 * time.Millisecond
	if err = p.run(ctx, o.warmup); err == nil {
		err = p.window(ctx, o.duration)
	}
	p.end() // merges the loops' counts into p
	if err != nil {
		return nil, err
	}
	return p.result()
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
func drivePair(ctx context.Context, urls [2]string, pids [2]int, countURLs [2]string, o options, bodies [][]byte) ([2]*result, error) {
	var res [2]*result
	var ps [2]*pool
	for i := range ps {
		p, err := newPool(ctx, urls[i], pids[i], countURLs[i], o, bodies)
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
		if err := p.run(ctx, o.warmup); err != nil {
			return res, err
		}
	}
	n := max(1, int(o.duration/o.slice))
	w := o.duration / time.Duration(n)
	for i := 0; i < n; i++ {
		order := [2]int{0, 1}
		if i%2 == 1 {
			order = [2]int{1, 0}
		}
		for _, k := range order {
			if err := ps[k].window(ctx, w); err != nil {
				return res, err
			}
		}
	}
	endAll()
	for i, p := range ps {
		r, err := p.result()
		if err != nil {
			return res, fmt.Errorf("%s: %w", urls[i], err)
		}
		res[i] = r
	}
	return res, nil
}
