package stream

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// forEachPublishPath runs a publish test on both ways Publish reaches the
// embedded server's store: in process (pubinproc.go, the default) and over
// the connection with a reply box (pubreply.go, what an external server
// gets). Both must give the same outcomes.
func forEachPublishPath(t *testing.T, test func(t *testing.T, inProcess bool)) {
	for _, path := range []struct {
		name      string
		inProcess bool
	}{{"in-process", true}, {"connection", false}} {
		t.Run(path.name, func(t *testing.T) { test(t, path.inProcess) })
	}
}

// openPath is openTest with Publish on the given path.
func openPath(t *testing.T, inProcess bool, cfg Config) *Conn {
	c := openTest(t, cfg)
	c.inProcess = inProcess
	return c
}

// TestPublishInProcessSequencesAreExact: concurrent in-process publishes
// each get the sequence their own message was stored at — the relay's
// stream record (record.go) keeps those sequences for the start-up loss
// check, so a sequence of another publish would be a false loss or a
// missed one. Every acknowledged sequence is read back and must hold the
// payload that publish sent, and no two publishes share one.
func TestPublishInProcessSequencesAreExact(t *testing.T) {
	c := openTest(t, testConfig(t))
	const workers, each = 8, 150
	type acked struct {
		seq  uint64
		data []byte
	}
	var (
		mu     sync.Mutex
		ledger []acked
		wg     sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				data := fmt.Appendf(nil, "worker %d message %d", w, i)
				ack, err := c.publishInProcess(&nats.Msg{
					Subject: c.Subject(uint64(w + 1)),
					Data:    data,
					Header:  nats.Header{jetstream.MsgIDHeader: []string{fmt.Sprintf("w%d-%d", w, i)}},
				})
				if err != nil {
					t.Error(err)
					return
				}
				if ack.Duplicate || ack.Stream != c.cfg.Stream {
					t.Errorf("ack %+v: want a new message in %s", ack, c.cfg.Stream)
				}
				mu.Lock()
				ledger = append(ledger, acked{ack.Sequence, data})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(ledger) != workers*each {
		t.Fatalf("%d acks, want %d", len(ledger), workers*each)
	}
	ctx := ctxT(t, 30*time.Second)
	seen := map[uint64]bool{}
	for _, a := range ledger {
		if seen[a.seq] {
			t.Fatalf("sequence %d acknowledged twice", a.seq)
		}
		seen[a.seq] = true
		m, err := c.stream.GetMsg(ctx, a.seq)
		if err != nil {
			t.Fatalf("get %d: %v", a.seq, err)
		}
		if !bytes.Equal(m.Data, a.data) {
			t.Fatalf("sequence %d holds %q, its publish sent %q", a.seq, m.Data, a.data)
		}
	}
}

// TestPublishInProcessDuplicate: a Nats-Msg-Id stored within the duplicate
// window is acknowledged as a duplicate with the first copy's sequence,
// and nothing is stored again; a message without an ID is stored each time.
func TestPublishInProcessDuplicate(t *testing.T) {
	c := openTest(t, testConfig(t))
	msg := func(id string) *nats.Msg {
		m := &nats.Msg{Subject: c.Subject(1), Data: []byte("x")}
		if id != "" {
			m.Header = nats.Header{jetstream.MsgIDHeader: []string{id}}
		}
		return m
	}
	for _, step := range []struct {
		id       string
		seq      uint64
		dup      bool
		inStream uint64
	}{
		{"a", 1, false, 1},
		{"b", 2, false, 2},
		{"a", 1, true, 2},
		{"b", 2, true, 2},
		{"", 3, false, 3},
		{"", 4, false, 4},
	} {
		ack, err := c.publishInProcess(msg(step.id))
		if err != nil {
			t.Fatalf("id %q: %v", step.id, err)
		}
		if ack.Sequence != step.seq || ack.Duplicate != step.dup {
			t.Fatalf("id %q: ack seq %d duplicate %v, want %d %v", step.id, ack.Sequence, ack.Duplicate, step.seq, step.dup)
		}
		if n := streamMsgs(t, c); n != step.inStream {
			t.Fatalf("id %q: stream holds %d, want %d", step.id, n, step.inStream)
		}
	}
}

// TestInProcessErrorMatchesThePubAck: each error the in-process store
// returns is classified as the same failure over the connection is (the
// PubAck's API error, or no PubAck at all).
func TestInProcessErrorMatchesThePubAck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		kind  error
		retry bool
	}{
		{"stream full (bytes)", server.ErrMaxBytes, ErrFull, false},
		{"stream full (messages)", server.ErrMaxMsgs, ErrFull, false},
		// The relay sets no per-subject limit; its PubAck is not read as full either.
		{"per-subject limit", server.ErrMaxMsgsPerSubject, ErrUnavailable, false},
		{"message too large for the store", server.ErrMsgTooLarge, ErrTooLarge, false},
		{"over the stream's message size", server.ErrMaxPayload, ErrTooLarge, false},
		{"insufficient resources", server.NewJSInsufficientResourcesError(), ErrFull, false},
		{"storage exceeded", server.NewJSStorageResourcesExceededError(), ErrFull, false},
		{"sealed stream", server.NewJSStreamSealedError(), ErrUnavailable, false},
		{"stream missing", server.NewJSStreamNotFoundError(), ErrUnavailable, true},
		{"stream closed", server.ErrStoreInProcessClosed, ErrUnavailable, true},
		{"I/O error", errors.New("write: input/output error"), ErrUnavailable, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, retry := classifyPublishError(inProcessError(tc.err))
			if kind != tc.kind || retry != tc.retry {
				t.Fatalf("%v: classified %v retry %v, want %v retry %v", tc.err, kind, retry, tc.kind, tc.retry)
			}
		})
	}
}

// TestPublishInProcessHeaders: the headers of an in-process publish are
// stored as a client's publish stores them (read back over the connection).
func TestPublishInProcessHeaders(t *testing.T) {
	c := openTest(t, testConfig(t))
	for i, h := range []nats.Header{
		nil,
		{jetstream.MsgIDHeader: []string{"only-id"}},
		{jetstream.MsgIDHeader: []string{"id-and-more"}, "X-Relay-Test": []string{"one", "two"}},
	} {
		ack, err := c.publishInProcess(&nats.Msg{Subject: c.Subject(1), Data: []byte{byte(i)}, Header: h})
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		m, err := c.stream.GetMsg(ctxT(t, 10*time.Second), ack.Sequence)
		if err != nil {
			t.Fatalf("%d: get %d: %v", i, ack.Sequence, err)
		}
		if len(m.Header) != len(h) {
			t.Fatalf("%d: stored header %v, published %v", i, m.Header, h)
		}
		for k, vs := range h {
			if got := m.Header.Values(k); fmt.Sprint(got) != fmt.Sprint(vs) {
				t.Fatalf("%d: header %s stored as %v, published %v", i, k, got, vs)
			}
		}
	}
}
