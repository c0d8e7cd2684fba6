package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
)

// loadFor sends events from n goroutines until stop is closed, recording every
// 200 in l. Transport errors (the relay was killed) are expected and retried
// after a pause; they are not in the ledger because nothing was promised.
func loadFor(ctx context.Context, base func() string, n int, l *ledger, stop <-chan struct{}, sent *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				if st := sendAcked(ctx, base(), l, fmt.Sprintf("load %d/%d", i, seq)); st != http.StatusOK {
					time.Sleep(20 * time.Millisecond)
				}
				sent.Add(1)
			}
		}(i)
	}
	return &wg
}

// (a) kill -9 of the relay mid-load, restart: every acknowledged id arrives.
func TestKill9MidLoadLosesNothing(t *testing.T) {
	kill9MidLoad(t, kill9Load{conns: 16, perRound: 300, tail: 200, roundWait: 60 * time.Second,
		deliverWait: 90 * time.Second, timeout: 3 * time.Minute}, nil)
}

// kill9Load shapes kill9MidLoad: conns SDK connections; each of the two
// rounds waits (up to roundWait) for perRound more acknowledgements before
// the kill; after the last restart, tail more.
type kill9Load struct {
	conns, perRound, tail           int
	roundWait, deliverWait, timeout time.Duration
}

// kill9MidLoad drives load into a relay, kills it with SIGKILL twice
// mid-load, restarting it on the same store and port, and requires every
// event that got a 200 to reach the upstream. check, when set, looks at the
// last process before it is stopped.
func kill9MidLoad(t *testing.T, k kill9Load, check func(*relayProc)) {
	t.Helper()
	up, dir, rc, p := startRestartable(t)
	ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
	defer cancel()
	var l ledger
	var sent atomic.Int64
	var cur atomic.Pointer[relayProc]
	cur.Store(p)
	stop := make(chan struct{})
	wg := loadFor(ctx, func() string { return cur.Load().url() }, k.conns, &l, stop, &sent)
	for round := range 2 {
		waitAcked(t, &l, k.perRound*(round+1), k.roundWait)
		cur.Load().kill9()
		cur.Store(startRelay(t, dir, rc))
	}
	waitAcked(t, &l, len(l.ids())+k.tail, k.roundWait)
	close(stop)
	wg.Wait()
	if check != nil {
		check(cur.Load())
	}

	acked := l.ids()
	waitDelivered(t, up.EventIDs, acked, k.deliverWait)
	t.Logf("acked %d events across two kill -9s under %d connections; upstream got all of them, %d duplicates",
		len(acked), k.conns, duplicates(up.EventIDs()))
	if err := cur.Load().term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// (b) upstream down (connection refused, then 503s) then back: everything
// drains, oldest first.
func TestUpstreamOutageThenRecoveryDrainsInOrder(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	defer up.Close()
	p := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL()})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var l ledger
	up.Down()
	// Sequential sends so the order of acknowledgement is the order of age.
	for i := 0; i < 150; i++ {
		if st := sendAcked(ctx, p.url(), &l, fmt.Sprintf("outage-refused %d", i)); st != http.StatusOK {
			t.Fatalf("ingest answered %d during the outage; it must keep accepting", st)
		}
	}
	// Past the grace period (1 s) the workers spool; then the upstream answers 503s.
	time.Sleep(2 * time.Second)
	if err := up.Up(); err != nil {
		t.Fatal(err)
	}
	up.SetMode(fakesentry.Failing(http.StatusServiceUnavailable, 0))
	for i := 0; i < 150; i++ {
		if st := sendAcked(ctx, p.url(), &l, fmt.Sprintf("outage-503 %d", i)); st != http.StatusOK {
			t.Fatalf("ingest answered %d during the 503 outage", st)
		}
	}
	time.Sleep(2 * time.Second)
	if n := up.Count(); n != 0 {
		t.Fatalf("the upstream accepted %d envelopes while failing", n)
	}
	up.SetMode(fakesentry.Normal())
	acked := l.ids()
	waitDelivered(t, up.EventIDs, acked, 90*time.Second)

	// Oldest first: the spool drains in FIFO order. Concurrent workers and
	// redeliveries may reorder a little, so we measure inversions rather
	// than demand a perfect sequence.
	pos := map[string]int{}
	for i, id := range acked {
		pos[id] = i
	}
	var order []int
	for _, r := range up.Received() {
		if i, ok := pos[r.EventID]; ok {
			order = append(order, i)
		}
	}
	firstHalf := 0
	for _, i := range order[:len(order)/2] {
		if i < len(acked)/2 {
			firstHalf++
		}
	}
	if firstHalf < len(order)/2*8/10 {
		t.Fatalf("drain is not oldest first: only %d of the first %d delivered were among the oldest half", firstHalf, len(order)/2)
	}
	if err := p.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// (c) kill -9 while envelopes sit in the spool: they drain after restart.
func TestKill9WithSpooledEnvelopesDrainsAfterRestart(t *testing.T) {
	up, dir, rc, p := startRestartable(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	up.Down()
	var l ledger
	for i := 0; i < 200; i++ {
		if st := sendAcked(ctx, p.url(), &l, fmt.Sprintf("spooled %d", i)); st != http.StatusOK {
			t.Fatalf("ingest answered %d", st)
		}
	}
	// Wait until the spool holds records (segment files with data), then kill.
	waitSpoolNonEmpty(t, filepath.Join(dir, "spool.db"), 30*time.Second)
	time.Sleep(3 * time.Second) // let more of the stream move into the spool
	p.kill9()

	if err := up.Up(); err != nil {
		t.Fatal(err)
	}
	p2 := startRelay(t, dir, rc)
	waitDelivered(t, up.EventIDs, l.ids(), 90*time.Second)
	if err := p2.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// (d) upstream answering 429 with Retry-After: nothing is sent again before
// the time is up.
func TestRateLimitedUpstreamIsNotRetriedEarly(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	defer up.Close()
	p := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL()})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	up.SetMode(fakesentry.RateLimited("3", "", 1))
	var l ledger
	if st := sendAcked(ctx, p.url(), &l, "rate limited"); st != http.StatusOK {
		t.Fatalf("ingest answered %d", st)
	}
	waitDelivered(t, up.EventIDs, l.ids(), 30*time.Second)

	var first429 time.Time
	var retried time.Time
	for _, r := range up.Requests() {
		if r.Path == "/api/42/envelope/" {
			if r.Status == http.StatusTooManyRequests && first429.IsZero() {
				first429 = r.At
			} else if r.Status == http.StatusOK && retried.IsZero() && !first429.IsZero() {
				retried = r.At
			}
		}
	}
	if first429.IsZero() || retried.IsZero() {
		t.Fatalf("expected a 429 then a successful retry, got %+v", up.Requests())
	}
	if gap := retried.Sub(first429); gap < 3*time.Second {
		t.Fatalf("retried %s after a 429 with Retry-After: 3", gap)
	}
	if err := p.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// (e) a damaged spool or JetStream store at start-up: the relay recovers what
// it can or refuses to start with a clear message; it never hangs or starts
// empty without saying so.
func TestDamagedStoresAtStartup(t *testing.T) {
	// lossless: the damage destroys no data, so every acked event must arrive.
	// Otherwise the relay may lose what the damage destroyed, but must say so.
	cases := []struct {
		name     string
		lossless bool
		damage   func(t *testing.T, dir string)
	}{
		{"junk file in spool dir", true, func(t *testing.T, dir string) {
			writeJunk(t, filepath.Join(dir, "spool.db", "junk.bin"), 4096)
		}},
		{"truncated spool segment", false, func(t *testing.T, dir string) {
			truncateLargest(t, filepath.Join(dir, "spool.db"))
		}},
		{"junk file in jetstream store", true, func(t *testing.T, dir string) {
			writeJunk(t, filepath.Join(dir, "jetstream", "jetstream", "$G", "streams", "RELAY_ENVELOPES", "msgs", "junk.blk"), 4096)
		}},
		{"truncated jetstream block", false, func(t *testing.T, dir string) {
			truncateLargest(t, filepath.Join(dir, "jetstream"))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up, dir, rc, p := startRestartable(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// Put data in both stores: spool (upstream down) and stream.
			up.Down()
			var l ledger
			for i := 0; i < 100; i++ {
				sendAcked(ctx, p.url(), &l, fmt.Sprintf("before damage %d", i))
			}
			waitSpoolNonEmpty(t, filepath.Join(dir, "spool.db"), 30*time.Second)
			for i := 0; i < 50; i++ {
				sendAcked(ctx, p.url(), &l, fmt.Sprintf("in stream %d", i))
			}
			p.kill9()
			tc.damage(t, dir)
			if err := up.Up(); err != nil {
				t.Fatal(err)
			}

			p2 := launch(t, dir, rc.port)
			err := p2.waitReady(60 * time.Second)
			switch {
			case err == nil:
				// Started: it must deliver what it could read and say what it
				// set aside.
				if tc.lossless {
					waitDelivered(t, up.EventIDs, l.ids(), 60*time.Second)
				} else {
					settle(up, 5*time.Second, 60*time.Second)
					if len(up.EventIDs()) < len(l.ids()) && !mentionsDamage(p2.logs()) {
						t.Fatalf("relay lost %d acked events to the damage without saying so\n%s",
							len(l.ids())-len(up.EventIDs()), p2.logs())
					}
				}
				t.Logf("recovered: %d of %d acked events delivered after damage", len(up.EventIDs()), len(l.ids()))
				_ = p2.term(10 * time.Second)
			case p2.exited():
				// Refused: the message must say what is wrong.
				if len(p2.logs()) == 0 {
					t.Fatal("relay refused to start without a message")
				}
				t.Logf("refused to start, as allowed: %s", lastLine(p2.logs()))
			default:
				t.Fatalf("relay neither started nor exited within 60 s (hang)\n%s", p2.logs())
			}
		})
	}
}

// settle waits until the upstream has received nothing new for quiet, at most limit.
func settle(up *fakesentry.Server, quiet, limit time.Duration) {
	deadline := time.Now().Add(limit)
	last, since := up.Count(), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if n := up.Count(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
	}
}

// mentionsDamage reports whether the relay's log warns about damaged storage.
func mentionsDamage(logs string) bool {
	l := strings.ToLower(logs)
	for _, w := range []string{"corrupt", "damage", "truncat", "set aside", "salvag", "lost"} {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

func mustPort(t testing.TB, addr string) int {
	t.Helper()
	var port int
	if _, err := fmt.Sscanf(addr[len("127.0.0.1:"):], "%d", &port); err != nil {
		t.Fatal(err)
	}
	return port
}

func waitAcked(t testing.TB, l *ledger, n int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for len(l.ids()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d events acked, waited for %d", len(l.ids()), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSpoolNonEmpty waits until some file under dir holds more than an empty
// bbolt file's worth of data.
func waitSpoolNonEmpty(t testing.TB, dir string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if dirBytes(dir) > 64<<10 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("spool at %s never received data", dir)
}

func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func writeJunk(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, n)
	for i := range junk {
		junk[i] = byte(i*31 + 7)
	}
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
}

// truncateLargest cuts the largest file under dir to a third of its size.
func truncateLargest(t *testing.T, dir string) {
	t.Helper()
	var best string
	var size int64
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && fi.Size() > size {
			best, size = p, fi.Size()
		}
		return nil
	})
	if best == "" {
		t.Fatalf("no file to truncate under %s", dir)
	}
	if err := os.Truncate(best, size/3); err != nil {
		t.Fatal(err)
	}
	t.Logf("truncated %s from %d to %d bytes", best, size, size/3)
}

func lastLine(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			return s[i+1:]
		}
	}
	return s
}
