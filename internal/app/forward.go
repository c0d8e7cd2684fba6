package app

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/relayhq/relay/ingest"
	"github.com/relayhq/relay/internal/config"
)

// enableForward turns on ingest's forward fallback (http.forward): every
// /api/ request that is not an ingest route goes to relay.upstream, with the
// upstream timeouts and the limits.max_api_* body limits.
func enableForward(ing *ingest.Server, cfg *config.Config, log *slog.Logger) error {
	if !cfg.HTTP.Forward {
		return nil
	}
	up, err := url.Parse(cfg.Relay.Upstream)
	if err != nil {
		return fmt.Errorf("forward: relay.upstream %q: %w", cfg.Relay.Upstream, err)
	}
	roots, err := upstreamRoots(cfg)
	if err != nil {
		return err
	}
	l := cfg.Limits
	err = ing.EnableForward(ingest.ForwardConfig{
		Upstream:       up,
		Timeout:        cfg.HTTP.Timeout,
		ConnectTimeout: cfg.HTTP.ConnectionTimeout,
		MaxPayload:     l.MaxAPIPayloadSize.Bytes(),
		MaxFileUpload:  l.MaxAPIFileUploadSize.Bytes(),
		MaxChunkUpload: l.MaxAPIChunkUploadSize.Bytes(),
		TLS:            &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	})
	if err != nil {
		return err
	}
	log.Info("forwarding other /api/ requests to the upstream", "upstream", up.Scheme+"://"+up.Host)
	return nil
}
