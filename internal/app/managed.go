package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/credentials"
	"github.com/relayhq/relay/internal/registration"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
	"github.com/relayhq/relay/worker"
)

// Managed mode: the relay registers with its upstream (internal/registration)
// and sends nothing upstream until it is registered. The worker is not told:
// its Sender is wrapped so that each send waits for the registration, while
// the message it belongs to stays held (un-acked, heartbeats running) — so
// an unregistered relay delays envelopes and never drops one.

// CheckCredentials returns the error a managed relay without credentials
// starts with: what to run, and what to do in Sentry.
func CheckCredentials(cfg *config.Config, creds *credentials.Credentials) error {
	if cfg.Relay.Mode != config.ModeManaged || creds != nil {
		return nil
	}
	return fmt.Errorf("managed mode needs credentials and %s has none: run \"relay credentials generate\", then add the public key that \"relay credentials show\" prints in Sentry under Settings → Relays (or run with --mode proxy, which needs no registration)",
		credentials.Path(cfg.Dir()))
}

// newRegistration builds the Monitor of a managed relay and the upstream
// client it registers through; nil, nil in the other modes.
func newRegistration(cfg *config.Config, creds *credentials.Credentials, log *slog.Logger) (*registration.Monitor, *upstream.Client, error) {
	if cfg.Relay.Mode != config.ModeManaged {
		return nil, nil, nil
	}
	if err := CheckCredentials(cfg, creds); err != nil {
		return nil, nil, err
	}
	roots, err := upstreamRoots(cfg)
	if err != nil {
		return nil, nil, err
	}
	client, err := upstream.New(upstream.Config{
		RootCAs:             roots,
		URL:                 cfg.Relay.Upstream,
		Timeout:             cfg.HTTP.Timeout,
		ConnectionTimeout:   cfg.HTTP.ConnectionTimeout,
		RelayID:             creds.ID.String(),
		Signer:              creds,
		MaxIdleConnsPerHost: 1,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("upstream: %w", err)
	}
	mon, err := registration.New(registration.Config{
		RelayID:          creds.ID.String(),
		PublicKey:        creds.PublicKeyString(),
		Version:          Version,
		Interval:         cfg.HTTP.AuthInterval,
		RetryDelay:       cfg.HTTP.RetryDelay,
		MaxRetryInterval: cfg.HTTP.MaxRetryInterval,
		Logger:           log,
	}, client)
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	return mon, client, nil
}

// readiness is what /api/relay/healthcheck/ready/ checks: the stream takes
// writes and, in managed mode unless auth.ready is "always", the relay is
// registered (as Relay's ReadinessCondition).
func readiness(cfg *config.Config, st *stream.Conn, reg *registration.Monitor) func(context.Context) error {
	if reg == nil || cfg.Auth.Ready == config.AuthReadyAlways {
		return st.Ready
	}
	return func(ctx context.Context) error {
		if err := reg.Ready(ctx); err != nil {
			return err
		}
		return st.Ready(ctx)
	}
}

// authWaiter is what the gated sender needs of the registration.
type authWaiter interface {
	Authenticated() bool
	Wait(ctx context.Context) error
}

var _ authWaiter = (*registration.Monitor)(nil)

// sendsWaiting counts sends held back because the relay is not registered.
var sendsWaiting = metrics.NewGauge(`relay_sends_waiting_for_registration`, nil)

// gatedSender is the worker's Sender in managed mode: a send first waits
// until the relay is registered. When the wait ends with the worker's
// context (shutdown), the send reports a retryable failure caused by that
// context, which the worker answers with a prompt redelivery — never an
// ack. Probes pass: "is the upstream reachable" does not need registration
// (Relay's health check goes out unauthenticated too).
type gatedSender struct {
	worker.Sender
	auth authWaiter
}

var _ worker.Sender = gatedSender{}

func (g gatedSender) Send(ctx context.Context, r upstream.Request) upstream.Result {
	if !g.auth.Authenticated() {
		sendsWaiting.Inc()
		err := g.auth.Wait(ctx)
		sendsWaiting.Dec()
		if err != nil {
			return upstream.Result{Class: upstream.Retryable, Err: fmt.Errorf("not registered with the upstream: %w", err)}
		}
	}
	return g.Sender.Send(ctx, r)
}
