package stream

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"
)

// lagProxy is a TCP proxy on 127.0.0.1 that delays every byte a client
// sends to the server by lag (order kept); the server's answers pass at
// once. It stands in for a server that is slow to take a request: far away,
// or busy.
type lagProxy struct {
	ln     net.Listener
	target string
	lag    time.Duration
	stop   chan struct{}
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

func newLagProxy(t *testing.T, target string, lag time.Duration) *lagProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lagProxy{ln: ln, target: target, lag: lag, stop: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *lagProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *lagProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(c, s)
			_ = c.Close()
		}()
		go func() {
			defer p.wg.Done()
			p.lagged(s, c)
			_ = s.Close()
		}()
	}
}

// lagged copies src to dst, each chunk lag after it was read.
func (p *lagProxy) lagged(dst, src net.Conn) {
	type chunk struct {
		at time.Time
		b  []byte
	}
	ch := make(chan chunk, 4096)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(ch)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case ch <- chunk{time.Now().Add(p.lag), append([]byte(nil), buf[:n]...)}:
				case <-p.stop:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		select {
		case <-time.After(time.Until(c.at)):
		case <-p.stop:
			return
		}
		if _, err := dst.Write(c.b); err != nil {
			return
		}
	}
}

func (p *lagProxy) close() {
	close(p.stop)
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// A message published while a worker's waiting pull request is live on the
// server reaches a worker long before AckWait, even when the request reached
// the server late. With a client-side deadline on the wait (the cause of
// this test), the worker stopped listening FetchWait after it sent the
// request, while the server — which got it lag later — kept the request
// live: the message was handed to an inbox nobody read and stayed un-acked,
// out of every worker's reach, for a whole AckWait.
//
// Deterministic: the client→server lag (600 ms) is longer than FetchWait
// (400 ms), so the request reaches the server only after the old code had
// given up on it; the test publishes once the server shows the request
// waiting, which leaves it 400 ms of its life either way.
func TestFetchNeverAbandonsALivePull(t *testing.T) {
	cfg := testConfig(t)
	cfg.Listen = "127.0.0.1:0"
	cfg.AckWait = 30 * time.Second // the default: a stranded message would stay away this long
	srv := openTest(t, cfg)
	local, err := srv.Consumer(ctxT(t, 10*time.Second), "w")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	const lag, fetchWait = 600 * time.Millisecond, 400 * time.Millisecond
	proxy := newLagProxy(t, u.Host, lag)
	remote := openTest(t, Config{URL: proxy.url(), FetchWait: fetchWait, AckWait: cfg.AckWait})
	far, err := remote.Consumer(ctxT(t, 30*time.Second), "w")
	if err != nil {
		t.Fatal(err)
	}

	// The stream is empty: the far worker's Fetch sends a waiting pull.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		ds  []*Delivery
		err error
	}
	res := make(chan result, 1)
	go func() {
		ds, err := far.Fetch(ctx, 1)
		res <- result{ds, err}
	}()
	cons, err := srv.js.Consumer(ctxT(t, 5*time.Second), srv.cfg.Stream, "w")
	if err != nil {
		t.Fatal(err)
	}
	registered := false
	for deadline := time.Now().Add(10 * time.Second); !registered && time.Now().Before(deadline); {
		info, err := cons.Info(ctxT(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		registered = info.NumWaiting > 0
	}
	if !registered {
		t.Fatal("the far worker's pull request never reached the server")
	}
	publishN(t, srv, 0, 1)

	// Whoever gets it — the far worker's pending Fetch, or a later Fetch —
	// must get it within seconds, not after AckWait.
	var got []*Delivery
	select {
	case r := <-res:
		if r.err != nil {
			t.Fatalf("far Fetch: %v", r.err)
		}
		got = r.ds
	case <-time.After(10 * time.Second):
		t.Fatal("far Fetch did not return within 10s")
	}
	if len(got) == 0 {
		got = fetchAll(t, local, 1, 5*time.Second)
	}
	if len(got) != 1 {
		info, _ := cons.Info(ctxT(t, 5*time.Second))
		var pending int
		if info != nil {
			pending = info.NumAckPending
		}
		t.Fatalf("the message reached no worker within 5s (ack pending %d): it was handed to a pull the far worker had abandoned, "+
			"and comes back only after AckWait (%s)", pending, cfg.AckWait)
	}
	ackAll(t, got)
	if n := streamMsgs(t, srv); n != 0 {
		t.Fatalf("stream holds %d messages after the ack, want 0", n)
	}
}

// Fetch returns promptly when its ctx ends while its pull waits on the
// server, even though the wait itself ends only on the server's answer.
func TestFetchCancelledWhileWaiting(t *testing.T) {
	cfg := testConfig(t)
	cfg.FetchWait = time.Minute // the server's answer would take this long
	c := openTest(t, cfg)
	k, err := c.Consumer(ctxT(t, 10*time.Second), "w")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := k.Fetch(ctx, 4)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // let the pull start waiting
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Fetch after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Fetch did not return within 10s of its ctx ending")
	}
}
