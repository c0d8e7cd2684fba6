package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A publish over the connection (to an external server; the embedded one is
// stored in process, pubinproc.go) waits for its PubAck on a reply box of its
// own: an inbox with a channel subscription (nats.Conn.ChanSubscribe) whose
// one-slot channel nats.go's read loop fills directly. The library's async
// publish delivers the same PubAck to one shared wildcard subscription whose
// dispatcher goroutine then wakes the publisher; the box saves that
// hand-off, and at one request at a time every hand-off is a goroutine
// woken, often on another thread (see README, Performance: the
// one-connection latency).
//
// A box is reused only after it delivered the one reply its publish asked
// for: a box whose wait ended otherwise (timeout, ctx, the connection
// going) may still get that reply later, so it is unsubscribed and dropped,
// never handed to another publish that would take the stale PubAck for its
// own.

// replyBox is one reusable reply inbox.
type replyBox struct {
	inbox string
	sub   *nats.Subscription
	ch    chan *nats.Msg
	// timer bounds each wait by PublishTimeout; stopped between uses
	// (since Go 1.23 a stopped timer's channel holds no stale tick).
	timer *time.Timer
}

// replyBoxesIdle bounds the idle reply boxes kept: about the publishes in
// flight at once under load (with the group publish, one per project).
const replyBoxesIdle = 256

// replyBoxes keeps idle boxes for reuse. Boxes in use are bounded by
// pubSem (Config.MaxPending); idle ones by maxIdle, the rest unsubscribed.
//
// It also fails every wait when the connection goes (RECONNECTING or
// CLOSED), as the library's async publish does: a PubAck in flight then is
// lost, and the publish is better retried at once (same Nats-Msg-Id) than
// after PublishTimeout.
type replyBoxes struct {
	nc      *nats.Conn
	maxIdle int
	status  chan nats.Status // nc's status changes; closed by stop
	done    chan struct{}    // closed when watch returned

	mu   sync.Mutex
	idle []*replyBox
	gone chan struct{} // closed (and replaced) when the connection goes
}

// newReplyBoxes starts the watch of nc's status; stop ends it.
func newReplyBoxes(nc *nats.Conn, maxIdle int) *replyBoxes {
	p := &replyBoxes{
		nc:      nc,
		maxIdle: maxIdle,
		status:  nc.StatusChanged(nats.RECONNECTING, nats.CLOSED),
		done:    make(chan struct{}),
		gone:    make(chan struct{}),
	}
	go p.watch()
	return p
}

func (p *replyBoxes) watch() {
	defer close(p.done)
	for st := range p.status {
		p.mu.Lock()
		close(p.gone)
		p.gone = make(chan struct{})
		p.mu.Unlock()
		if st == nats.CLOSED {
			return
		}
	}
}

// stop ends the status watch (the connection's owner calls it after
// closing the connection).
func (p *replyBoxes) stop() {
	p.nc.RemoveStatusListener(p.status)
	<-p.done
}

// get returns an idle box (or subscribes a new one) and the channel closed
// if the connection goes while the box waits. A new box's inbox is a plain
// one (nc.NewInbox), not one under the connection's request prefix
// (NewRespInbox): the wildcard subscription nats.go keeps for requests
// would match it and get a second copy of every PubAck.
func (p *replyBoxes) get() (*replyBox, <-chan struct{}, error) {
	p.mu.Lock()
	gone := p.gone
	if n := len(p.idle); n > 0 {
		b := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return b, gone, nil
	}
	p.mu.Unlock()
	b := &replyBox{inbox: p.nc.NewInbox(), ch: make(chan *nats.Msg, 1), timer: time.NewTimer(time.Hour)}
	b.timer.Stop()
	sub, err := p.nc.ChanSubscribe(b.inbox, b.ch)
	if err != nil {
		return nil, nil, fmt.Errorf("reply inbox: %w", err)
	}
	b.sub = sub
	return b, gone, nil
}

// put returns a box whose one reply was taken (or that sent nothing).
func (p *replyBoxes) put(b *replyBox) {
	p.mu.Lock()
	if len(p.idle) < p.maxIdle {
		p.idle = append(p.idle, b)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.discard(b)
}

// discard drops a box that may still get a late reply.
func (p *replyBoxes) discard(b *replyBox) {
	b.timer.Stop()
	_ = b.sub.Unsubscribe() // fails only on a closed connection, where the box is gone anyway
}

// errNoPubAck: no PubAck within Config.PublishTimeout; the message may or
// may not be stored, and a retry with the same Nats-Msg-Id is safe.
var errNoPubAck = errors.New("no PubAck in time")

// pubAckReply is a PubAck or a JetStream API error, as the server sends it.
type pubAckReply struct {
	Error *jetstream.APIError `json:"error"`
	jetstream.PubAck
}

// publishBoxed sends msg with a reply box of its own and waits for the
// PubAck, an error reply, PublishTimeout, or ctx.
func (c *Conn) publishBoxed(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	b, gone, err := c.boxes.get()
	if err != nil {
		return nil, err
	}
	msg.Reply = b.inbox
	if err := c.nc.PublishMsg(msg); err != nil {
		c.boxes.put(b) // nothing was sent: no reply can come
		return nil, err
	}
	b.timer.Reset(c.cfg.PublishTimeout)
	var m *nats.Msg
	select {
	case m = <-b.ch:
	case <-b.timer.C:
		c.boxes.discard(b)
		return nil, fmt.Errorf("waiting %v: %w", c.cfg.PublishTimeout, errNoPubAck)
	case <-gone:
		c.boxes.discard(b)
		return nil, fmt.Errorf("waiting for PubAck: %w", nats.ErrDisconnected)
	case <-ctx.Done():
		c.boxes.discard(b)
		return nil, fmt.Errorf("waiting for PubAck: %w: %w", ErrUnavailable, ctx.Err())
	}
	b.timer.Stop()
	c.boxes.put(b)
	if ack, ok := parsePubAck(m.Data); ok {
		return ack, nil
	}
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return nil, nats.ErrNoResponders
	}
	var r pubAckReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return nil, fmt.Errorf("decoding PubAck: %w", err)
	}
	if r.Error != nil {
		return nil, r.Error
	}
	if r.Stream == "" {
		return nil, fmt.Errorf("decoding PubAck: no stream in %q", m.Data)
	}
	return &r.PubAck, nil
}

// parsePubAck reads the PubAck as nats-server writes it — from a template,
// not with encoding/json: {"stream":"NAME","seq":N}, with ,"domain":"D"
// before the seq in a domain, and ,"duplicate": true after it for a
// duplicate (server/stream.go, mset.pubAck). encoding/json's reflection
// was ~2 % of ingest's CPU under load. ok is false for anything else (an
// error, a future field, escapes in a name), which the caller then decodes
// with encoding/json; when ok, the result is what encoding/json would give
// (FuzzParsePubAck).
func parsePubAck(data []byte) (ack *jetstream.PubAck, ok bool) {
	rest, ok := bytes.CutPrefix(data, []byte(`{"stream":`))
	if !ok {
		return nil, false
	}
	var a jetstream.PubAck
	if a.Stream, rest, ok = plainString(rest); !ok || a.Stream == "" {
		return nil, false
	}
	if r, found := bytes.CutPrefix(rest, []byte(`,"domain":`)); found {
		if a.Domain, rest, ok = plainString(r); !ok {
			return nil, false
		}
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"seq":`)); !ok {
		return nil, false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 || i > 20 || (i > 1 && rest[0] == '0') { // JSON: no leading zeros
		return nil, false
	}
	seq, err := strconv.ParseUint(string(rest[:i]), 10, 64)
	if err != nil {
		return nil, false
	}
	a.Sequence = seq
	switch string(rest[i:]) {
	case "}":
	case `,"duplicate": true}`, `,"duplicate":true}`:
		a.Duplicate = true
	default:
		return nil, false
	}
	return &a, true
}

// plainString reads a JSON string of printable ASCII without escapes at
// the start of b, and returns it and what follows.
func plainString(b []byte) (s string, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", nil, false
	}
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return string(b[1:i]), b[i+1:], true
		case c == '\\' || c < 0x20 || c >= 0x7f:
			return "", nil, false
		}
	}
	return "", nil, false
}
