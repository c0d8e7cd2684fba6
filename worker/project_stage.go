package worker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/internal/stream"
)

// ProjectDecider says whether envelopes of a key may go upstream, once its
// project config is known (internal/project's *Registry in managed mode).
// Decide waits while the key's config is pending, until ctx ends; it then
// returns pending true. Otherwise reason is "" to forward, or Relay's
// DiscardReason name ("ProjectId", …) for a key the upstream itself would
// refuse.
type ProjectDecider interface {
	Decide(ctx context.Context, publicKey string, projectID uint64) (reason string, pending bool)
}

// Registration is the relay's registration with its upstream
// (*registration.Monitor): Wait returns once the relay is registered, or
// ctx's error.
type Registration interface {
	Wait(ctx context.Context) error
}

// Envelopes the project stage let through without a decision: the key's
// config was still pending after the stage's wait.
var projectPendingForwarded = metrics.NewCounter(`relay_worker_project_undecided_total{reason="pending_timeout"}`)

// ProjectStage decides, in managed mode, about envelopes ingest accepted
// before their key's project config was known (Relay: "before a project's
// config is known, ingest accepts and the worker decides").
//
//   - A key whose config is pending is waited for, up to the stage's wait
//     (the message stays held; the worker's heartbeats keep it from being
//     redelivered meanwhile). If it is still pending then, the envelope is
//     forwarded with the relay-wide settings, as before project configs:
//     the upstream decides.
//   - A key that turns out missing, disabled, in a disabled project, or
//     sent to another project than its own, is dropped: counted by reason
//     (relay_worker_stage_dropped_total{stage="project"}) and logged once per
//     key, never forwarded. The SDK got a 200 for it, so this is a loss the
//     durability contract allows only because the upstream itself would
//     refuse the envelope — Relay drops it with an outcome, and so do we.
//     It is not put in the dead letters: any client can send envelopes for
//     made-up keys, and they would fill them with garbage.
//   - A config that does not parse is not decided here: the scrub stage
//     refuses to forward what it cannot scrub by the project's rules.
type ProjectStage struct {
	d    ProjectDecider
	wait time.Duration
	log  *slog.Logger
	// auth, when set, is waited for before the bounded wait starts: no
	// config can be fetched before the relay is registered.
	auth Registration

	mu     sync.Mutex
	logged map[string]struct{} // keys already logged, bounded by maxLoggedKeys
}

// maxLoggedKeys bounds the set of keys logged once: made-up keys must not
// grow it without end. When full it starts over (a key may be logged again).
const maxLoggedKeys = 10000

// NewProjectStage returns the stage; wait bounds how long one envelope
// waits for a pending config. log may be nil.
func NewProjectStage(d ProjectDecider, wait time.Duration, log *slog.Logger) *ProjectStage {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ProjectStage{d: d, wait: wait, log: log, logged: make(map[string]struct{})}
}

// WithRegistration makes the stage wait, unbounded, until the relay is
// registered before it starts waiting for a pending config: the config
// cannot be fetched before, and an envelope forwarded meanwhile would skip
// its project's scrubbing and be sent once registered anyway. The message
// stays held meanwhile, as sends wait for the registration too. It returns
// s.
func (s *ProjectStage) WithRegistration(auth interface {
	Wait(ctx context.Context) error
}) *ProjectStage {
	s.auth = auth
	return s
}

// Name implements Stage.
func (*ProjectStage) Name() string { return "project" }

// Process implements Stage.
func (s *ProjectStage) Process(ctx context.Context, m *stream.Message) (Verdict, error) {
	if s.auth != nil {
		if err := s.auth.Wait(ctx); err != nil {
			return Keep(), fmt.Errorf("project: waiting for the registration: %w", err) // redelivered
		}
	}
	wctx, cancel := context.WithTimeout(ctx, s.wait)
	reason, pending := s.d.Decide(wctx, m.PublicKey, m.ProjectID)
	cancel()
	if err := ctx.Err(); err != nil {
		return Keep(), fmt.Errorf("project: waiting for the key's config: %w", err) // redelivered
	}
	if pending {
		projectPendingForwarded.Inc()
		return Keep(), nil
	}
	if reason == "" {
		return Keep(), nil
	}
	label := projectReasonLabel(reason)
	if s.firstTime(m.PublicKey) {
		s.log.Warn("envelopes of a key the upstream refuses are dropped, not forwarded",
			"public_key", m.PublicKey, "project", m.ProjectID, "reason", reason)
	}
	return Drop(label), nil
}

func (s *ProjectStage) firstTime(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.logged[key]; ok {
		return false
	}
	if len(s.logged) >= maxLoggedKeys {
		clear(s.logged)
	}
	s.logged[key] = struct{}{}
	return true
}

// projectReasonLabel turns Relay's DiscardReason name into the snake_case
// metric label ("ProjectId" → "project_id").
func projectReasonLabel(reason string) string {
	var b strings.Builder
	for i, r := range reason {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
