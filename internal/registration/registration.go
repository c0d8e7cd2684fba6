package registration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cenkalti/backoff/v4"

	"github.com/relayhq/relay/internal/upstream"
)

// The upstream's registration endpoints.
const (
	challengePath = "/api/0/relays/register/challenge/"
	responsePath  = "/api/0/relays/register/response/"
)

// Querier sends signed JSON requests to the upstream (*upstream.Client).
// Failures the Monitor tells apart are *upstream.QueryError.
type Querier interface {
	Query(ctx context.Context, path string, body []byte, out any) error
}

var _ Querier = (*upstream.Client)(nil)

// state is where the relay stands with its upstream.
type state int

const (
	registering state = iota // not authenticated (yet, or again)
	registered               // authenticated
	renewing                 // authenticated, re-registering
	denied                   // the upstream said stop: not authenticated, for good
)

func (s state) String() string {
	switch s {
	case registering:
		return "registering"
	case registered:
		return "registered"
	case renewing:
		return "renewing"
	case denied:
		return "denied"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// authenticated reports whether requests may go upstream in this state.
func (s state) authenticated() bool { return s == registered || s == renewing }

// Config configures a Monitor.
type Config struct {
	RelayID   string // the relay's id (credentials.json "id")
	PublicKey string // base64url, as Sentry shows it under Settings → Relays
	Version   string // the relay's version, sent as Relay sends its own
	// Interval is how long a registration holds before the Monitor
	// registers again (http.auth_interval); 0 registers once.
	Interval time.Duration
	// RetryDelay and MaxRetryInterval shape the backoff between failed
	// attempts (http.retry_delay, http.max_retry_interval).
	RetryDelay       time.Duration
	MaxRetryInterval time.Duration
	Logger           *slog.Logger
}

// Monitor registers the relay and keeps it registered; see the package
// documentation. Its methods are safe for concurrent use.
type Monitor struct {
	cfg Config
	q   Querier
	log *slog.Logger

	mu      sync.Mutex
	state   state
	reason  string        // why not authenticated ("" while authenticated)
	changed chan struct{} // closed and replaced on every state change
	running bool
}

// New checks cfg and returns a Monitor, not authenticated. Nothing is
// sent before Run.
func New(cfg Config, q Querier) (*Monitor, error) {
	if cfg.RelayID == "" || cfg.PublicKey == "" || cfg.Version == "" {
		return nil, errors.New("registration: relay id, public key and version are required")
	}
	if q == nil {
		return nil, errors.New("registration: no upstream client")
	}
	if cfg.Interval < 0 || cfg.RetryDelay <= 0 || cfg.MaxRetryInterval < cfg.RetryDelay {
		return nil, fmt.Errorf("registration: bad timing (interval %s, retry delay %s, max retry interval %s)",
			cfg.Interval, cfg.RetryDelay, cfg.MaxRetryInterval)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Monitor{
		cfg:     cfg,
		q:       q,
		log:     log.With("component", "registration"),
		state:   registering,
		reason:  "not registered with the upstream yet",
		changed: make(chan struct{}),
	}, nil
}

// Metrics: attempts by outcome, and whether the relay is authenticated.
var (
	attemptsRegistered = metrics.NewCounter(`relay_registration_attempts_total{result="registered"}`)
	attemptsNetwork    = metrics.NewCounter(`relay_registration_attempts_total{result="network_error"}`)
	attemptsRefused    = metrics.NewCounter(`relay_registration_attempts_total{result="refused"}`)
	attemptsDenied     = metrics.NewCounter(`relay_registration_attempts_total{result="denied"}`)
	authenticatedGauge = metrics.NewGauge(`relay_registration_authenticated`, nil)
)

// current returns the current state.
func (m *Monitor) current() state {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// Authenticated reports whether the relay is registered right now.
func (m *Monitor) Authenticated() bool { return m.current().authenticated() }

// Ready returns nil while the relay is authenticated, else an error saying
// why not (for the readiness endpoint).
func (m *Monitor) Ready(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state.authenticated() {
		return nil
	}
	return fmt.Errorf("registration: not authenticated with the upstream (%s): %s", m.state, m.reason)
}

// Wait blocks until the relay is authenticated (nil) or ctx ends (its
// error). After a denial it waits until ctx ends.
func (m *Monitor) Wait(ctx context.Context) error {
	for {
		m.mu.Lock()
		ok, ch := m.state.authenticated(), m.changed
		m.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// setState records a state change and wakes waiters. It returns whether
// the state or the reason changed, which is when it is worth a log line.
func (m *Monitor) setState(s state, reason string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == s && m.reason == reason {
		return false
	}
	m.state, m.reason = s, reason
	close(m.changed)
	m.changed = make(chan struct{})
	if s.authenticated() {
		authenticatedGauge.Set(1)
	} else {
		authenticatedGauge.Set(0)
	}
	return true
}

// Run registers, then re-registers every Interval, until ctx ends or the
// upstream denies the relay for good; it returns nil in both cases (a
// denial is logged and leaves the Monitor denied). Run may be called
// once.
func (m *Monitor) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return errors.New("registration: Run called twice")
	}
	m.running = true
	m.mu.Unlock()

	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = m.cfg.RetryDelay
	bo.Multiplier = 1.5
	bo.MaxInterval = m.cfg.MaxRetryInterval
	bo.MaxElapsedTime = 0
	bo.Reset()
	for {
		renewal := m.current().authenticated()
		if renewal {
			m.setState(renewing, "")
		}
		err := m.register(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var wait time.Duration
		switch {
		case err == nil:
			attemptsRegistered.Inc()
			m.setState(registered, "")
			if renewal {
				m.log.Debug("registration renewed", "relay_id", m.cfg.RelayID, "next_in", m.cfg.Interval)
			} else {
				m.log.Info("registered with the upstream", "relay_id", m.cfg.RelayID, "next_in", m.cfg.Interval)
			}
			bo.Reset()
			if m.cfg.Interval == 0 {
				return nil
			}
			wait = m.cfg.Interval
		case isStop(err):
			attemptsDenied.Inc()
			m.setState(denied, err.Error())
			m.log.Error("the upstream denied this relay for good (403, relay: stop); not registering again. Nothing is sent upstream; accepted envelopes stay stored until the relay is restarted with credentials the upstream accepts",
				"relay_id", m.cfg.RelayID, "public_key", m.cfg.PublicKey, "err", err)
			return nil
		default:
			wait = min(bo.NextBackOff(), m.cfg.MaxRetryInterval)
			m.failed(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// failed records a failed attempt. A network failure keeps a renewing
// relay authenticated (the upstream did not say no, Relay does the same);
// any other failure means not authenticated.
func (m *Monitor) failed(err error, retryIn time.Duration) {
	var qe *upstream.QueryError
	network := errors.As(err, &qe) && qe.Network()
	if network {
		attemptsNetwork.Inc()
	} else {
		attemptsRefused.Inc()
	}
	if network && m.current().authenticated() {
		// Still authenticated: stay Renewing, and say so only at debug.
		m.log.Debug("re-registration failed on the network; still authenticated, retrying", "err", err, "retry_in", retryIn)
		return
	}
	reason := err.Error()
	if network {
		// The network error's text varies (ports, timings); log the
		// change to "unreachable" once, not each variant.
		reason = "the upstream is unreachable"
	}
	if !m.setState(registering, reason) {
		m.log.Debug("registration failed again", "err", err, "retry_in", retryIn)
		return
	}
	attrs := []any{"relay_id", m.cfg.RelayID, "err", err, "retry_in", retryIn}
	switch {
	case network:
		m.log.Warn("cannot reach the upstream to register; nothing is sent upstream until registered", attrs...)
	case qe != nil && qe.Status == 403:
		m.log.Error("the upstream refused to register this relay: add its public key in Sentry under Settings → Relays (`relay credentials show` prints it); nothing is sent upstream until then",
			append(attrs, "public_key", m.cfg.PublicKey, "detail", qe.Detail)...)
	default:
		m.log.Error("registration with the upstream failed; nothing is sent upstream until registered", attrs...)
	}
}

func isStop(err error) bool {
	var qe *upstream.QueryError
	return errors.As(err, &qe) && qe.Stop
}

// register runs the challenge and the response once.
func (m *Monitor) register(ctx context.Context) error {
	body, err := json.Marshal(struct {
		RelayID   string `json:"relay_id"`
		PublicKey string `json:"public_key"`
		Version   string `json:"version"`
	}{m.cfg.RelayID, m.cfg.PublicKey, m.cfg.Version})
	if err != nil {
		return fmt.Errorf("registration: encode challenge request: %w", err)
	}
	var ch struct {
		RelayID string `json:"relay_id"`
		Token   string `json:"token"`
	}
	if err := m.q.Query(ctx, challengePath, body, &ch); err != nil {
		return fmt.Errorf("registration: challenge: %w", err)
	}
	if ch.Token == "" || ch.RelayID != m.cfg.RelayID {
		return fmt.Errorf("registration: challenge: the upstream answered without a token for this relay (relay_id %q)", ch.RelayID)
	}
	body, err = json.Marshal(struct {
		RelayID string `json:"relay_id"`
		Token   string `json:"token"`
		Version string `json:"version"`
	}{m.cfg.RelayID, ch.Token, m.cfg.Version})
	if err != nil {
		return fmt.Errorf("registration: encode challenge response: %w", err)
	}
	if err := m.q.Query(ctx, responsePath, body, nil); err != nil {
		return fmt.Errorf("registration: response: %w", err)
	}
	return nil
}
