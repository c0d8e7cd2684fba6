package app

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/relayhq/relay/ingest"
	"github.com/relayhq/relay/internal/project"
	"github.com/relayhq/relay/internal/ratelimit"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
)

// openRateLimits opens the deployment's shared rate limits (written by the
// workers on a 429, enforced by every ingest) and follows the bucket until
// ctx ends. The bucket is per stream, like the project configs': relays on
// one stream are one deployment. Without the bucket the relay still runs:
// each worker holds its own limits and ingest enforces only the project
// configs' quotas (nil).
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

// ingestLimits is what ingest refuses with 429: the limits the upstream's
// 429s taught (shared through the bucket; nil when it could not be opened)
// and the limit-0 quotas of the key's project config, which need no
// upstream answer to be known.
type ingestLimits struct {
	shared   *ratelimit.Shared
	projects *project.Registry
}

var _ ingest.RateLimitSource = ingestLimits{}

func (l ingestLimits) Limits(publicKey string) upstream.RateLimits {
	var rl upstream.RateLimits
	if l.shared != nil {
		rl = l.shared.Limits(publicKey)
	}
	if l.projects != nil {
		if q := l.projects.QuotaLimits(publicKey, time.Now()); q.Len() > 0 {
			rl = rl.Merge(q)
		}
	}
	return rl
}
