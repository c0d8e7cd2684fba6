package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/credentials"
	"github.com/relayhq/relay/internal/upstream"
	"github.com/relayhq/relay/spool"
	"github.com/relayhq/relay/worker"
)

// DrainSpool sends what sp holds to relay.upstream now (`relay spool
// drain`), with the worker's upstream client and retry settings, so that it
// treats every answer as a running relay would (worker.DrainSpool). It
// signs its requests with creds when there are any; it does not register
// (in managed mode the upstream must know the relay already).
func DrainSpool(ctx context.Context, cfg *config.Config, creds *credentials.Credentials, sp *spool.Spool, log *slog.Logger, progress func(worker.DrainProgress)) (worker.DrainProgress, error) {
	up, err := newUpstream(cfg, creds)
	if err != nil {
		return worker.DrainProgress{}, err
	}
	defer up.Close()
	return worker.DrainSpool(ctx, worker.Config{
		Concurrency:       cfg.Worker.Concurrency,
		RetryDelay:        cfg.HTTP.RetryDelay,
		MaxRetryInterval:  cfg.HTTP.MaxRetryInterval,
		OutageGracePeriod: cfg.HTTP.OutageGracePeriod,
		AckWait:           cfg.JetStream.AckWait,
		MaxEnvelopeDelay:  cfg.Spool.MaxEnvelopeDelay,
	}, up, sp, log, progress)
}

// newUpstream is the upstream client as the worker builds it.
func newUpstream(cfg *config.Config, creds *credentials.Credentials) (*upstream.Client, error) {
	relayID := ""
	var signer upstream.Signer // a nil *Credentials in the interface would not be nil
	if creds != nil {
		relayID = creds.ID.String()
		signer = creds
	}
	roots, err := upstreamRoots(cfg)
	if err != nil {
		return nil, err
	}
	up, err := upstream.New(upstream.Config{
		RootCAs:             roots,
		URL:                 cfg.Relay.Upstream,
		Timeout:             cfg.HTTP.Timeout,
		ConnectionTimeout:   cfg.HTTP.ConnectionTimeout,
		Encoding:            cfg.HTTP.Encoding,
		RelayID:             relayID,
		Signer:              signer,
		MaxIdleConnsPerHost: 2 * cfg.Worker.Concurrency,
	})
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	return up, nil
}
