package stream

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go/jetstream"
)

// depthCacheTTL is how long one answer from JetStream serves scrapes: the
// gauges of a scrape share one stream info and one consumer info, and a
// scraper polling every second costs the server one pair of requests.
const depthCacheTTL = time.Second

// depthTimeout bounds the info requests of a scrape, so a stuck server makes
// the gauges NaN instead of hanging the scrape.
const depthTimeout = 2 * time.Second

var depthErrors = metrics.NewCounter(`relay_stream_info_errors_total`)

// depth is one reading of the stream and the worker consumer.
type depth struct {
	at                   time.Time
	streamOK, consumerOK bool
	messages, bytes      uint64
	firstTime            time.Time
	pending, ackPending  uint64
	redelivered, waiting int
}

// depthGauges reads stream and consumer info for the gauges, at most once
// per depthCacheTTL however many gauges or scrapes ask.
type depthGauges struct {
	c        *Conn
	consumer string
	now      func() time.Time

	mu   sync.Mutex // held across the refresh: concurrent scrapes share it
	last depth
}

func (g *depthGauges) get() depth {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if !g.last.at.IsZero() && now.Sub(g.last.at) < depthCacheTTL {
		return g.last
	}
	ctx, cancel := context.WithTimeout(context.Background(), depthTimeout)
	defer cancel()
	d := depth{at: now}
	if si, err := g.c.stream.Info(ctx); err == nil {
		d.streamOK = true
		d.messages, d.bytes, d.firstTime = si.State.Msgs, si.State.Bytes, si.State.FirstTime
	} else {
		depthErrors.Inc()
	}
	if g.consumer != "" {
		ci, err := g.c.stream.Consumer(ctx, g.consumer)
		var info *jetstream.ConsumerInfo
		if err == nil {
			info, err = ci.Info(ctx)
		}
		switch {
		case err == nil:
			d.consumerOK = true
			d.pending, d.ackPending = info.NumPending, uint64(info.NumAckPending)
			d.redelivered, d.waiting = info.NumRedelivered, info.NumWaiting
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			// No worker has declared it yet (an ingest-only relay before the
			// workers start): nothing is pending on it.
			d.consumerOK = true
		default:
			depthErrors.Inc()
		}
	}
	g.last = d
	return d
}

func (g *depthGauges) gauge(ok func(depth) bool, v func(depth) float64) func() float64 {
	return func() float64 {
		d := g.get()
		if !ok(d) {
			return math.NaN() // unknown, not zero: the server did not answer
		}
		return v(d)
	}
}

// MetricsSet returns gauges read from JetStream at scrape time: the stream's
// messages, bytes and oldest message age, and for the durable consumer (the
// workers' one; "" for none) the messages not yet delivered, delivered but
// not acked, and redelivered. A value the server did not answer is NaN.
// Register it with metrics.RegisterSet while the connection is open.
func (c *Conn) MetricsSet(consumer string) *metrics.Set { return c.metricsSet(consumer, time.Now) }

func (c *Conn) metricsSet(consumer string, now func() time.Time) *metrics.Set {
	g := &depthGauges{c: c, consumer: consumer, now: now}
	streamOK := func(d depth) bool { return d.streamOK }
	consOK := func(d depth) bool { return d.consumerOK }
	set := metrics.NewSet()
	set.NewGauge(`relay_stream_messages`, g.gauge(streamOK, func(d depth) float64 { return float64(d.messages) }))
	set.NewGauge(`relay_stream_bytes`, g.gauge(streamOK, func(d depth) float64 { return float64(d.bytes) }))
	set.NewGauge(`relay_stream_capacity_bytes`, func() float64 { return float64(c.cfg.MaxBytes) })
	set.NewGauge(`relay_stream_oldest_age_seconds`, g.gauge(streamOK, func(d depth) float64 {
		if d.messages == 0 || d.firstTime.IsZero() {
			return 0
		}
		return max(0, d.at.Sub(d.firstTime).Seconds())
	}))
	set.NewGauge(`relay_stream_consumer_pending_messages`, g.gauge(consOK, func(d depth) float64 { return float64(d.pending) }))
	set.NewGauge(`relay_stream_consumer_ack_pending_messages`, g.gauge(consOK, func(d depth) float64 { return float64(d.ackPending) }))
	set.NewGauge(`relay_stream_consumer_redelivered_messages`, g.gauge(consOK, func(d depth) float64 { return float64(d.redelivered) }))
	return set
}
