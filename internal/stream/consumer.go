package stream

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// Messages Fetch could not decode. They are not dropped: each is Nak'ed with
// undecodableDelay and stays in the stream (visible in this counter and the
// log) for a worker that can read it — a newer build for an unknown version.
var (
	undecodableVersion = metrics.NewCounter(`relay_stream_undecodable_total{reason="version"}`)
	undecodableCorrupt = metrics.NewCounter(`relay_stream_undecodable_total{reason="corrupt"}`)
)

// undecodableDelay is how long an undecodable message waits before it is
// offered again; long enough not to spin, short enough that a rolling
// upgrade picks it up soon.
const undecodableDelay = time.Minute

// Consumer is a durable pull consumer on the stream. Many goroutines — and
// processes, by using the same durable name — share one: the server hands
// each message to one of them, and redelivers it after AckWait if that one
// neither acks nor extends it.
type Consumer struct {
	c    *Conn
	cons jetstream.Consumer
	name string
	acks *ackConfirmer // nil when the start-up loss record is off

	// drained is set when the last fetch showed nothing left undelivered
	// (a no-wait fetch came back empty, or the last message delivered had
	// NumPending 0) and cleared when a delivery showed more pending. While
	// it is set Fetch skips the no-wait pull that would come back empty
	// and the top-up after a waited-for message, so an envelope at low load
	// costs one pull request, not three (each is a subscription, a JSON
	// request and a server reply). Shared by every goroutine fetching on
	// this handle; a stale value costs one pull at most, never a message.
	drained atomic.Bool

	// waiter holds the one turn to wait on the server for a message on an
	// empty stream (a buffered channel of one: sending takes the turn).
	waiter chan struct{}
}

// Consumer creates the durable pull consumer, or updates its settings, and
// returns a handle. On a work-queue stream only one unfiltered consumer may
// exist: every worker must use the same durable name.
//
// Settings: explicit acks; AckWait from Config; unlimited deliveries (a
// message is never dropped for being redelivered too often); MaxAckPending
// messages out at once across all workers.
func (c *Conn) Consumer(ctx context.Context, durable string) (*Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   "relay workers: forward to the upstream or spool",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: MaxAckPending,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
	}
	cons, err := c.declareConsumer(ctx, durable, cfg)
	if err != nil && c.srv != nil && isConsumerStoreErr(err) {
		// nats-server cannot load the consumer's saved state (o.dat damaged)
		// and so refuses to create it. On a work-queue stream that state is
		// redundant — acked messages are already gone from the stream — so
		// setting it aside and starting the consumer afresh loses nothing:
		// every message still stored is delivered again (a possible
		// duplicate for those that were in flight, never a loss).
		if moved, merr := c.setAsideConsumerState(durable); merr != nil {
			return nil, fmt.Errorf("stream: consumer %s on %s: %w (setting its state aside failed: %w)", durable, c.cfg.Stream, err, merr)
		} else if moved != "" {
			consumerStateReset.Inc()
			c.log.Error("jetstream consumer state was damaged; set it aside and restarting the consumer from the stream's stored messages",
				"consumer", durable, "moved_to", moved, "err", err)
			cons, err = c.js.CreateOrUpdateConsumer(ctx, c.cfg.Stream, cfg)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("stream: consumer %s on %s: %w", durable, c.cfg.Stream, err)
	}
	// The consumer gets a NATS connection of its own: its pull requests,
	// deliveries and acks then travel beside ingest's publishes and
	// PubAcks rather than through the same client read loop and server
	// goroutine, where every envelope the worker handled sat in front of
	// some PubAck an SDK was waiting for. Its acks are confirmed (and, on
	// Close, drained) on that connection.
	nc, js, err := c.dial(ctx, "relay-worker", slog.LevelDebug)
	if err != nil {
		return nil, fmt.Errorf("stream: consumer %s: own connection: %w", durable, err)
	}
	c.consMu.Lock()
	if c.closing.Load() {
		c.consMu.Unlock()
		nc.Close()
		return nil, fmt.Errorf("stream: consumer %s: connection closing: %w", durable, ErrUnavailable)
	}
	c.consConns = append(c.consConns, nc)
	c.consMu.Unlock()
	if cons, err = js.Consumer(ctx, c.cfg.Stream, durable); err != nil {
		return nil, fmt.Errorf("stream: consumer %s on %s: %w", durable, c.cfg.Stream, err)
	}
	k := &Consumer{c: c, cons: cons, name: durable, waiter: make(chan struct{}, 1)}
	if c.rec != nil {
		k.acks = &ackConfirmer{nc: nc, rec: c.rec}
	}
	return k, nil
}

// declareConsumer checks (on someone else's server) and creates or updates
// the durable consumer, retrying for as long as ctx allows while the
// JetStream API does not answer: a worker that starts, or restarts, while
// its cluster is electing a consumer leader (a node just died) must wait
// for the election rather than exit. A refusal — an unsafe existing
// consumer, a rejected configuration — is returned at once.
func (c *Conn) declareConsumer(ctx context.Context, durable string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	var cons jetstream.Consumer
	attempts, err := c.untilAnswered(ctx, consumerDeclareRetries, func(err error) {
		c.log.Warn("jetstream consumer not available yet (a cluster electing a leader, or the server restarting); retrying until it answers",
			"consumer", durable, "stream", c.cfg.Stream, "err", err)
	}, func(ctx context.Context) error {
		if c.srv == nil {
			// Someone else's server: an existing consumer that could strand
			// or skip an envelope is refused rather than rewritten.
			if err := c.checkExternalConsumer(ctx, durable); err != nil {
				return err
			}
		}
		var err error
		cons, err = c.js.CreateOrUpdateConsumer(ctx, c.cfg.Stream, cfg)
		return err
	})
	if err != nil {
		return nil, err
	}
	if attempts > 1 {
		c.log.Info("jetstream consumer ready", "consumer", durable, "attempts", attempts)
	}
	return cons, nil
}

// consumerDeclareRetries counts attempts to declare the consumer that the
// JetStream API did not answer and that were tried again.
var consumerDeclareRetries = metrics.NewCounter(`relay_stream_consumer_declare_retries_total`)

// consumerStateReset counts damaged consumer states set aside (not a drop:
// the messages stay in the stream and are delivered again).
var consumerStateReset = metrics.NewCounter(`relay_stream_consumer_state_reset_total`)

// isConsumerStoreErr: the server failed to create the consumer's store,
// which on an existing durable means its state file did not load.
func isConsumerStoreErr(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeConsumerCreate &&
		strings.Contains(apiErr.Description, "error creating store")
}

// setAsideConsumerState renames the durable's state file (nats-server's
// layout: <stream dir>/obs/<durable>/o.dat) so the next create starts empty.
// It returns the new name, or "" when there was no state file to move.
func (c *Conn) setAsideConsumerState(durable string) (string, error) {
	if strings.ContainsAny(durable, "/\\.") || durable == "" {
		return "", fmt.Errorf("durable name %q is not a plain name", durable)
	}
	dir := filepath.Join(c.cfg.StoreDir, server.JetStreamStoreDir, server.DEFAULT_GLOBAL_ACCOUNT, "streams", c.cfg.Stream, "obs", durable)
	from := filepath.Join(dir, "o.dat")
	to := fmt.Sprintf("%s.damaged-%d", from, time.Now().Unix())
	if err := os.Rename(from, to); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", err
	}
	return to, nil
}

// Fetch returns up to max messages. When some are waiting it returns at once
// with what is there; otherwise it blocks until one arrives, the server ends
// its pull request (Config.FetchWait after the server got it, so about
// FetchWait plus a round trip), or ctx ends. An expiry returns no
// deliveries and a nil error; ctx ending returns ctx's error (wrapped).
// Only ctx ending abandons a pull request the server still holds. Undecodable messages are not returned
// (see undecodableDelay), so a call may also return fewer than were fetched.
// max counts stream messages: a group (group.go) is returned as one Delivery
// per member, adjacent and in order, so a call may return more Deliveries
// than max (at most max × MaxGroupMembers). A group whose framing or any
// member does not decode is one undecodable message.
//
// On an empty stream only one goroutine per Consumer waits on the server at
// a time; the others queue for that turn (at most FetchWait, then they
// return nothing, as an expired pull would). The one whose message arrives
// lingers (Config.FetchLinger) for more before it returns, still holding
// the turn, so at low load a batch of envelopes costs one pull request and
// one wake-up instead of one each, and the server tracks one waiting
// request instead of one per worker goroutine.
//
// Every returned Delivery must be acked, nak'ed, or left to expire (then it is
// redelivered after AckWait).
func (k *Consumer) Fetch(ctx context.Context, n int) ([]*Delivery, error) {
	n = min(max(n, 1), MaxAckPending)
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("stream: fetch %s: %w", k.name, err)
	}
	// Fast path under load: whatever is ready now, without a server-side
	// wait.
	if out, done, err := k.takeReady(ctx, n, start); done {
		return out, err
	}
	// Nothing ready: wait for the turn to wait on the server.
	turn := time.NewTimer(k.c.cfg.FetchWait)
	select {
	case k.waiter <- struct{}{}:
		turn.Stop()
	case <-turn.C:
		return nil, nil
	case <-ctx.Done():
		turn.Stop()
		return nil, fmt.Errorf("stream: fetch %s: %w", k.name, ctx.Err())
	}
	defer func() { <-k.waiter }()
	// The goroutine before may have left messages behind (its message
	// showed more pending).
	if out, done, err := k.takeReady(ctx, n, start); done {
		return out, err
	}
	// A pull request for one message that waits on the server. One, not n:
	// a request for n would wait until n arrived.
	//
	// The wait ends on the server's word, not on a client-side clock: the
	// request expires on the server after FetchWait (counted from when the
	// server got it), which answers 408, and only that answer (or a
	// message) ends nats.go's wait. A client-side deadline (FetchContext
	// with a timeout) would let the client stop listening while the
	// server's request — which started later, by the request's transit
	// and the server's queue — was still live: a message the server hands
	// it in that window goes to an inbox nobody reads and stays un-acked,
	// lost to every worker for a whole AckWait (30 s by default). The
	// client keeps listening up to FetchWait + 1 s (nats.go's own bound),
	// so only a server answer more than a second late can still strand a
	// message. Cost: an empty Fetch lasts FetchWait plus a round trip.
	batch, err := k.cons.Fetch(1, jetstream.FetchMaxWait(k.c.cfg.FetchWait))
	var out []*Delivery
	if err == nil {
		out, err = k.collect(ctx.Done(), batch, nil)
	}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		// Only ctx ending (a shutdown) abandons a live pull request; a
		// message the server hands it before it expires comes back after
		// AckWait.
		return nil, fmt.Errorf("stream: fetch %s: %w", k.name, ctx.Err())
	default:
		err = fmt.Errorf("stream: fetch %s: %w: %w", k.name, ErrUnavailable, err)
		k.c.noteUnavailable(ctx, "fetch", start, err)
		return nil, err
	}
	if len(out) == 0 || n == 1 {
		return out, nil
	}
	if k.drained.Load() {
		// It came alone to an empty stream: linger for company. A top-up
		// right away would come back empty.
		if k.c.cfg.FetchLinger <= 0 {
			return out, nil
		}
		t := time.NewTimer(k.c.cfg.FetchLinger)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return out, nil // ours now: the caller settles them
		}
	}
	// Top the batch up with whatever else is ready. n-1, not n-len(out):
	// n counts stream messages, and the one that came may be a group of
	// many Deliveries.
	more, err := k.fetchNoWait(n-1, out)
	if err != nil {
		k.c.log.Debug("fetch: topping up batch", "consumer", k.name, "err", err)
		k.c.noteUnavailable(ctx, "fetch", start, err)
		return out, nil // the error shows again on the next Fetch
	}
	return more, nil
}

// takeReady is Fetch's path under load: a no-wait pull for what is ready
// now. It is skipped while the last fetch saw the stream drained (it would
// only come back empty), and marks the stream drained when it does. done
// reports that Fetch should return out and err.
func (k *Consumer) takeReady(ctx context.Context, n int, start time.Time) (out []*Delivery, done bool, err error) {
	if k.drained.Load() {
		return nil, false, nil
	}
	out, err = k.fetchNoWait(n, nil)
	if err != nil {
		k.c.noteUnavailable(ctx, "fetch", start, err)
		return out, true, err
	}
	if len(out) > 0 {
		return out, true, nil
	}
	k.drained.Store(true)
	return nil, false, nil
}

func (k *Consumer) fetchNoWait(n int, out []*Delivery) ([]*Delivery, error) {
	batch, err := k.cons.FetchNoWait(n)
	if err == nil {
		// Not cancellable: the server answers a no-wait request at once.
		out, err = k.collect(nil, batch, out)
	}
	if err != nil {
		return out, fmt.Errorf("stream: fetch %s: %w: %w", k.name, ErrUnavailable, err)
	}
	return out, nil
}

// collect drains a batch into out. If the batch ends in an error after some
// messages arrived, those are returned and the error is logged: they are
// ours now (un-acked), and dropping them would only delay them by AckWait.
// The error is returned only when no message came. done closing (nil:
// never) stops the wait: what arrived is returned, with errFetchAbandoned
// when nothing did.
func (k *Consumer) collect(done <-chan struct{}, batch jetstream.MessageBatch, out []*Delivery) ([]*Delivery, error) {
	got := 0
	msgs := batch.Messages()
	for {
		var msg jetstream.Msg
		select {
		case m, ok := <-msgs:
			if !ok {
				return k.batchEnd(batch, got, out)
			}
			msg = m
		case <-done:
			if got > 0 {
				return out, nil
			}
			return out, errFetchAbandoned
		}
		got++
		d := &Delivery{msg: msg, rec: k.c.rec, conn: k.c, acks: k.acks}
		meta, err := msg.Metadata()
		if err != nil {
			// Not a JetStream delivery (cannot happen on a pull consumer's
			// inbox); leave it to AckWait rather than guess.
			k.c.log.Error("fetch: message without JetStream metadata", "consumer", k.name, "subject", msg.Subject(), "err", err)
			continue
		}
		d.meta = *meta
		k.drained.Store(meta.NumPending == 0)
		if IsGroup(msg.Data()) {
			// One Delivery per member; the group is acked once all are
			// settled (groupconsume.go).
			var err error
			if out, err = k.expand(d, out); err != nil {
				k.undecodable(d, err)
			}
			continue
		}
		if err := d.Msg.UnmarshalBinary(msg.Data()); err != nil {
			k.undecodable(d, err)
			continue
		}
		out = append(out, d)
	}
}

// errFetchAbandoned: the caller stopped waiting before the batch ended.
var errFetchAbandoned = errors.New("fetch abandoned")

// batchEnd is collect's answer once the batch ended: the deliveries, or
// the batch's error when none came.
func (k *Consumer) batchEnd(batch jetstream.MessageBatch, got int, out []*Delivery) ([]*Delivery, error) {
	if err := batch.Error(); err != nil {
		if got > 0 {
			// The messages that came are ours; the error is the stream
			// going away, which availability logs once for the process.
			k.c.log.Debug("fetch: batch ended with an error", "consumer", k.name, "received", got, "err", err)
			k.c.avail.failed("fetch", time.Now(), err)
			return out, nil
		}
		return out, err
	}
	return out, nil
}

func (k *Consumer) undecodable(d *Delivery, err error) {
	if errors.Is(err, ErrMessageVersion) {
		undecodableVersion.Inc()
	} else {
		undecodableCorrupt.Inc()
	}
	k.c.log.Error("fetch: undecodable message left in the stream", "consumer", k.name, "subject", d.msg.Subject(),
		"stream_seq", d.meta.Sequence.Stream, "deliveries", d.meta.NumDelivered, "retry_in", undecodableDelay, "err", err)
	if nerr := d.msg.NakWithDelay(undecodableDelay); nerr != nil {
		k.c.log.Warn("fetch: nak undecodable message", "stream_seq", d.meta.Sequence.Stream, "err", nerr)
	}
}

// Delivery is one fetched Message: a lone stream message, or one member of
// a group (group.go). Msg.Envelope aliases the received buffer, which
// nobody else uses.
//
// A member is settled by Ack or AckNoWait (its fate is decided and durable
// elsewhere) or by Nak, which re-publishes the member alone; the group's
// stream message is acked only when its last member was settled, and Nak'd
// whole (a duplicate of every member already settled, never a loss) when a
// member's re-publish failed. Each member must be settled exactly once; a
// second settlement returns an error and changes nothing. Sequence and
// NumDelivered are the group's, MsgID and Raw the member's own.
type Delivery struct {
	Msg  Message
	msg  jetstream.Msg
	meta jetstream.MsgMetadata
	rec  *seqRecord    // nil when the start-up loss check is off
	conn *Conn         // for its availability (availability.go)
	acks *ackConfirmer // settles AckNoWait in rec; nil with rec

	// For a member of a group only (grp != nil): the shared state, the
	// member's own version-1 bytes (aliasing the group's buffer), its
	// index, and whether it was settled (guarded by grp.mu).
	grp     *groupState
	raw     []byte
	member  int
	settled bool
}

// Ack tells JetStream the message is done with and waits for the server's
// confirmation (a double ack): after a nil return the message will not be
// redelivered. An error (it wraps ErrUnavailable) means it may be
// redelivered (a duplicate, never a loss).
//
// On a member of a group, Ack settles the member; only the last member's
// Ack sends the group's double ack (and waits for it). A nil return from an
// earlier member means settled: the member still comes back, as a
// duplicate, if another member's Nak could not re-publish it.
func (d *Delivery) Ack(ctx context.Context) error {
	if d.grp != nil {
		return d.grp.finish(ctx, true, d, false, 0)
	}
	// Noted in the start-up loss record before it is sent and when it is
	// answered, so a kill in between is told apart at the next start
	// (record.go).
	d.rec.acking(d.meta.Sequence.Stream)
	start := time.Now()
	if err := d.msg.DoubleAck(ctx); err != nil {
		d.rec.undo(d.meta.Sequence.Stream)
		err = fmt.Errorf("stream: ack seq %d: %w: %w", d.meta.Sequence.Stream, ErrUnavailable, err)
		if d.conn != nil {
			d.conn.noteUnavailable(ctx, "ack", start, err)
		}
		return err
	}
	d.rec.acked(d.meta.Sequence.Stream)
	return nil
}

// Nak asks for redelivery after delay (at once when delay <= 0).
//
// On a member of a group, Nak re-publishes the member alone (waiting for
// its PubAck, at most republishTimeout) under the Nats-Msg-Id MsgID returns,
// so a group delivered again re-publishes under the same id and JetStream
// stores one copy; the copy is delivered at once, and delay applies only
// when that copy is Nak'd in its turn. If the re-publish fails the member
// is settled as failed and the group is Nak'd, with the longest delay asked,
// once its last member is settled: it comes back whole.
func (d *Delivery) Nak(delay time.Duration) error {
	if d.grp != nil {
		return d.grp.nakMember(d, delay)
	}
	var err error
	if delay > 0 {
		err = d.msg.NakWithDelay(delay)
	} else {
		err = d.msg.Nak()
	}
	if err != nil {
		return fmt.Errorf("stream: nak seq %d: %w: %w", d.meta.Sequence.Stream, ErrUnavailable, err)
	}
	return nil
}

// InProgress resets the AckWait timer: a worker still retrying the upstream
// calls it at least every AckWait/2 so the message is not redelivered to
// another worker meanwhile. On a member it extends the whole group, at most
// once per AckWait/10 for all members together.
func (d *Delivery) InProgress() error {
	if d.grp != nil {
		return d.grp.inProgress()
	}
	if err := d.msg.InProgress(); err != nil {
		return fmt.Errorf("stream: in-progress seq %d: %w: %w", d.meta.Sequence.Stream, ErrUnavailable, err)
	}
	return nil
}

// NumDelivered is how many times this message has been delivered, this one
// included (1 on the first delivery).
func (d *Delivery) NumDelivered() uint64 { return d.meta.NumDelivered }

// Sequence is the message's stream sequence (for logs).
func (d *Delivery) Sequence() uint64 { return d.meta.Sequence.Stream }

// MsgID is the Nats-Msg-Id the message was published with; for a member of
// a group, "<group's id>/<member index>" (the group's id is "g<stream
// sequence>" when it had none), the id Nak re-publishes it under.
func (d *Delivery) MsgID() string {
	if d.grp != nil {
		return d.grp.id + "/" + strconv.Itoa(d.member)
	}
	return d.msg.Headers().Get(jetstream.MsgIDHeader)
}

// Member is the index of this Delivery in its group, and the group's size;
// -1 and 0 for a lone message (for logs).
func (d *Delivery) Member() (index, of int) {
	if d.grp != nil {
		return d.member, d.grp.n
	}
	return -1, 0
}

// Raw is the encoded Message as stored (what MarshalBinary produced), e.g. for
// the spool, which keeps encoded messages and can skip re-encoding; for a
// member of a group, the member's own version-1 encoding. It aliases
// Msg.Envelope's buffer: do not modify it.
func (d *Delivery) Raw() []byte {
	if d.grp != nil {
		return d.raw
	}
	return d.msg.Data()
}

// checkExternalConsumer refuses an existing durable on an external server
// whose settings break the workers' contract, naming each:
//   - max_deliver > 0: a message delivered that often is never offered
//     again and stays in the stream unforwarded;
//   - replicas (when set) below jetstream.replicas: the consumer's state
//     would not survive the nodes the stream survives, and the workers stall.
//
// The ack policy needs no check here: on a work-queue stream (which
// checkExternalStream insists on) nats-server itself allows explicit acks
// only. A missing consumer is fine: Consumer creates it.
func (c *Conn) checkExternalConsumer(ctx context.Context, durable string) error {
	cons, err := c.js.Consumer(ctx, c.cfg.Stream, durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream: look up consumer %s on %s: %w: %w", durable, c.cfg.Stream, ErrUnavailable, err)
	}
	have := cons.CachedInfo().Config
	var bad []string
	if have.MaxDeliver > 0 {
		bad = append(bad, fmt.Sprintf("max_deliver %d (want -1: a message delivered that often is never offered again and is not forwarded)", have.MaxDeliver))
	}
	if have.Replicas > 0 && have.Replicas < c.cfg.Replicas {
		bad = append(bad, fmt.Sprintf("replicas %d (want at least jetstream.replicas, %d)", have.Replicas, c.cfg.Replicas))
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("stream: existing consumer %s on stream %s has settings that break the relay's guarantees: %s; "+
		"refusing to use it — change them on the NATS server or delete the consumer so the relay creates it",
		durable, c.cfg.Stream, strings.Join(bad, "; "))
}

// Backlog returns how many messages wait for the workers: not yet delivered
// plus delivered and not yet acked. One consumer info request.
func (k *Consumer) Backlog(ctx context.Context) (uint64, error) {
	info, err := k.cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream: consumer %s info: %w", k.name, err)
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}
