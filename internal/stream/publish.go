package stream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Publish outcomes. Every failed Publish is counted once, by the error it
// wraps; ingest turns each into a non-200 (nothing is dropped here).
var (
	publishRetries        = metrics.NewCounter(`relay_stream_publish_retries_total`)
	publishFailedFull     = metrics.NewCounter(`relay_stream_publish_failed_total{reason="full"}`)
	publishFailedTooLarge = metrics.NewCounter(`relay_stream_publish_failed_total{reason="too_large"}`)
	publishFailedUnavail  = metrics.NewCounter(`relay_stream_publish_failed_total{reason="unavailable"}`)
)

// Server error codes (nats-server's errors.json) that Publish classifies.
const (
	jsErrStoreFailed          = 10077 // {err}: "maximum bytes exceeded", "message too large", I/O…
	jsErrStorageExceeded      = 10047 // insufficient storage resources available
	jsErrInsufficientResource = 10023 // insufficient resources
	jsErrMessageTooBig        = 10054 // message size exceeds maximum allowed
)

const (
	retryMinWait = 5 * time.Millisecond
	retryMaxWait = 500 * time.Millisecond
)

// Publish stores m on the stream and returns only once JetStream has
// acknowledged it (PubAck): after a nil return the message survives a crash
// of this process (and a power loss with Sync "always").
//
// msgID becomes the Nats-Msg-Id header: JetStream stores a message with an ID
// it has seen in the last DuplicateWindow only once, so a publish that timed
// out or found no responder is retried here with the same ID until it is
// acknowledged or ctx ends. A caller that retries on its own must pass the
// same msgID too. An empty msgID gets a random one (internal retries are
// still deduplicated).
//
// Errors wrap ErrFull, ErrTooLarge or ErrUnavailable (the last also wraps the
// ctx error when ctx ended first), except an encoding error for an invalid
// Message.
//
// Many goroutines may publish at once: each publish is sent asynchronously on
// the shared connection and waits for its own PubAck, so concurrent callers
// share round trips (and, with Sync "always", fsyncs) instead of queueing
// behind each other. At most Config.MaxPending wait at once; the rest wait for
// a slot within their ctx.
func (c *Conn) Publish(ctx context.Context, m *Message, msgID string) error {
	// Counted before the closing check, so Close either sees this publish
	// and waits for it, or this publish sees Close and stops.
	c.inflight.Add(1)
	defer c.inflight.Add(-1)
	if c.closing.Load() {
		publishFailedUnavail.Inc()
		return fmt.Errorf("stream: publish: connection closing: %w", ErrUnavailable)
	}
	if err := c.downErr(); err != nil {
		// The store is known broken (storewatch.go): say so now rather
		// than after a publish timeout nobody will answer.
		return c.refuseDown(err)
	}
	data, err := m.MarshalBinary()
	if err != nil {
		return fmt.Errorf("stream: publish: %w", err)
	}
	return c.publishData(ctx, c.Subject(m.ProjectID), data, msgID)
}

// PublishGroup stores ms as one stream message (a group, group.go) and
// returns only once JetStream acknowledged it: after a nil return every
// member survives a crash, as after Publish. All of ms must be for one
// project. One Message is published alone, in version 1. The rest is as
// Publish: msgID deduplicates retries, errors wrap the same sentinels, and a
// failure means none of ms may be promised (the group is stored whole or
// not at all).
func (c *Conn) PublishGroup(ctx context.Context, ms []*Message, msgID string) error {
	if len(ms) == 1 {
		return c.Publish(ctx, ms[0], msgID)
	}
	c.inflight.Add(1)
	defer c.inflight.Add(-1)
	if c.closing.Load() {
		publishFailedUnavail.Inc()
		return fmt.Errorf("stream: publish group: connection closing: %w", ErrUnavailable)
	}
	if err := c.downErr(); err != nil {
		return c.refuseDown(err)
	}
	data, err := AppendGroup(nil, ms)
	if err != nil {
		return fmt.Errorf("stream: publish: %w", err)
	}
	return c.publishData(ctx, c.Subject(ms[0].ProjectID), data, msgID)
}

// publishData publishes one encoded stream message (a Message or a group)
// on subject; the caller counted itself in c.inflight.
func (c *Conn) publishData(ctx context.Context, subject string, data []byte, msgID string) error {
	if msgID == "" {
		msgID = nuid.Next()
	}
	if over := int64(len(data)+len(msgID)) + 64 - c.nc.MaxPayload(); over > 0 || int64(len(data)) > c.MaxPayload() {
		publishFailedTooLarge.Inc()
		return fmt.Errorf("stream: publish %s: %d bytes, limit %d: %w", subject, len(data), c.MaxPayload(), ErrTooLarge)
	}
	// One nats.Msg for every attempt: the library only reads it, and a
	// retry must carry the same Nats-Msg-Id.
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{msgID}}}
	wait := retryMinWait
	for attempt := 1; ; attempt++ {
		start := time.Now()
		ack, err := c.publishOnce(ctx, msg)
		if err == nil {
			c.rec.published(ack)
		}
		if err == nil && c.syncer != nil {
			if err = c.syncer.wait(ctx); err != nil {
				// Stored but not known durable: the caller must not promise
				// it. Not retried: a retry would wait on the same fsync.
				publishFailedUnavail.Inc()
				return fmt.Errorf("stream: publish %s: waiting for fsync: %w: %w", subject, ErrUnavailable, err)
			}
		}
		if err == nil {
			return nil
		}
		kind, retry := classifyPublishError(err)
		if c.closing.Load() || c.nc.IsClosed() {
			// Closed under us: some errors of a closed connection look
			// transient (wrapped as text by the library), but none will pass.
			kind, retry = ErrUnavailable, false
		}
		if !retry || ctx.Err() != nil {
			switch kind {
			case ErrFull:
				publishFailedFull.Inc()
				c.noteFull()
			case ErrTooLarge:
				publishFailedTooLarge.Inc()
			default:
				publishFailedUnavail.Inc()
				c.noteUnavailable(ctx, "publish", start, err)
			}
			if errors.Is(err, kind) { // already wrapped (ctx path)
				return fmt.Errorf("stream: publish %s (attempt %d): %w", subject, attempt, err)
			}
			return fmt.Errorf("stream: publish %s (attempt %d): %w: %w", subject, attempt, kind, err)
		}
		if derr := c.downErr(); derr != nil {
			return c.refuseDown(derr)
		}
		publishRetries.Inc()
		if kind == ErrUnavailable {
			c.noteUnavailable(ctx, "publish", start, err)
		}
		c.log.Debug("publish retry", "subject", subject, "attempt", attempt, "err", err)
		// Jittered, doubling wait: a restarting server is not hammered by
		// every handler at once.
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			publishFailedUnavail.Inc()
			return fmt.Errorf("stream: publish %s (attempt %d, last error %v): %w: %w", subject, attempt, err, ErrUnavailable, ctx.Err())
		}
		wait = min(2*wait, retryMaxWait)
	}
}

// refuseDown fails a publish because the store cannot take writes.
func (c *Conn) refuseDown(err error) error {
	publishRefusedStoreDown.Inc()
	if errors.Is(err, ErrFull) {
		publishFailedFull.Inc()
	} else {
		publishFailedUnavail.Inc()
	}
	return fmt.Errorf("stream: publish: %w", err)
}

// noteFull records the stream's size after an ErrFull, for Ready. It costs
// a stream info round trip on the failure path; while one runs, concurrent
// failures skip it (a full stream fails many publishes at once, and one size
// is enough).
func (c *Conn) noteFull() {
	if !c.fullNoting.CompareAndSwap(false, true) {
		return
	}
	defer c.fullNoting.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if info, err := c.stream.Info(ctx); err == nil && info.State.Bytes > 0 {
		c.fullAtBytes.Store(int64(info.State.Bytes))
	}
}

// publishOnce stores msg once in the embedded server's stream on this
// goroutine (pubinproc.go), or, with an external server, sends it and waits
// for its PubAck, a publish error, PublishTimeout, the connection going, or
// ctx — on a reply box of its own (pubreply.go). The benchmark's comparison
// modes use the library's request/reply publish or its async publish
// instead.
func (c *Conn) publishOnce(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	select {
	case c.pubSem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a publish slot: %w: %w", ErrUnavailable, ctx.Err())
	}
	defer func() { <-c.pubSem }()
	if c.inProcess {
		ack, err := c.publishInProcess(msg)
		if !errors.Is(err, server.ErrStoreInProcessReplicated) {
			return ack, err
		}
		// The embedded server runs no cluster, so its streams are never
		// replicated; should one be, its publishes take the connection.
	}
	switch {
	case c.syncPublish:
		return c.js.PublishMsg(ctx, msg, jetstream.WithRetryAttempts(0))
	case !c.libAsyncPublish:
		return c.publishBoxed(ctx, msg)
	}
	paf, err := c.js.PublishMsgAsync(msg)
	if err != nil {
		return nil, err
	}
	select {
	case ack := <-paf.Ok():
		return ack, nil
	case err := <-paf.Err():
		return nil, err
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for PubAck: %w: %w", ErrUnavailable, ctx.Err())
	}
}

// classifyPublishError names the sentinel an error maps to and whether the
// same publish (same Nats-Msg-Id) may be tried again.
func classifyPublishError(err error) (kind error, retry bool) {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, ErrUnavailable): // ctx ended (wrapped by publishOnce)
		return ErrUnavailable, false
	case errors.As(err, &apiErr):
		switch apiErr.ErrorCode {
		case jsErrStoreFailed:
			d := strings.ToLower(apiErr.Description)
			switch {
			case strings.Contains(d, "maximum bytes exceeded"), strings.Contains(d, "maximum messages exceeded"):
				return ErrFull, false
			case strings.Contains(d, "too large"):
				return ErrTooLarge, false
			}
			return ErrUnavailable, false
		case jsErrStorageExceeded, jsErrInsufficientResource:
			return ErrFull, false
		case jsErrMessageTooBig:
			return ErrTooLarge, false
		}
		// 503s are transient server states (no leader yet, JetStream
		// restarting); anything else will not get better by itself.
		return ErrUnavailable, apiErr.Code == 503
	case errors.Is(err, nats.ErrMaxPayload):
		return ErrTooLarge, false
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining):
		return ErrUnavailable, false // we are shutting down
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ErrUnavailable, false
	}
	// Timeouts (ErrAsyncPublishTimeout), no responders (ErrNoStreamResponse,
	// nats.ErrNoResponders), a disconnect while waiting, a full pending window
	// (ErrTooManyStalledMsgs): the message may or may not be stored; sending
	// it again with the same ID is safe.
	return ErrUnavailable, true
}
