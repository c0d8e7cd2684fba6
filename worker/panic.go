package worker

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/spool"
)

// A panic while handling one envelope — in a stage, the scrubber, the
// send — is a bug that this envelope triggers. It must not take the process
// down: the stream redelivers an un-acked message without limit
// (MaxDeliver is unlimited, so that nothing is ever dropped for being
// redelivered), and the relay would crash-loop on it. Instead the panic is
// recovered per envelope, logged once with the event id and the stack,
// counted, and the envelope is moved to the dead letters with the reason —
// kept for an operator, never forwarded half-processed, never retried.
var (
	panicsStream = metrics.NewCounter(`relay_worker_panics_total{source="stream"}`)
	panicsDrain  = metrics.NewCounter(`relay_worker_panics_total{source="drain"}`)
	droppedPanic = metrics.NewCounter(`relay_worker_dropped_total{reason="panic"}`)
)

// maxPanicReason bounds the panic text kept in a dead letter's reason.
const maxPanicReason = 200

// catch runs fn and returns the value it panicked with (nil when it did
// not) and the stack at the panic.
func catch(fn func()) (p any, stack []byte) {
	defer func() {
		if p = recover(); p != nil {
			stack = debug.Stack()
		}
	}()
	fn()
	return nil, nil
}

func panicReason(p any) string {
	s := fmt.Sprint(p)
	if len(s) > maxPanicReason {
		s = s[:maxPanicReason] + "…"
	}
	return "panic: " + s
}

// handlePanic disposes of a stream delivery whose handling panicked. The
// dead letter gets the message as it was published (d.Raw): a stage that
// panicked may have left it half rewritten. If the delivery was already
// released (the panic came after its ack or Nak) there is nothing to decide.
func (w *Worker) handlePanic(ctx context.Context, d *stream.Delivery, p any, stack []byte) {
	panicsStream.Inc()
	member, _ := d.Member() // -1 for a lone message; else its index in the group at stream_seq
	w.log.Error("panic while handling an envelope: moved to the dead letters", "event_id", d.Msg.EventID,
		"project", d.Msg.ProjectID, "stream_seq", d.Sequence(), "group_member", member, "panic", fmt.Sprint(p), "stack", string(stack))
	if !w.held.holds(d) {
		return
	}
	w.dispose(ctx, d, w.buryData(ctx, d.Raw(), d.Msg.EventID, panicReason(p), droppedPanic))
}

// drainPanic disposes of a spool record whose sending panicked.
func (w *Worker) drainPanic(ctx context.Context, rec spool.Record, p any, stack []byte) (drainOutcome, time.Duration) {
	panicsDrain.Inc()
	var m stream.Message
	_ = m.UnmarshalBinary(rec.Data) // for the event id in the log only; it decoded before the panic
	w.log.Error("panic while draining a spooled envelope: moved to the dead letters", "event_id", m.EventID,
		"project", m.ProjectID, "record", rec.ID, "panic", fmt.Sprint(p), "stack", string(stack))
	return w.drainDisposal(w.buryData(ctx, rec.Data, m.EventID, panicReason(p), droppedPanic))
}
