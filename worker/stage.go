package worker

import (
	"context"
	"fmt"
	"strings"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/internal/stream"
)

// Stage is one named step between the stream and the upstream. Stages run in
// the order given to New; the relay's order is filter → scrub → enrich, and
// a relay runs those it is configured for (internal/app builds them). A
// stage may rewrite the message in place (scrub replaces payloads, enrich
// adds data) and decides whether it goes on.
//
// Process must be safe for concurrent use: every consumer runs every stage.
// An error means the stage could not decide (e.g. a payload it cannot parse):
// the message is then neither forwarded — a scrubber that failed must not
// let unscrubbed data through — nor lost: it is buried in the spool's dead
// letters and counted (relay_worker_dropped_total{reason="stage_error"}).
// An error caused by ctx being cancelled leaves the message to be redelivered.
// A panic in Process is contained to the message: it is buried with the
// panic as its reason (relay_worker_dropped_total{reason="panic"}) and the
// worker goes on.
type Stage interface {
	Name() string
	Process(ctx context.Context, m *stream.Message) (Verdict, error)
}

// Verdict is a stage's decision: keep the message, or drop it with a reason.
// The zero Verdict keeps.
type Verdict struct {
	drop   bool
	reason string
}

// Keep lets the message go on to the next stage.
func Keep() Verdict { return Verdict{} }

// Drop discards the message on purpose (e.g. an inbound filter matched). The
// reason becomes a metric label (relay_worker_stage_dropped_total{stage,
// reason}), so it must come from a small fixed set such as
// "browser_extension" or "release" — never from the payload. Characters
// outside [A-Za-z0-9_.:-] are replaced by '_', and it is cut at 64 bytes.
func Drop(reason string) Verdict { return Verdict{drop: true, reason: reason} }

// Dropped reports whether the verdict discards the message.
func (v Verdict) Dropped() bool { return v.drop }

// Reason is the reason given to Drop ("" for Keep).
func (v Verdict) Reason() string { return v.reason }

// pipeline runs stages in order and counts drops by stage and reason.
type pipeline struct {
	stages []Stage
}

// newPipeline checks that every stage has a usable, unique name: the name is
// a metric label and the only way an operator tells stages apart in logs.
func newPipeline(stages []Stage) (pipeline, error) {
	seen := make(map[string]bool, len(stages))
	for i, s := range stages {
		if s == nil {
			return pipeline{}, fmt.Errorf("worker: stage %d is nil", i)
		}
		n := s.Name()
		if n == "" || sanitizeLabel(n) != n {
			return pipeline{}, fmt.Errorf("worker: stage %d: name %q must be non-empty, at most 64 bytes of [A-Za-z0-9_.:-]", i, n)
		}
		if seen[n] {
			return pipeline{}, fmt.Errorf("worker: stage name %q used twice", n)
		}
		seen[n] = true
	}
	return pipeline{stages: stages}, nil
}

// stageOutcome is what the pipeline decided for one message.
type stageOutcome struct {
	dropped bool
	stage   string // the stage that dropped it or failed ("" when kept)
	reason  string // the sanitised drop reason
	err     error  // the stage's error, wrapped with its name
}

// run passes m through every stage in order, stopping at the first drop or
// error. A drop is counted here, beside the decision.
func (p pipeline) run(ctx context.Context, m *stream.Message) stageOutcome {
	for _, s := range p.stages {
		v, err := s.Process(ctx, m)
		if err != nil {
			return stageOutcome{stage: s.Name(), err: fmt.Errorf("worker: stage %s: %w", s.Name(), err)}
		}
		if v.Dropped() {
			reason := sanitizeLabel(v.Reason())
			if reason == "" {
				reason = "unspecified"
			}
			stageDropCounter(s.Name(), reason).Inc()
			return stageOutcome{dropped: true, stage: s.Name(), reason: reason}
		}
	}
	return stageOutcome{}
}

// stageDropCounter returns relay_worker_stage_dropped_total{stage,reason}.
// Both labels are sanitised, so the series name is always valid.
func stageDropCounter(stage, reason string) *metrics.Counter {
	return metrics.GetOrCreateCounter(fmt.Sprintf(`relay_worker_stage_dropped_total{stage=%q,reason=%q}`,
		sanitizeLabel(stage), sanitizeLabel(reason)))
}

// sanitizeLabel keeps [A-Za-z0-9_.:-], replaces anything else by '_' and cuts
// the result at 64 bytes, so a label can never break the exposition format or
// explode in length.
func sanitizeLabel(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == ':', r == '-':
			return r
		}
		return '_'
	}, s)
}
