package worker

import (
	"context"
	"time"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/upstream"
)

// LimitSharer hands the rate limits the worker learns from a 429 to the
// other relay processes, whose ingest refuses the key's limited data before
// storing it (internal/ratelimit's *Shared). Sharing is best effort: a
// failed Record costs only that ingest keeps storing envelopes this worker
// then holds, as it would without sharing.
type LimitSharer interface {
	Record(ctx context.Context, key string, limits upstream.RateLimits) error
}

// shareTimeout bounds one Record: it runs on the send path of the envelope
// that got the 429.
const shareTimeout = 2 * time.Second

// ShareRateLimits makes the worker record every limit it learns in s too.
// Call it before Run.
func (w *Worker) ShareRateLimits(s LimitSharer) { w.sharer = s }

// shareLimits records limits for key in the sharer, if there is one.
func (w *Worker) shareLimits(ctx context.Context, key string, limits upstream.RateLimits) {
	if w.sharer == nil || limits.Len() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, shareTimeout)
	defer cancel()
	if err := w.sharer.Record(ctx, key, limits); err != nil && ctx.Err() == nil {
		w.log.Warn("rate limit not shared with the other relay processes; this worker still holds it", "key", envelope.KeyRef(key), "err", envelope.RedactKey(err.Error(), key))
	}
}
