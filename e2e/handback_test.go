package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/spool"
)

// handBackSetup is two relay processes of the real binary on one external
// JetStream, the upstream down, and n envelopes acknowledged by the first
// and sitting in its spool. The second is started only then, so that every
// envelope is in the first one's spool.
type handBackSetup struct {
	up     *fakesentry.Server
	a, b   *relayProc
	aDir   string
	aRC    relayConfig
	acked  *ledger
	stream func() uint64 // messages in the stream
}

func newHandBackSetup(t *testing.T, n int) *handBackSetup {
	t.Helper()
	natsURL := startNATS(t)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s := &handBackSetup{acked: &ledger{}}
	s.stream = func() uint64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, "RELAY_ENVELOPES")
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatalf("stream info: %v", err)
		}
		return info.State.Msgs
	}
	s.up = fakesentry.New(fakesentry.Options{})
	t.Cleanup(s.up.Close)
	s.up.Down()
	// jetstream.url set: spool.hand_back "auto" is on.
	extra := fmt.Sprintf("jetstream:\n  url: %s\n  ack_wait: 5s\n", natsURL)
	s.aDir = t.TempDir()
	s.aRC = relayConfig{upstream: s.up.URL(), extra: extra}
	s.a = startRelay(t, s.aDir, s.aRC)
	s.aRC.port = mustPort(t, s.a.addr)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if st := sendAcked(ctx, s.a.url(), s.acked, fmt.Sprintf("hand-back %d", i)); st != http.StatusOK {
					t.Errorf("envelope %d: status %d", i, st)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// The first worker takes everything from the stream into its spool.
	deadline := time.Now().Add(60 * time.Second)
	for s.stream() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the stream still holds %d messages: the worker did not spool them\n%s", s.stream(), s.a.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.b = startRelay(t, t.TempDir(), relayConfig{upstream: s.up.URL(), extra: extra})
	return s
}

// spoolRecords opens a stopped relay's spool and counts its live records.
func spoolRecords(t *testing.T, dir string) int64 {
	t.Helper()
	sp, err := spool.Open(filepath.Join(dir, "spool.db"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	return sp.Stats().Records
}

// A worker stopped gracefully with a full spool hands it back to the stream;
// the other worker sends every acknowledged envelope once the upstream is
// back, and the stopped worker's spool is left empty.
func TestHandBackOnGracefulShutdown(t *testing.T) {
	s := newHandBackSetup(t, 500)
	if err := s.a.term(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	logs := s.a.logs()
	if !strings.Contains(logs, `"msg":"spool handed back to the stream"`) || !strings.Contains(logs, `"handed_back":500`) {
		t.Fatalf("the stopped relay did not report handing back 500 envelopes:\n%s", logs)
	}
	if n := spoolRecords(t, s.aDir); n != 0 {
		t.Fatalf("%d records stranded in the stopped worker's spool", n)
	}
	if err := s.up.Up(); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, s.up.EventIDs, s.acked.ids(), 90*time.Second)
	t.Logf("%d envelopes delivered through the other worker, %d duplicates", len(s.acked.ids()), duplicates(s.up.EventIDs()))
}

// A worker killed (SIGKILL) while it hands its spool back loses nothing:
// what JetStream acknowledged reaches the upstream through the other worker,
// the rest waits in the spool until the killed worker runs again. A record
// published but not yet deleted is sent twice; those are counted.
func TestHandBackKilled(t *testing.T) {
	s := newHandBackSetup(t, 3000)
	if err := s.a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(s.a.logs(), "handing the spool back to the stream") {
		if time.Now().After(deadline) || s.a.exited() {
			t.Fatalf("the relay never started handing back:\n%s", s.a.logs())
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	s.a.kill9()
	left := spoolRecords(t, s.aDir)
	inStream := s.stream()
	t.Logf("killed during the hand-back: %d records left in its spool, %d in the stream", left, inStream)

	if err := s.up.Up(); err != nil {
		t.Fatal(err)
	}
	// The killed worker comes back and drains what it kept.
	a2 := launch(t, s.aDir, s.aRC.port)
	if err := a2.waitReady(60 * time.Second); err != nil {
		t.Fatalf("restart: %v\n%s", err, a2.logs())
	}
	waitDelivered(t, s.up.EventIDs, s.acked.ids(), 120*time.Second)
	t.Logf("%d acknowledged envelopes delivered, %d duplicates", len(s.acked.ids()), duplicates(s.up.EventIDs()))
}
