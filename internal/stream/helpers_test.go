package stream

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// testLog is a slog.Logger writing to t.Log until the test's cleanups have
// run; later lines (from goroutines still stopping) are discarded, since
// t.Log after the test panics.
func testLog(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop) // registered first → runs last
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// testConfig is an embedded config in a fresh temporary store with short
// waits, so tests are quick.
func testConfig(t testing.TB) Config {
	return Config{StoreDir: t.TempDir(), AckWait: 2 * time.Second, FetchWait: 300 * time.Millisecond}
}

// openTest opens cfg and closes it when the test ends.
func openTest(t testing.TB, cfg Config) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Open(ctx, cfg, testLog(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// msgN is a distinct, recognisable message.
func msgN(i int) *Message {
	return &Message{
		ProjectID:  uint64(1 + i%3),
		PublicKey:  "abc",
		Client:     "test/1.0",
		Version:    7,
		RemoteAddr: "127.0.0.1",
		ReceivedAt: time.Unix(1700000000, int64(i)).UTC(),
		EventID:    fmt.Sprintf("%032x", i),
		Envelope:   []byte(fmt.Sprintf("{\"event_id\":\"%032x\"}\n{\"type\":\"event\"}\n{}\n", i)),
	}
}

func publishN(t testing.TB, c *Conn, from, n int) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	for i := from; i < from+n; i++ {
		if err := c.Publish(ctx, msgN(i), fmt.Sprintf("id-%d", i)); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
}

// fetchAll fetches until want deliveries arrived or d passed.
func fetchAll(t testing.TB, k *Consumer, want int, d time.Duration) []*Delivery {
	t.Helper()
	ctx := ctxT(t, d+5*time.Second)
	deadline := time.Now().Add(d)
	var out []*Delivery
	for len(out) < want && time.Now().Before(deadline) {
		ds, err := k.Fetch(ctx, want-len(out))
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		out = append(out, ds...)
	}
	return out
}

func ackAll(t testing.TB, ds []*Delivery) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	for _, d := range ds {
		if err := d.Ack(ctx); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
}

func eventIDs(ds []*Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Msg.EventID
	}
	return out
}

func streamMsgs(t testing.TB, c *Conn) uint64 {
	t.Helper()
	info, err := c.stream.Info(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

func sameMessage(t testing.TB, got Message, want *Message) {
	t.Helper()
	if !equalMessages(got, *want) || !bytes.Equal(got.Envelope, want.Envelope) {
		t.Fatalf("message mismatch:\n got %+v\nwant %+v", got, *want)
	}
}

// fetchUntilEmpty fetches until a Fetch comes back empty (FetchWait passed
// with nothing new), or d passed.
func fetchUntilEmpty(t testing.TB, k *Consumer, d time.Duration) []*Delivery {
	t.Helper()
	ctx := ctxT(t, d+5*time.Second)
	deadline := time.Now().Add(d)
	var out []*Delivery
	for time.Now().Before(deadline) {
		ds, err := k.Fetch(ctx, 100)
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if len(ds) == 0 {
			break
		}
		out = append(out, ds...)
	}
	return out
}

// logLines is a slog.Logger for a test that also keeps every line it wrote,
// for tests that check what was logged.
type logLines struct {
	mu    sync.Mutex
	lines []string
	next  *testWriter
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.lines = append(l.lines, strings.TrimRight(string(p), "\n"))
	l.mu.Unlock()
	return l.next.Write(p)
}

// matching returns the lines that contain every one of subs.
func (l *logLines) matching(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
next:
	for _, line := range l.lines {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		out = append(out, line)
	}
	return out
}

func captureLog(t testing.TB) (*slog.Logger, *logLines) {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	l := &logLines{next: w}
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo})), l
}
