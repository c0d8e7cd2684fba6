package app

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/project"
	"github.com/relayhq/relay/internal/registration"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
	"github.com/relayhq/relay/worker"
)

// Managed mode fetches project configs from the upstream for the keys no
// project file has (internal/project UpstreamSource), shares them with the
// deployment's other processes through a key-value bucket on the relay's
// JetStream, and lets the worker decide about envelopes ingest accepted
// before their key's config was known (worker.ProjectStage).

var (
	_ project.Querier       = (*upstream.Client)(nil)
	_ project.Authenticator = (*registration.Monitor)(nil)
	_ project.SharedStore   = (*stream.KV)(nil)
	_ worker.ProjectDecider = (*project.Registry)(nil)
	_ worker.Registration   = (*registration.Monitor)(nil)
)

// projectPendingWait bounds how long the worker holds one envelope whose
// key's config is still pending before forwarding it with the relay-wide
// settings. The message stays held (heartbeats) meanwhile.
const projectPendingWait = 10 * time.Second

// projectBucket names the key-value bucket of fetched configs: one per
// stream, so deployments sharing a NATS server with their own streams do
// not share configs by accident.
func projectBucket(streamName string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		}
		return '_'
	}, streamName) + "_project_configs"
}

// newProjectFetch returns the upstream source of a managed relay (nil in
// the other modes). A bucket that cannot be opened leaves the source
// without sharing: it asks the upstream itself.
func newProjectFetch(ctx context.Context, cfg *config.Config, projects *project.Registry, client *upstream.Client,
	mon *registration.Monitor, st *stream.Conn, log *slog.Logger) (*project.UpstreamSource, error) {
	if cfg.Relay.Mode != config.ModeManaged || client == nil || mon == nil {
		return nil, nil
	}
	log = log.With("component", "project_configs")
	c := cfg.Cache
	opts := project.UpstreamOptions{
		BatchInterval:    c.BatchInterval,
		BatchSize:        c.BatchSize,
		Expiry:           c.ProjectExpiry,
		Grace:            c.ProjectGracePeriod,
		MissExpiry:       c.MissExpiry,
		RetryDelay:       cfg.HTTP.RetryDelay,
		MaxRetryInterval: cfg.HTTP.MaxRetryInterval,
		Logger:           log,
	}
	bucket := projectBucket(st.StreamName())
	kctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a cache must not hold up the start
	kv, err := st.KeyValue(kctx, bucket, c.ProjectExpiry+c.ProjectGracePeriod)
	cancel()
	if err != nil {
		log.Warn("project configs are not shared with other relay processes: the key-value bucket cannot be opened; each process asks the upstream", "bucket", bucket, "err", err)
	} else {
		opts.Shared = kv
	}
	src, err := project.NewUpstreamSource(projects, client, mon, opts)
	if err != nil {
		return nil, err
	}
	log.Info("project configs fetched from the upstream", "batch_interval", c.BatchInterval, "batch_size", c.BatchSize,
		"expiry", c.ProjectExpiry, "grace", c.ProjectGracePeriod, "miss_expiry", c.MissExpiry, "shared_bucket", opts.Shared != nil)
	return src, nil
}

// projectStages is what the worker runs first in managed mode: the
// decision about envelopes accepted while their key was pending.
func projectStages(cfg *config.Config, projects *project.Registry, auth authWaiter, log *slog.Logger) []worker.Stage {
	if cfg.Relay.Mode != config.ModeManaged || auth == nil {
		return nil
	}
	return []worker.Stage{worker.NewProjectStage(projects, projectPendingWait, log.With("stage", "project")).WithRegistration(auth)}
}
