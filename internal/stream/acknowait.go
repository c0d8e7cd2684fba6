package stream

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// ackConfirmBatch is how many acks sent without waiting are confirmed by one
// round trip to the server (nats Flush: a PING answered once the server has
// read everything sent before it).
const ackConfirmBatch = 256

// ackConfirmTimeout bounds that round trip.
const ackConfirmTimeout = 5 * time.Second

// ackConfirmer settles, in the start-up loss record, the acks AckNoWait sent
// without waiting for an answer. Each is noted as started before it is sent,
// as every ack is; it is noted as done only once a later round trip showed
// that the server read it. Until then the record treats it like an ack a
// kill cut short — resolved at the next Open by whether the stream still
// holds the message — so an ack that never arrived is never taken for one
// that did. The round trip is made by the AckNoWait that fills a batch, one
// per ackConfirmBatch acks instead of one per ack.
type ackConfirmer struct {
	nc  *nats.Conn
	rec *seqRecord

	mu   sync.Mutex
	sent []uint64 // acks sent, not yet confirmed
}

func (a *ackConfirmer) add(seq uint64) {
	a.mu.Lock()
	a.sent = append(a.sent, seq)
	var batch []uint64
	if len(a.sent) >= ackConfirmBatch {
		batch, a.sent = a.sent, make([]uint64, 0, ackConfirmBatch)
	}
	a.mu.Unlock()
	if batch == nil {
		return
	}
	if err := a.nc.FlushTimeout(ackConfirmTimeout); err != nil {
		// Not confirmed: they stay started in the record (resolved at
		// the next Open, or by the next round trip that succeeds).
		a.mu.Lock()
		if len(a.sent) < 64*ackConfirmBatch { // bounded: beyond, the next Open resolves them
			a.sent = append(a.sent, batch...)
		}
		a.mu.Unlock()
		return
	}
	for _, q := range batch {
		a.rec.acked(q)
	}
}

// AckNoWait tells JetStream the message is done with, without waiting for
// the server's confirmation: it returns once the ack is on its way. Use it
// only where a lost ack is harmless — the message is then redelivered after
// AckWait (a duplicate downstream, never a loss) — which is every ack the
// worker sends, since each follows a decision already made durable
// elsewhere (the upstream's 2xx, a spool commit, a dead letter). It saves
// the round trip Ack waits for, and the server the reply.
//
// An error means the ack was not sent (the connection is closed or its
// buffer is full); the message will be redelivered.
//
// On a member of a group it settles the member; the last member's
// AckNoWait sends the group's ack (see Delivery).
func (d *Delivery) AckNoWait() error {
	if d.grp != nil {
		return d.grp.finish(context.Background(), false, d, false, 0)
	}
	seq := d.meta.Sequence.Stream
	d.rec.acking(seq)
	if err := d.msg.Ack(); err != nil {
		d.rec.undo(seq)
		return fmt.Errorf("stream: ack seq %d: %w", seq, err)
	}
	if d.acks != nil {
		d.acks.add(seq)
	}
	return nil
}
