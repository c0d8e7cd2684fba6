// Package ratelimit shares the upstream's rate limits between the relay
// processes of a deployment (protocol doc §4.3): the worker that gets a 429
// records the limits of the envelope's key here, and every ingest server
// reads them to refuse that key's limited data before it is stored.
//
// The limits live in a JetStream key-value bucket, one value per public key,
// so they are shared by every process on the stream and outlive a restart
// for as long as they last. Readers never go to the bucket on a request:
// Shared keeps every key's limits in memory, filled before Open returns and
// kept current by a watch of the bucket.
//
// Invariants:
//   - The bucket is a cache, never on the durability path: a limit that is
//     lost (a failed write) only means ingest stores envelopes the worker
//     then holds until the limit passes, as without this package.
//   - A write merges with the bucket's value, not only with this process's
//     view of it: Record reads the key and its revision, merges, and writes
//     only if the revision is unchanged (retrying otherwise), so two
//     processes recording different limits of one key at the same time
//     both end up in the bucket — the later write no longer wins.
//   - A value holds absolute expiry times: a process reading it later, or
//     after a restart, sees the remaining time, never a fresh full period.
//   - Expired limits are ignored on read and left out of every write.
package ratelimit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
)

// Bucket is the key-value store the limits are kept in; *stream.KV is the
// real one.
type Bucket interface {
	// GetRevision returns key's value and revision (nil, 0: none).
	GetRevision(ctx context.Context, key string) ([]byte, uint64, error)
	// Swap writes value if key's revision is still rev (0: no value), else
	// returns an error matching stream.ErrKVConflict.
	Swap(ctx context.Context, key string, value []byte, rev uint64) error
	Watch(ctx context.Context, update func(key string, value []byte)) error
}

var _ Bucket = (*stream.KV)(nil)

// BucketName is the JetStream key-value bucket of the shared limits (the
// relay prefixes it with its stream name: one bucket per deployment).
const BucketName = "rate_limits"

// BucketTTL is how long a key's value stays in the bucket after its last
// write. It only bounds the bucket's size: a limit longer than it is still
// held by the worker that learnt it.
const BucketTTL = 24 * time.Hour

var (
	decodeErrors = metrics.NewCounter(`relay_rate_limits_shared_errors_total{op="decode"}`)
	putErrors    = metrics.NewCounter(`relay_rate_limits_shared_errors_total{op="put"}`)
	// swapConflicts counts writes retried because another process wrote
	// the key between Record's read and its write.
	swapConflicts = metrics.NewCounter(`relay_rate_limits_shared_conflicts_total`)
)

// maxSwaps bounds Record's read-merge-write attempts: each conflict means
// another process's write landed, so a few rounds settle any realistic
// contention on one key.
const maxSwaps = 8

// Shared is the deployment's view of the upstream's rate limits, per public
// key. Safe for concurrent use.
type Shared struct {
	bucket Bucket
	now    func() time.Time
	log    *slog.Logger

	mu   sync.RWMutex
	keys map[string]upstream.RateLimits
}

// Open reads the bucket's limits and follows its changes until ctx is done
// (ctx owns the watch goroutine). now is the clock limits expire by (nil:
// time.Now).
func Open(ctx context.Context, bucket Bucket, now func() time.Time, log *slog.Logger) (*Shared, error) {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Shared{bucket: bucket, now: now, log: log, keys: make(map[string]upstream.RateLimits)}
	if err := bucket.Watch(ctx, s.update); err != nil {
		return nil, fmt.Errorf("ratelimit: open: %w", err)
	}
	return s, nil
}

// Limits returns the limits of key that are active now (an empty set when
// none). It costs one map lookup under a read lock.
func (s *Shared) Limits(key string) upstream.RateLimits {
	s.mu.RLock()
	rl, ok := s.keys[key]
	s.mu.RUnlock()
	if !ok {
		return upstream.RateLimits{}
	}
	return rl.Active(s.now())
}

// Record merges limits into key's (per categories and scope the later
// expiry wins) and writes the result to the bucket for every process,
// merged with what the bucket holds for key at that moment (see the
// invariants above).
func (s *Shared) Record(ctx context.Context, key string, limits upstream.RateLimits) error {
	now := s.now()
	s.mu.Lock()
	merged := limits.Active(now).Merge(s.keys[key].Active(now))
	if merged.Len() == 0 {
		s.mu.Unlock()
		return nil
	}
	s.keys[key] = merged
	s.mu.Unlock()
	err := s.swap(ctx, key, merged, now)
	if err != nil {
		putErrors.Inc()
		return fmt.Errorf("ratelimit: record %s: %w", key, err)
	}
	return nil
}

// swap writes limits merged with the bucket's value of key, retrying when
// another process wrote the key in between.
func (s *Shared) swap(ctx context.Context, key string, limits upstream.RateLimits, now time.Time) error {
	for range maxSwaps {
		cur, rev, err := s.bucket.GetRevision(ctx, key)
		if err != nil {
			return err
		}
		merged := limits
		if cur != nil {
			stored, err := decode(cur)
			if err != nil {
				// Replaced by a value that decodes: nothing in it could be kept.
				decodeErrors.Inc()
			} else {
				merged = merged.Merge(stored.Active(now))
			}
		}
		value, err := encode(merged)
		if err != nil {
			return err
		}
		err = s.bucket.Swap(ctx, key, value, rev)
		if !errors.Is(err, stream.ErrKVConflict) {
			return err
		}
		swapConflicts.Inc()
	}
	return fmt.Errorf("still conflicting after %d attempts: %w", maxSwaps, stream.ErrKVConflict)
}

// update applies one change seen by the watch.
func (s *Shared) update(key string, value []byte) {
	if value == nil {
		s.mu.Lock()
		delete(s.keys, key)
		s.mu.Unlock()
		return
	}
	rl, err := decode(value)
	if err != nil {
		decodeErrors.Inc()
		s.log.Warn("ratelimit: undecodable value in the bucket, ignored", "key", envelope.KeyRef(key), "err", err)
		return
	}
	rl = rl.Active(s.now())
	s.mu.Lock()
	defer s.mu.Unlock()
	if rl.Len() == 0 {
		delete(s.keys, key)
		return
	}
	s.keys[key] = rl
}

// entry is one limit on the wire, with its expiry in Unix milliseconds.
type entry struct {
	Categories []string `json:"c,omitempty"`
	Scope      string   `json:"s"`
	Reason     string   `json:"r,omitempty"`
	Namespaces []string `json:"n,omitempty"`
	Until      int64    `json:"u"`
}

func encode(rl upstream.RateLimits) ([]byte, error) {
	ls := rl.Limits()
	out := make([]entry, len(ls))
	for i, l := range ls {
		out[i] = entry{Categories: l.Categories, Scope: l.Scope, Reason: l.ReasonCode, Namespaces: l.Namespaces, Until: l.Until.UnixMilli()}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: encode: %w", err)
	}
	return b, nil
}

// decode reads a value; limits beyond what a set holds are dropped (and
// counted) by Merge, so a hostile value cannot grow the cache unbounded.
func decode(b []byte) (upstream.RateLimits, error) {
	var in []entry
	if err := json.Unmarshal(b, &in); err != nil {
		return upstream.RateLimits{}, fmt.Errorf("ratelimit: decode: %w", err)
	}
	var set upstream.RateLimits
	for _, e := range in {
		set = set.Merge(upstream.RateLimits{}.Add(upstream.RateLimit{Categories: e.Categories, Scope: e.Scope,
			ReasonCode: e.Reason, Namespaces: e.Namespaces, Until: time.UnixMilli(e.Until)}))
	}
	return set, nil
}
