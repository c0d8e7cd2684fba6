package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/stream"
)

// writeIngestOnlyConfig writes a config for an ingest-only relay (no worker:
// what ingest acknowledged stays in the stream) whose embedded JetStream
// also listens on natsPort, so the test can read the stored messages as
// they are — groups included — without a worker.
func writeIngestOnlyConfig(t *testing.T, dir, upstream string, port, natsPort int) {
	t.Helper()
	cfg := fmt.Sprintf(`relay:
  mode: proxy
  upstream: %s
  host: 127.0.0.1
  port: %d
limits:
  shutdown_timeout: 5s
logging:
  level: info
  format: json
worker:
  enabled: false
jetstream:
  listen: 127.0.0.1:%d
`, upstream, port, natsPort)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// storedEventIDs reads every message of the relay's stream over NATS and
// returns how often each event id is stored, and how many stream messages
// were groups.
func storedEventIDs(t *testing.T, natsPort int) (ids map[string]int, groups, msgs int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", natsPort))
	if err != nil {
		t.Fatalf("connect to the relay's JetStream: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, stream.DefaultStream)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids = map[string]int{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		msgs++
		members := [][]byte{raw.Data}
		if stream.IsGroup(raw.Data) {
			groups++
			if members, err = stream.GroupMembers(raw.Data); err != nil {
				t.Fatalf("message %d: %v", seq, err)
			}
		}
		for _, b := range members {
			var m stream.Message
			if err := m.UnmarshalBinary(b); err != nil {
				t.Fatalf("message %d: %v", seq, err)
			}
			ids[m.EventID]++
		}
	}
	return ids, groups, msgs
}

// kill -9 of an ingest-only relay under 64 concurrent SDKs (so requests
// share group publishes), restart on the same store: every event that got a
// 200 — before or after the kill — is in the stream, and the load was
// stored in groups (fewer stream messages than envelopes).
func TestKill9MidGroupedLoadKeepsEveryAck(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	dir := t.TempDir()
	port, natsPort := freePort(t), freePort(t)
	writeIngestOnlyConfig(t, dir, up.URL(), port, natsPort)
	start := func() *relayProc {
		p := launch(t, dir, port)
		if err := p.waitReady(60 * time.Second); err != nil {
			p.kill9()
			t.Fatalf("relay did not become ready: %v\n%s", err, p.logs())
		}
		return p
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var l ledger
	var sent atomic.Int64
	var cur atomic.Pointer[relayProc]
	cur.Store(start())
	stop := make(chan struct{})
	wg := loadFor(ctx, func() string { return cur.Load().url() }, 64, &l, stop, &sent)

	waitAcked(t, &l, 1500, 60*time.Second)
	cur.Load().kill9()
	acked := len(l.ids())
	cur.Store(start())
	waitAcked(t, &l, acked+500, 60*time.Second)
	close(stop)
	wg.Wait()

	ids, groups, msgs := storedEventIDs(t, natsPort)
	var missing []string
	for _, id := range l.ids() {
		if ids[id] == 0 {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d acknowledged events are not in the stream after kill -9 (first %s)", len(missing), len(l.ids()), missing[0])
	}
	if groups == 0 || msgs >= len(ids) {
		t.Fatalf("%d stream messages (%d groups) for %d events: the load was not grouped", msgs, groups, len(ids))
	}
	t.Logf("%d events acked across a kill -9, all stored: %d stream messages, %d of them groups, for %d events",
		len(l.ids()), msgs, groups, len(ids))
	if err := cur.Load().term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}
