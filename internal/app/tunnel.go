package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/relayhq/relay/ingest"
	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/project"
)

// tunnelSetup is the browser tunnel's route configuration and allowlist,
// built from the config before anything is opened so that a bad entry stops
// the start early.
type tunnelSetup struct {
	cfg   ingest.TunnelConfig
	allow ingest.KeyAllower
}

// newTunnelSetup reads the tunnel section. The allowlist is tunnel.allowed_dsns
// together with every enabled key the project registry knows, for its own
// project (static mode: exactly the project files; proxy and managed: the
// project files beside the listed DSNs). With neither, every tunnel request
// is refused, so the route is never an open proxy by default.
func newTunnelSetup(cfg *config.Config, projects *project.Registry) (tunnelSetup, error) {
	t := cfg.Tunnel
	trusted, err := t.TrustedPrefixes()
	if err != nil {
		return tunnelSetup{}, fmt.Errorf("%s: tunnel.trusted_proxies: %w", cfg.File(), err)
	}
	allow, err := ingest.NewDSNAllowlist(t.AllowedDSNs)
	if err != nil {
		return tunnelSetup{}, fmt.Errorf("%s: tunnel.allowed_dsns: %w", cfg.File(), err)
	}
	tc := ingest.TunnelConfig{Path: t.Path, TrustedProxies: trusted}
	if t.RateLimit.Enabled() {
		tc.PerSecond = t.RateLimit.PerSecond
		tc.Burst = t.RateLimit.EffectiveBurst()
	}
	return tunnelSetup{cfg: tc, allow: anyAllower{allow, projectAllower{projects}}}, nil
}

// projectAllower admits the keys the project registry knows: enabled, in an
// enabled project whose config parses, sent to that project's id.
type projectAllower struct{ reg *project.Registry }

var _ ingest.KeyAllower = projectAllower{}

// tunnelConfigWait bounds how long a tunnel request waits for its key's
// project config in managed mode, where the first request of a key is what
// asks Sentry for it (about cache.batch_interval plus one round trip).
const tunnelConfigWait = 3 * time.Second

// errConfigPending: in managed mode the key's config has not arrived within
// tunnelConfigWait. Not a refusal — ingest answers 503 with Retry-After and
// the browser SDK sends again, by when the config is known.
var errConfigPending = errors.New("the project config of this key is being fetched")

func (p projectAllower) AllowKey(ctx context.Context, publicKey string, projectID uint64) (bool, error) {
	if p.reg == nil {
		return false, nil
	}
	// Without an upstream source (proxy, static) WaitKnown answers at once.
	wctx, cancel := context.WithTimeout(ctx, tunnelConfigWait)
	defer cancel()
	st, e := p.reg.WaitKnown(wctx, publicKey)
	if st == project.Pending && wctx.Err() != nil && ctx.Err() == nil {
		return false, errConfigPending
	}
	if st != project.Known || e.State == nil || e.State.Disabled || !e.Key.Enabled() {
		return false, nil
	}
	return e.ProjectID == projectID, nil
}

// anyAllower admits what any of its allowers admits.
type anyAllower []ingest.KeyAllower

func (a anyAllower) AllowKey(ctx context.Context, publicKey string, projectID uint64) (bool, error) {
	for _, x := range a {
		ok, err := x.AllowKey(ctx, publicKey, projectID)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// enable serves the tunnel on ing and logs how it is set up.
func (t tunnelSetup) enable(ing *ingest.Server, cfg *config.Config, log *slog.Logger) error {
	if err := ing.EnableTunnel(t.cfg, t.allow); err != nil {
		return fmt.Errorf("tunnel: %w", err)
	}
	log.Info("browser tunnel", "path", t.cfg.Path, "allowed_dsns", len(cfg.Tunnel.AllowedDSNs),
		"rate_limit_per_second", t.cfg.PerSecond, "burst", t.cfg.Burst, "trusted_proxies", len(t.cfg.TrustedProxies))
	return nil
}
