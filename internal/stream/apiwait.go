package stream

import (
	"context"
	"errors"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Waiting for the JetStream API at start-up.
//
// A relay that starts, or restarts, while its NATS cluster is re-forming
// (a node just died or came back, a leader is being elected) must wait for
// the API rather than exit: an orchestrator would only restart it into the
// same election. So the requests made to declare the stream and the
// consumer are tried again for as long as the caller's ctx allows when the
// API did not answer them, while an answer — including a refusal, a
// "not found" — ends the wait at once.

// Bounds of the wait between two attempts.
const (
	apiRetryMin = 250 * time.Millisecond
	apiRetryMax = 5 * time.Second
)

// apiAttemptTimeout bounds one attempt. A request the API took and never
// answered (sent to a node as it went away) is tried again after it
// instead of waiting out the whole start-up timeout: CI saw a restarted
// worker wait 60 s on one such stream lookup and exit.
const apiAttemptTimeout = 5 * time.Second

// untilAnswered runs op, with a ctx bounded by apiAttemptTimeout, until it
// returns nil, an error that is an answer (apiUnanswered is false), or ctx
// ends. Each attempt tried again is counted in retries; notYet is called
// once, with the first attempt's error. It returns how many attempts ran.
func (c *Conn) untilAnswered(ctx context.Context, retries *metrics.Counter, notYet func(error), op func(context.Context) error) (int, error) {
	delay := apiRetryMin
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, apiAttemptTimeout)
		err := op(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !apiUnanswered(err) {
			return attempt, err
		}
		retries.Inc()
		if attempt == 1 {
			notYet(err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt, err
		case <-t.C:
		}
		delay = min(2*delay, apiRetryMax)
	}
}

// apiUnanswered reports whether err means the JetStream API did not answer
// (yet) — the request timed out, nobody was there to take it, the
// connection was away, or the server said 503 (no leader, JetStream
// restarting) — rather than that it answered no.
func apiUnanswered(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
}
