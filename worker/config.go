package worker

import (
	"errors"
	"fmt"
	"time"
)

// Defaults used by Config.withDefaults for fields left zero. The retry and
// outage figures are Relay's (http.retry_delay, http.max_retry_interval,
// http.outage_grace_period).
const (
	DefaultConcurrency          = 64
	DefaultFetchBatch           = 8
	DefaultRetryDelay           = time.Second
	DefaultMaxRetryInterval     = 60 * time.Second
	DefaultOutageGracePeriod    = 10 * time.Second
	DefaultAckWait              = 30 * time.Second
	DefaultDrainBatch           = 100
	DefaultBackpressureInterval = time.Second
	DefaultRetryAfter           = 60 * time.Second
	DefaultDrainPoll            = time.Second
	DefaultMaxEnvelopeDelay     = 24 * time.Hour
	DefaultMaxHeldBytes         = 8 << 20
)

// Config tunes a Worker. The zero value of every field means its default.
type Config struct {
	// Concurrency is the number of consumers and the number of envelopes
	// they send upstream at once. With an upstream answering in d, the
	// stream is forwarded at about Concurrency/d envelopes per second.
	Concurrency int
	// FetchBatch is how many messages one consumer fetches at a time. A
	// consumer handles its batch concurrently (sends still bounded by
	// Concurrency) and fetches again when all of it is done; at most
	// Concurrency × FetchBatch messages are held un-acked at once.
	FetchBatch int
	// RetryDelay is the first backoff interval after a retryable failure
	// (http.retry_delay).
	RetryDelay time.Duration
	// MaxRetryInterval caps every backoff interval, jitter included, and the
	// drainer's probe interval (http.max_retry_interval).
	MaxRetryInterval time.Duration
	// OutageGracePeriod is how long sends must fail continuously before the
	// upstream is declared in outage (http.outage_grace_period).
	OutageGracePeriod time.Duration
	// AckWait must equal the consumer's AckWait (stream.Config.AckWait): a
	// held message gets an InProgress heartbeat every AckWait/3 so JetStream
	// does not redeliver it while a consumer is still working on it.
	AckWait time.Duration
	// DrainBatch is how many spool records the drainer reads at a time
	// (OldestAfter, at most DrainBatch at a time: fewer when they are
	// large); its deletes are grouped by commit, not by read.
	DrainBatch int
	// DrainConcurrency is how many spooled envelopes the drainer sends at
	// once, on top of the consumers' Concurrency (default: Concurrency/2, at
	// least 1). 1 keeps the drain strictly oldest first; more sends in order
	// of age but may complete slightly out of it.
	DrainConcurrency int
	// BackpressureInterval is how often a consumer paused by a full spool
	// checks again.
	BackpressureInterval time.Duration
	// DefaultRetryAfter is the wait after a 429 that carries neither
	// Retry-After nor X-Sentry-Rate-Limits (the SDK rule: 60 s; Relay
	// would cache nothing and retry at once).
	DefaultRetryAfter time.Duration
	// DrainPoll is how often the idle drainer looks at the spool even when
	// no consumer told it about a new record (a safety net; a Put wakes it at
	// once).
	DrainPoll time.Duration
	// MaxEnvelopeDelay is how long an envelope may be held back by its key
	// — a 429, or a 401/403/404 — counted from when ingest accepted it
	// (stream.Message.ReceivedAt), before it goes to the dead letters
	// instead of waiting more (Relay's spool.envelopes.max_envelope_delay,
	// 24 h). An envelope without ReceivedAt has no known age and never
	// expires: keeping it is the safe side. Envelopes held by an outage (no
	// answer, 5xx) do not expire: the relay keeps them until the upstream
	// is back.
	MaxEnvelopeDelay time.Duration
	// MaxHeldBytes bounds the bytes of the stream messages the consumers
	// hold at once (fetched, not yet acked or handed back), on top of the
	// count bound Concurrency × FetchBatch: with large envelopes the count
	// alone would let memory grow with the envelope size. A message larger
	// than the budget is still handled, alone. The default, 8 MiB, never
	// binds for typical events (a few KB); it does for attachments and
	// large events. Each held byte is copied about three times more on its
	// way (the spool encoding, bbolt's pages; the compressed body).
	MaxHeldBytes int64
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	set := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.FetchBatch == 0 {
		c.FetchBatch = DefaultFetchBatch
	}
	if c.DrainBatch == 0 {
		c.DrainBatch = DefaultDrainBatch
	}
	if c.DrainConcurrency == 0 {
		c.DrainConcurrency = max(c.Concurrency/2, 1)
	}
	set(&c.RetryDelay, DefaultRetryDelay)
	set(&c.MaxRetryInterval, DefaultMaxRetryInterval)
	set(&c.OutageGracePeriod, DefaultOutageGracePeriod)
	set(&c.AckWait, DefaultAckWait)
	set(&c.BackpressureInterval, DefaultBackpressureInterval)
	set(&c.DefaultRetryAfter, DefaultRetryAfter)
	set(&c.DrainPoll, DefaultDrainPoll)
	set(&c.MaxEnvelopeDelay, DefaultMaxEnvelopeDelay)
	if c.MaxHeldBytes == 0 {
		c.MaxHeldBytes = DefaultMaxHeldBytes
	}
	return c
}

// Validate reports the first field that cannot work, after defaults are
// applied, as one plain error.
func (c Config) Validate() error {
	c = c.withDefaults()
	for _, f := range []struct {
		name string
		v    int
	}{
		{"concurrency", c.Concurrency},
		{"fetch batch", c.FetchBatch},
		{"drain batch", c.DrainBatch},
		{"drain concurrency", c.DrainConcurrency},
	} {
		if f.v < 0 {
			return fmt.Errorf("worker: %s must be positive, got %d", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"retry delay", c.RetryDelay},
		{"max retry interval", c.MaxRetryInterval},
		{"outage grace period", c.OutageGracePeriod},
		{"ack wait", c.AckWait},
		{"backpressure interval", c.BackpressureInterval},
		{"default retry after", c.DefaultRetryAfter},
		{"drain poll", c.DrainPoll},
		{"max envelope delay", c.MaxEnvelopeDelay},
	} {
		if f.v < 0 {
			return fmt.Errorf("worker: %s must be positive, got %s", f.name, f.v)
		}
	}
	if c.MaxHeldBytes < 0 {
		return fmt.Errorf("worker: max held bytes must be positive, got %d", c.MaxHeldBytes)
	}
	if c.RetryDelay > c.MaxRetryInterval {
		return fmt.Errorf("worker: retry delay %s exceeds max retry interval %s", c.RetryDelay, c.MaxRetryInterval)
	}
	if c.AckWait < 3*time.Millisecond {
		return errors.New("worker: ack wait must be at least 3ms (heartbeats are sent every ack wait / 3)")
	}
	return nil
}
