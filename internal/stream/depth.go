package stream

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Depth is how much the stream holds and where the workers' consumer
// stands.
type Depth struct {
	Messages uint64 // stored, not yet acked by a worker
	Bytes    uint64
	// Pending: stored and not yet delivered; AckPending: delivered and not
	// yet acked (being forwarded or spooled). Both 0 while no worker has
	// declared the consumer.
	Pending    uint64
	AckPending uint64
}

// Depth asks JetStream for the stream's state and the durable consumer's
// ("" for none). It returns when ctx ends; callers bound it.
func (c *Conn) Depth(ctx context.Context, consumer string) (Depth, error) {
	var d Depth
	si, err := c.stream.Info(ctx)
	if err != nil {
		return d, fmt.Errorf("stream %s: info: %w", c.cfg.Stream, err)
	}
	d.Messages, d.Bytes = si.State.Msgs, si.State.Bytes
	if consumer == "" {
		return d, nil
	}
	cons, err := c.stream.Consumer(ctx, consumer)
	var ci *jetstream.ConsumerInfo
	if err == nil {
		ci, err = cons.Info(ctx)
	}
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return d, nil // no worker declared it yet: nothing is pending on it
	case err != nil:
		return d, fmt.Errorf("stream %s: consumer %s: info: %w", c.cfg.Stream, consumer, err)
	}
	d.Pending, d.AckPending = ci.NumPending, uint64(ci.NumAckPending)
	return d, nil
}
