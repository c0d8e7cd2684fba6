package worker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
)

// recordCounter is a slog handler that counts records by level and message.
type recordCounter struct {
	mu   sync.Mutex
	seen map[string]int // "LEVEL msg"
}

func (c *recordCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *recordCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.seen[r.Level.String()+" "+r.Message]++
	c.mu.Unlock()
	return nil
}
func (c *recordCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *recordCounter) WithGroup(string) slog.Handler      { return c }

func (c *recordCounter) count(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, v := range c.seen {
		if strings.HasSuffix(k, " "+msg) {
			n += v
		}
	}
	return n
}

// warnings lists the WARN and ERROR records, with how often each came.
func (c *recordCounter) warnings() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.seen {
		if strings.HasPrefix(k, "WARN ") || strings.HasPrefix(k, "ERROR ") {
			out[k] = v
		}
	}
	return out
}

// natsServer is an external nats-server that the test can stop and start
// again on the same port and store, as an operator's server restarts.
type natsServer struct {
	t     *testing.T
	opts  *server.Options
	srv   *server.Server
	url   string
	store string
}

func startNATS(t *testing.T) *natsServer {
	n := &natsServer{t: t, store: t.TempDir()}
	n.opts = &server.Options{ServerName: "ext", JetStream: true, StoreDir: n.store, Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true}
	n.up()
	n.opts.Port = n.srv.Addr().(*net.TCPAddr).Port
	n.url = n.srv.ClientURL()
	t.Cleanup(n.down)
	return n
}

func (n *natsServer) up() {
	n.t.Helper()
	s, err := server.NewServer(n.opts)
	if err != nil {
		n.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		n.t.Fatal("nats-server not ready")
	}
	n.srv = s
}

func (n *natsServer) down() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

// A NATS outage fails every publish and every fetch of every consumer
// goroutine at once. The process logs it once when JetStream goes away and
// once when it is back (per outage), not once per goroutine or request; and
// nothing acknowledged before the outage is lost.
func TestStreamOutageLoggedOncePerChange(t *testing.T) {
	logs := &recordCounter{seen: map[string]int{}}
	log := slog.New(logs)
	ns := startNATS(t)

	h := &harness{t: t, opts: harnessOpts{ackWait: 2 * time.Second, spoolPath: filepath.Join(t.TempDir(), "spool.db")}, log: log, keyOf: map[string]string{}}
	h.up = fakesentry.New(fakesentry.Options{})
	t.Cleanup(h.up.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := stream.Open(ctx, stream.Config{URL: ns.url, AckWait: 2 * time.Second, FetchWait: 100 * time.Millisecond}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	h.conn = conn
	h.openSpool()
	c, err := upstream.New(upstream.Config{URL: h.up.URL(), Timeout: 5 * time.Second, ConnectionTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	h.client = c
	h.start(Config{Concurrency: 16})

	// Ingest stands in as 8 publishers that keep trying all along; only
	// what got a PubAck is in the ledger.
	var (
		acked   sync.Map
		stop    atomic.Bool
		pubs    sync.WaitGroup
		counter atomic.Int64
		refused atomic.Int64
	)
	for range 8 {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for !stop.Load() {
				id := fmt.Sprintf("%032x", counter.Add(1))
				m := &stream.Message{ProjectID: testProject, PublicKey: keyA, Version: 7, ReceivedAt: time.Now(), EventID: id, Envelope: envelopeFor(id)}
				pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
				if err := conn.Publish(pctx, m, id); err == nil {
					acked.Store(id, true)
				} else {
					refused.Add(1)
				}
				pcancel()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	t.Cleanup(func() { stop.Store(true); pubs.Wait() })

	for outage := 1; outage <= 2; outage++ {
		eventually(t, 20*time.Second, "deliveries before the outage", func() bool { return h.up.Count() > 20*outage })
		refusedBefore := refused.Load()
		ns.down()
		eventually(t, 20*time.Second, "publishes refused during the outage", func() bool { return refused.Load() > refusedBefore+8 })
		time.Sleep(time.Second) // every consumer goroutine has failed to fetch by now, many times
		if n := logs.count("jetstream available again"); n != outage-1 {
			t.Fatalf("outage %d: %d recovery lines while still down", outage, n)
		}
		ns.up()
		eventually(t, 30*time.Second, "the recovery logged", func() bool { return logs.count("jetstream available again") == outage })
		if n := logs.count("jetstream unavailable: ingest answers 503 and workers wait; retrying until it is back"); n != outage {
			t.Fatalf("after outage %d: %d lines saying jetstream is unavailable, want %d", outage, n, outage)
		}
	}
	stop.Store(true)
	pubs.Wait()

	var want []string
	acked.Range(func(k, _ any) bool { want = append(want, k.(string)); return true })
	eventually(t, 60*time.Second, "every acknowledged envelope delivered", func() bool {
		got := h.up.EventIDs()
		for _, id := range want {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	// Per outage: the stream's one line, and the connection's own
	// "disconnected" line. Anything logged per goroutine or per request
	// would be dozens.
	for msg, n := range logs.warnings() {
		if n > 2 {
			t.Errorf("%q logged %d times over two outages", msg, n)
		}
	}
	t.Logf("acknowledged %d, refused %d; warnings %v", len(want), refused.Load(), logs.warnings())
}
