package app

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/relayhq/relay/internal/ratelimit"
	"github.com/relayhq/relay/internal/stream"
)

// openRateLimits opens the deployment's shared rate limits (written by the
// workers on a 429, enforced by every ingest) and follows the bucket until
// ctx ends. The bucket is per stream, like the project configs': relays on
// one stream are one deployment. Without the bucket the relay still runs:
// each worker holds its own limits and ingest enforces none (nil).
func openRateLimits(ctx context.Context, st *stream.Conn, log *slog.Logger) *ratelimit.Shared {
	bucket := rateLimitBucket(st.StreamName())
	kctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a cache must not hold up the start
	defer cancel()
	kv, err := st.KeyValue(kctx, bucket, ratelimit.BucketTTL)
	if err == nil {
		var s *ratelimit.Shared
		// ctx, not kctx: the watch lives as long as the relay runs.
		if s, err = ratelimit.Open(ctx, kv, nil, log.With("component", "ratelimit")); err == nil {
			return s
		}
	}
	log.Warn("rate limits are not shared: ingest will not refuse rate-limited keys, each worker holds them itself", "bucket", bucket, "err", err)
	return nil
}

// rateLimitBucket names the rate-limit bucket of a stream (bucket names
// allow letters, digits, '_' and '-').
func rateLimitBucket(streamName string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		}
		return '_'
	}, streamName) + "_" + ratelimit.BucketName
}
