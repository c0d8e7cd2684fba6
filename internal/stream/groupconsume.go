package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go/jetstream"
)

// The consumer's side of a group (group.go): Fetch expands a group into one
// Delivery per member, and the members settle the one JetStream message
// together.
//
// Invariant: the group's stream message is acked only after every member
// was settled exactly once, and only when none of them failed: a member is
// settled by an ack (its decision is durable elsewhere) or by a Nak whose
// re-publish of the member alone got its PubAck (the member is then in the
// stream on its own). A member whose re-publish failed makes the last
// settlement Nak the group instead (the longest delay asked for): every
// member comes back, the settled ones as duplicates. A second settlement of
// one member is refused, so it can never stand in for another member's.
//
// Cost: one Delivery per member (allocated together, in one slice), one
// groupState per group; no allocation for a lone message.

var (
	groupMembersRepublished = metrics.NewCounter(`relay_stream_group_members_republished_total`)
	groupRepublishFailed    = metrics.NewCounter(`relay_stream_group_republish_failed_total`)
	groupsNaked             = metrics.NewCounter(`relay_stream_groups_naked_total`)
)

// republishTimeout bounds the re-publish of one member on a Nak: the caller
// (a worker handing the member back) must not hang on a stream that does
// not answer; a failure only brings the whole group back.
const republishTimeout = 5 * time.Second

// groupState is what the members of one fetched group share: the stream
// message itself (as a lone Delivery, so the group's ack, double ack and Nak
// are exactly a lone message's, loss-record bookkeeping included) and the
// count of members not yet settled.
type groupState struct {
	whole *Delivery
	n     int           // members
	id    string        // the group's Nats-Msg-Id, or "g<seq>" when it had none
	beat  time.Duration // InProgress is sent at most once per beat for the group

	mu       sync.Mutex
	left     int           // members not yet settled
	failed   int           // members whose re-publish failed
	delay    time.Duration // the longest Nak delay of a failed member
	lastBeat time.Time
}

// expand appends one Delivery per member of the group whole (its data is a
// group) to out. On an error (bad framing, a member that does not decode)
// out is returned as it was and the caller treats the group as one
// undecodable message.
func (k *Consumer) expand(whole *Delivery, out []*Delivery) ([]*Delivery, error) {
	members, err := GroupMembers(whole.msg.Data())
	if err != nil {
		return out, err
	}
	g := &groupState{whole: whole, n: len(members), left: len(members), beat: k.c.cfg.AckWait / 10}
	if g.id = whole.msg.Headers().Get(jetstream.MsgIDHeader); g.id == "" {
		g.id = "g" + strconv.FormatUint(whole.meta.Sequence.Stream, 10)
	}
	ds := make([]Delivery, len(members))
	for i, raw := range members {
		d := &ds[i]
		if err := d.Msg.UnmarshalBinary(raw); err != nil {
			return out, fmt.Errorf("stream: decode group member %d of %d: %w", i, len(members), err)
		}
		d.msg, d.meta, d.conn = whole.msg, whole.meta, whole.conn
		d.grp, d.raw, d.member = g, raw, i
	}
	for i := range ds {
		out = append(out, &ds[i])
	}
	return out, nil
}

// settleMember marks d settled (failed: its re-publish did not happen, and
// delay is the Nak delay it asked for) and reports whether it was the last
// member and, if so, whether the group must be Nak'd and after what delay.
func (g *groupState) settleMember(d *Delivery, failed bool, delay time.Duration) (last, nak bool, nakDelay time.Duration, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d.settled {
		return false, false, 0, fmt.Errorf("stream: member %d of group seq %d settled twice", d.member, d.meta.Sequence.Stream)
	}
	d.settled = true
	g.left--
	if failed {
		g.failed++
		g.delay = max(g.delay, delay)
	}
	return g.left == 0, g.failed > 0, g.delay, nil
}

// finish settles d and, when it was the last member, acks the group — with
// a double ack bounded by ctx when wait, else without waiting — or Naks it
// when a member failed.
func (g *groupState) finish(ctx context.Context, wait bool, d *Delivery, failed bool, delay time.Duration) error {
	last, nak, nakDelay, err := g.settleMember(d, failed, delay)
	if err != nil || !last {
		return err
	}
	if nak {
		groupsNaked.Inc()
		if d.conn != nil {
			d.conn.log.Warn("group handed back whole: some members could not be re-published alone (the others come back as duplicates)",
				"stream_seq", d.meta.Sequence.Stream, "members", g.n, "failed", g.failed, "retry_in", nakDelay)
		}
		if err := g.whole.Nak(nakDelay); err != nil {
			return fmt.Errorf("stream: group seq %d: %w", d.meta.Sequence.Stream, err)
		}
		return nil
	}
	if wait {
		return g.whole.Ack(ctx)
	}
	return g.whole.AckNoWait()
}

// nakMember re-publishes member d alone under a deterministic Nats-Msg-Id
// (MsgID: the group's id and the member's index), so a group delivered
// again re-publishes the same id and JetStream keeps one copy within
// DuplicateWindow. A PubAck settles d: the member now waits in the stream by
// itself, and the delay it asked for is applied when that copy is Nak'd on
// its next delivery. A failure settles d as failed: the group comes back
// whole once every member is settled.
func (g *groupState) nakMember(d *Delivery, delay time.Duration) error {
	g.mu.Lock()
	settled := d.settled
	g.mu.Unlock()
	if settled {
		return fmt.Errorf("stream: member %d of group seq %d settled twice", d.member, d.meta.Sequence.Stream)
	}
	ctx, cancel := context.WithTimeout(context.Background(), republishTimeout)
	err := d.conn.republish(ctx, d.msg.Subject(), d.raw, d.MsgID())
	cancel()
	if err != nil {
		groupRepublishFailed.Inc()
		ferr := g.finish(context.Background(), false, d, true, delay)
		return fmt.Errorf("stream: nak member %d of group seq %d: re-publishing it alone failed, so the group comes back whole: %w",
			d.member, d.meta.Sequence.Stream, errors.Join(err, ferr))
	}
	groupMembersRepublished.Inc()
	// The member's copy is durable (PubAck): acking the group without
	// waiting is the ack rule's case.
	return g.finish(context.Background(), false, d, false, 0)
}

// inProgress extends the group's AckWait, at most once per beat: every
// member's heartbeat would otherwise send one per member.
func (g *groupState) inProgress() error {
	g.mu.Lock()
	now := time.Now()
	if !g.lastBeat.IsZero() && now.Sub(g.lastBeat) < g.beat {
		g.mu.Unlock()
		return nil
	}
	g.lastBeat = now
	g.mu.Unlock()
	return g.whole.InProgress()
}

// republish stores one member's version-1 encoding by itself, through the
// same path as Publish (PubAck, loss record, retries with msgID).
func (c *Conn) republish(ctx context.Context, subject string, data []byte, msgID string) error {
	c.inflight.Add(1)
	defer c.inflight.Add(-1)
	if c.closing.Load() {
		publishFailedUnavail.Inc()
		return fmt.Errorf("stream: re-publish: connection closing: %w", ErrUnavailable)
	}
	if err := c.downErr(); err != nil {
		return c.refuseDown(err)
	}
	return c.publishData(ctx, subject, data, msgID)
}
