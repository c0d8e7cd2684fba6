package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// boxedConn is a Conn with only what publishBoxed uses, on a plain
// nats-server (no JetStream): the tests answer the publishes themselves,
// late, wrong or not at all, as a JetStream server in trouble would.
func boxedConn(t *testing.T, s *server.Server, timeout time.Duration) *Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c := &Conn{nc: nc, cfg: Config{PublishTimeout: timeout}, boxes: newReplyBoxes(nc, 4)}
	t.Cleanup(func() { nc.Close(); c.boxes.stop() })
	return c
}

// answer subscribes subject on its own connection and replies to the i-th
// publish (from 1) with reply(i); an empty reply sends nothing.
func answer(t *testing.T, s *server.Server, subject string, reply func(i int64) string) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var n atomic.Int64
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		if r := reply(n.Add(1)); r != "" {
			_ = m.Respond([]byte(r))
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func pubAckJSON(seq int64) string {
	return fmt.Sprintf(`{"stream":"RELAY_ENVELOPES","seq":%d}`, seq)
}

// A PubAck that comes after its publish gave up must never acknowledge the
// next publish: the box it was addressed to is not reused.
func TestPublishBoxedLatePubAckIsNotTakenByTheNext(t *testing.T) {
	s := serverAt(t, server.RANDOM_PORT, "")
	defer s.Shutdown()
	release := make(chan struct{})
	answer(t, s, "late", func(i int64) string {
		if i == 1 {
			<-release // the first publish's PubAck comes after it timed out
		}
		return pubAckJSON(i)
	})
	c := boxedConn(t, s, 100*time.Millisecond)
	ctx := context.Background()

	_, err := c.publishBoxed(ctx, &nats.Msg{Subject: "late", Data: []byte("one")})
	if !errors.Is(err, errNoPubAck) {
		t.Fatalf("first publish: %v, want errNoPubAck", err)
	}
	if kind, retry := classifyPublishError(err); kind != ErrUnavailable || !retry {
		t.Fatalf("a missing PubAck classified %v (retry %v), want ErrUnavailable, retried", kind, retry)
	}
	close(release) // the stale PubAck (seq 1) is now on its way
	for i := int64(2); i <= 5; i++ {
		ack, err := c.publishBoxed(ctx, &nats.Msg{Subject: "late", Data: []byte("next")})
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if int64(ack.Sequence) != i {
			t.Fatalf("publish %d took PubAck seq %d", i, ack.Sequence)
		}
	}
}

// Sequential publishes share one box: no subscription per publish. And
// each PubAck reaches the connection once: a box's inbox is not under the
// connection's request inbox prefix, whose wildcard subscription (made by
// the first nc.Request, e.g. a JetStream API call) would get a second copy
// of every PubAck and wake its dispatcher for nothing.
func TestPublishBoxedReusesItsBox(t *testing.T) {
	s := serverAt(t, server.RANDOM_PORT, "")
	defer s.Shutdown()
	answer(t, s, "reuse", func(i int64) string { return pubAckJSON(i - 1) })
	c := boxedConn(t, s, 5*time.Second)
	if _, err := c.nc.Request("reuse", nil, 5*time.Second); err != nil {
		t.Fatal(err) // the request inbox's wildcard subscription now exists
	}
	subs, in := c.nc.NumSubscriptions(), c.nc.Stats().InMsgs
	for i := int64(1); i <= 20; i++ {
		ack, err := c.publishBoxed(context.Background(), &nats.Msg{Subject: "reuse"})
		if err != nil || int64(ack.Sequence) != i {
			t.Fatalf("publish %d: ack %+v, %v", i, ack, err)
		}
	}
	if got := c.nc.NumSubscriptions() - subs; got != 1 {
		t.Fatalf("%d reply subscriptions for 20 sequential publishes, want 1", got)
	}
	if got := c.nc.Stats().InMsgs - in; got != 20 {
		t.Fatalf("the connection received %d messages for 20 PubAcks, want 20", got)
	}
}

// The server's answers that are not a PubAck reach classifyPublishError as
// the library would have returned them.
func TestPublishBoxedReplies(t *testing.T) {
	s := serverAt(t, server.RANDOM_PORT, "")
	defer s.Shutdown()
	answer(t, s, "full", func(int64) string {
		return `{"error":{"code":503,"err_code":10077,"description":"maximum bytes exceeded"}}`
	})
	answer(t, s, "big", func(int64) string {
		return `{"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}`
	})
	answer(t, s, "garbage", func(int64) string { return `{"seq":` })
	answer(t, s, "nostream", func(int64) string { return `{}` })
	c := boxedConn(t, s, 5*time.Second)
	for _, tc := range []struct {
		subject string
		kind    error
		retry   bool
	}{
		{"full", ErrFull, false},
		{"big", ErrTooLarge, false},
		{"nobody", ErrUnavailable, true}, // no responders: retried
		{"garbage", ErrUnavailable, true},
		{"nostream", ErrUnavailable, true},
	} {
		t.Run(tc.subject, func(t *testing.T) {
			ack, err := c.publishBoxed(context.Background(), &nats.Msg{Subject: tc.subject, Data: []byte("x")})
			if err == nil {
				t.Fatalf("acked %+v", ack)
			}
			if kind, retry := classifyPublishError(err); kind != tc.kind || retry != tc.retry {
				t.Fatalf("%v: classified %v (retry %v), want %v (retry %v)", err, kind, retry, tc.kind, tc.retry)
			}
		})
	}
}

// A publish waiting when the connection goes fails at once (and is
// retried by publishData), not after PublishTimeout; its box is dropped.
func TestPublishBoxedFailsWhenTheConnectionGoes(t *testing.T) {
	s := serverAt(t, server.RANDOM_PORT, "")
	port := serverPort(s)
	got := make(chan struct{}, 1)
	answer(t, s, "silent", func(int64) string { got <- struct{}{}; return "" })
	c := boxedConn(t, s, time.Hour)
	errc := make(chan error, 1)
	go func() {
		_, err := c.publishBoxed(context.Background(), &nats.Msg{Subject: "silent"})
		errc <- err
	}()
	<-got // the publish is on the server before the server goes
	s.Shutdown()
	select {
	case err := <-errc:
		if !errors.Is(err, nats.ErrDisconnected) {
			t.Fatalf("publish: %v, want ErrDisconnected", err)
		}
		if _, retry := classifyPublishError(err); !retry {
			t.Fatal("a publish cut by a disconnect is not retried")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the publish still waits after its connection went")
	}
	// After the reconnect the next publish gets a fresh box and its own answer.
	s = serverAt(t, port, "")
	defer s.Shutdown()
	answer(t, s, "again", pubAckJSON)
	if err := c.nc.FlushTimeout(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if ack, err := c.publishBoxed(context.Background(), &nats.Msg{Subject: "again"}); err != nil || ack.Sequence != 1 {
		t.Fatalf("after reconnect: ack %+v, %v", ack, err)
	}
}

// FuzzParsePubAck: whatever the hand-read PubAck accepts, encoding/json
// reads the same (and as no error); it never panics on anything else.
func FuzzParsePubAck(f *testing.F) {
	for _, seed := range []string{
		`{"stream":"RELAY_ENVELOPES","seq":1}`,
		`{"stream":"RELAY_ENVELOPES","seq":18446744073709551615}`,
		`{"stream":"RELAY_ENVELOPES","seq":18446744073709551616}`,
		`{"stream":"S","domain":"hub","seq":42}`,
		`{"stream":"S","seq":42,"duplicate": true}`,
		`{"stream":"S","seq":42,"duplicate":true}`,
		`{"stream":"S","seq":042}`,
		`{"stream":"S\"x","seq":1}`,
		`{"stream":"","seq":1}`,
		`{"stream":"S","seq":1,"batch":"b","count":2}`,
		`{"error":{"code":503,"err_code":10077,"description":"maximum bytes exceeded"}}`,
		`{"stream":"S","seq":1}x`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ack, ok := parsePubAck(data)
		if !ok {
			return
		}
		var r pubAckReply
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatalf("parsePubAck took %q, encoding/json: %v", data, err)
		}
		if r.Error != nil || r.PubAck != *ack {
			t.Fatalf("parsePubAck read %q as %+v, encoding/json as %+v (error %v)", data, *ack, r.PubAck, r.Error)
		}
	})
}

// The PubAcks nats-server sends are read by hand; the rest falls back.
func TestParsePubAck(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		want jetstream.PubAck
	}{
		{`{"stream":"RELAY_ENVELOPES","seq":7}`, true, jetstream.PubAck{Stream: "RELAY_ENVELOPES", Sequence: 7}},
		{`{"stream":"S","domain":"hub","seq":42}`, true, jetstream.PubAck{Stream: "S", Domain: "hub", Sequence: 42}},
		{`{"stream":"S","seq":42,"duplicate": true}`, true, jetstream.PubAck{Stream: "S", Sequence: 42, Duplicate: true}},
		{`{"stream":"S","seq":0}`, true, jetstream.PubAck{Stream: "S"}},
		{`{"stream":"S","seq":042}`, false, jetstream.PubAck{}},
		{`{"stream":"S","seq":18446744073709551616}`, false, jetstream.PubAck{}},
		{`{"stream":"S","seq":1,"batch":"b","count":2}`, false, jetstream.PubAck{}},
		{`{"stream":"S\u0041","seq":1}`, false, jetstream.PubAck{}},
		{`{"error":{"code":503,"description":"x"}}`, false, jetstream.PubAck{}},
		{``, false, jetstream.PubAck{}},
	} {
		ack, ok := parsePubAck([]byte(tc.in))
		if ok != tc.ok || (ok && *ack != tc.want) {
			t.Errorf("parsePubAck(%s) = %+v, %v; want %+v, %v", tc.in, ack, ok, tc.want, tc.ok)
		}
	}
}
