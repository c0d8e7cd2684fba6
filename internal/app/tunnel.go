package app

import (
	"fmt"
	"log/slog"

	"github.com/relayhq/relay/ingest"
	"github.com/relayhq/relay/internal/config"
)

// tunnelSetup is the browser tunnel's route configuration and allowlist,
// built from the config before anything is opened so that a bad entry stops
// the start early.
type tunnelSetup struct {
	cfg   ingest.TunnelConfig
	allow ingest.KeyAllower
}

// newTunnelSetup reads the tunnel section. The allowlist is tunnel.allowed_dsns;
// an empty one refuses every tunnel request, so the route is never an open
// proxy by default.
func newTunnelSetup(cfg *config.Config) (tunnelSetup, error) {
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
	return tunnelSetup{cfg: tc, allow: allow}, nil
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
