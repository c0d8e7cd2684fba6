package worker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/stream"
)

// cutPublisher publishes through the real stream until n publishes have
// been acknowledged, then fails every one, as a stream that went away.
type cutPublisher struct {
	pub Publisher
	n   int64
	ok  atomic.Int64
}

var errPublishCut = errors.New("publish cut (injected)")

func (c *cutPublisher) Publish(ctx context.Context, m *stream.Message, id string) error {
	if c.ok.Add(1) > c.n {
		return errPublishCut
	}
	return c.pub.Publish(ctx, m, id)
}

// failDelete fails every Delete, as a disk that went bad after the PubAcks.
type failDelete struct{ HandBackStore }

func (failDelete) Delete(...uint64) error { return errors.New("delete failed (injected)") }

// Everything the spool held goes to the stream, and a worker reading the
// stream delivers every envelope once.
func TestHandBack(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ids := append(h.spoolMessages(200, keyA), h.spoolMessages(100, keyB)...)
	res, err := HandBack(context.Background(), h.conn, h.spool, h.log)
	if err != nil || res.HandedBack != 300 || res.Duplicated != 0 {
		t.Fatalf("HandBack = %+v, %v", res, err)
	}
	if n := h.spool.Stats().Records; n != 0 {
		t.Fatalf("%d records left in the spool", n)
	}
	if n := h.streamMsgs(); n != 300 {
		t.Fatalf("the stream holds %d messages, want 300", n)
	}
	h.start(fastCfg(Config{Concurrency: 4}))
	eventually(t, 10*time.Second, "all delivered", func() bool { return h.up.Count() >= len(ids) })
	h.checkLedger(ids, 0)
}

// A hand-back cut short (the stream stops acknowledging) deletes only what
// was acknowledged; the rest stays in the spool and the worker sends it.
func TestHandBackCut(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ids := h.spoolMessages(300, keyA)
	res, err := HandBack(context.Background(), &cutPublisher{pub: h.conn, n: 150}, h.spool, h.log)
	if !errors.Is(err, errPublishCut) {
		t.Fatalf("HandBack: %v, want the injected cut", err)
	}
	left := h.spool.Stats().Records
	if res.HandedBack+left != 300 || res.HandedBack == 0 || h.streamMsgs() != uint64(res.HandedBack) {
		t.Fatalf("after the cut: %+v, %d left in the spool, %d in the stream", res, left, h.streamMsgs())
	}
	h.start(fastCfg(Config{Concurrency: 4}))
	eventually(t, 10*time.Second, "all delivered", func() bool { return h.up.Count() >= len(ids) })
	h.checkLedger(ids, 0)
}

// Records whose delete failed after their PubAck are in both places: counted
// as duplicates. A second hand-back publishes them with the same message
// ids, so JetStream keeps one copy; every envelope is delivered, the
// duplicates within what was counted.
func TestHandBackDeleteFails(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ids := h.spoolMessages(50, keyA)
	res, err := HandBack(context.Background(), h.conn, failDelete{h.spool}, h.log)
	if err == nil || res.Duplicated != 50 || res.HandedBack != 0 {
		t.Fatalf("HandBack with failing deletes = %+v, %v", res, err)
	}
	if n := h.spool.Stats().Records; n != 50 {
		t.Fatalf("%d records in the spool, want all 50", n)
	}
	res, err = HandBack(context.Background(), h.conn, h.spool, h.log)
	if err != nil || res.HandedBack != 50 {
		t.Fatalf("second HandBack = %+v, %v", res, err)
	}
	if n := h.streamMsgs(); n != 50 {
		t.Fatalf("the stream holds %d messages after two hand-backs of the same records, want 50", n)
	}
	h.start(fastCfg(Config{Concurrency: 4}))
	eventually(t, 10*time.Second, "all delivered", func() bool { return h.up.Count() >= len(ids) })
	h.checkLedger(ids, 0) // JetStream dropped the second copies
}

// slowPublisher holds each publish for a while, as a stream far away.
type slowPublisher struct {
	pub   Publisher
	delay time.Duration
}

func (s slowPublisher) Publish(ctx context.Context, m *stream.Message, id string) error {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.pub.Publish(ctx, m, id)
}

// The shutdown deadline bounds a hand-back: it stops when its ctx ends, and
// what it had not handed back stays in the spool.
func TestHandBackDeadline(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ids := h.spoolMessages(400, keyA)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res, err := HandBack(ctx, slowPublisher{pub: h.conn, delay: 200 * time.Millisecond}, h.spool, h.log)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("HandBack past its deadline: %+v, %v", res, err)
	}
	left := h.spool.Stats().Records
	inStream := h.streamMsgs()
	if left == 0 || res.HandedBack+left != 400 || inStream < uint64(res.HandedBack) || inStream > uint64(res.HandedBack+res.Uncertain) {
		t.Fatalf("after the deadline: %+v, %d left in the spool, %d in the stream", res, left, inStream)
	}
	t.Logf("deadline: %d handed back, %d uncertain (%d in the stream), %d left in the spool", res.HandedBack, res.Uncertain, inStream, left)
	h.start(fastCfg(Config{Concurrency: 4}))
	eventually(t, 10*time.Second, "all delivered", func() bool { return h.up.Count() >= len(ids)+int(inStream)-int(res.HandedBack) })
	h.checkLedger(ids, int(res.Uncertain))
}
