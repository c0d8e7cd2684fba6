package worker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/relayhq/relay/internal/stream"
)

// recordingStage appends its name to a shared trace and returns a fixed
// verdict or error; it may also rewrite the envelope, to show that later
// stages see earlier stages' changes.
type recordingStage struct {
	name    string
	verdict Verdict
	err     error
	rewrite string
	mu      *sync.Mutex
	trace   *[]string
}

func (s recordingStage) Name() string { return s.name }

func (s recordingStage) Process(_ context.Context, m *stream.Message) (Verdict, error) {
	s.mu.Lock()
	*s.trace = append(*s.trace, s.name+":"+string(m.Envelope))
	s.mu.Unlock()
	if s.rewrite != "" {
		m.Envelope = []byte(s.rewrite)
	}
	return s.verdict, s.err
}

func TestPipeline(t *testing.T) {
	errBroken := errors.New("broken payload")
	type st struct {
		name    string
		verdict Verdict
		err     error
		rewrite string
	}
	tests := []struct {
		name       string
		stages     []st
		wantTrace  []string
		wantDrop   bool
		wantStage  string
		wantReason string
		wantErr    error
		wantEnv    string
	}{
		{
			name:      "no stages keeps",
			wantTrace: nil,
			wantEnv:   "e",
		},
		{
			name:      "all keep, in order, each sees the previous rewrite",
			stages:    []st{{name: "filter"}, {name: "scrub", rewrite: "scrubbed"}, {name: "enrich"}},
			wantTrace: []string{"filter:e", "scrub:e", "enrich:scrubbed"},
			wantEnv:   "scrubbed",
		},
		{
			name:       "a drop stops the pipeline and is counted by stage and reason",
			stages:     []st{{name: "filter", verdict: Drop("release")}, {name: "scrub"}},
			wantTrace:  []string{"filter:e"},
			wantDrop:   true,
			wantStage:  "filter",
			wantReason: "release",
			wantEnv:    "e",
		},
		{
			name:       "a reason that would break the label is sanitised",
			stages:     []st{{name: "filter"}, {name: "scrub", verdict: Drop(`bad "reason"` + "\n")}},
			wantTrace:  []string{"filter:e", "scrub:e"},
			wantDrop:   true,
			wantStage:  "scrub",
			wantReason: "bad__reason__",
			wantEnv:    "e",
		},
		{
			name:       "an empty reason is counted as unspecified",
			stages:     []st{{name: "filter", verdict: Drop("")}},
			wantTrace:  []string{"filter:e"},
			wantDrop:   true,
			wantStage:  "filter",
			wantReason: "unspecified",
			wantEnv:    "e",
		},
		{
			name:      "an error stops the pipeline and names the stage",
			stages:    []st{{name: "filter"}, {name: "scrub", err: errBroken}, {name: "enrich"}},
			wantTrace: []string{"filter:e", "scrub:e"},
			wantStage: "scrub",
			wantErr:   errBroken,
			wantEnv:   "e",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var trace []string
			var stages []Stage
			for _, s := range tt.stages {
				stages = append(stages, recordingStage{name: s.name, verdict: s.verdict, err: s.err, rewrite: s.rewrite, mu: &mu, trace: &trace})
			}
			p, err := newPipeline(stages)
			if err != nil {
				t.Fatalf("newPipeline: %v", err)
			}
			var before uint64
			if tt.wantDrop {
				before = stageDropCounter(tt.wantStage, tt.wantReason).Get()
			}
			m := &stream.Message{Envelope: []byte("e")}
			out := p.run(context.Background(), m)

			if strings.Join(trace, "|") != strings.Join(tt.wantTrace, "|") {
				t.Errorf("trace = %q, want %q", trace, tt.wantTrace)
			}
			if out.dropped != tt.wantDrop || out.stage != tt.wantStage || out.reason != tt.wantReason {
				t.Errorf("outcome = %+v, want dropped=%v stage=%q reason=%q", out, tt.wantDrop, tt.wantStage, tt.wantReason)
			}
			if !errors.Is(out.err, tt.wantErr) {
				t.Errorf("err = %v, want %v", out.err, tt.wantErr)
			}
			if out.err != nil && !strings.Contains(out.err.Error(), "stage "+tt.wantStage) {
				t.Errorf("error %q does not name the stage %q", out.err, tt.wantStage)
			}
			if tt.wantDrop {
				if got := stageDropCounter(tt.wantStage, tt.wantReason).Get() - before; got != 1 {
					t.Errorf("relay_worker_stage_dropped_total{stage=%q,reason=%q} grew by %d, want 1", tt.wantStage, tt.wantReason, got)
				}
			}
			if string(m.Envelope) != tt.wantEnv {
				t.Errorf("envelope = %q, want %q", m.Envelope, tt.wantEnv)
			}
		})
	}
}

func TestNewPipelineRejectsBadNames(t *testing.T) {
	var mu sync.Mutex
	var trace []string
	mk := func(name string) Stage { return recordingStage{name: name, mu: &mu, trace: &trace} }
	tests := []struct {
		name   string
		stages []Stage
		want   string
	}{
		{"nil stage", []Stage{mk("filter"), nil}, "stage 1 is nil"},
		{"empty name", []Stage{mk("")}, "must be non-empty"},
		{"name with a quote", []Stage{mk(`sc"rub`)}, "must be non-empty"},
		{"name too long", []Stage{mk(strings.Repeat("a", 65))}, "at most 64 bytes"},
		{"duplicate", []Stage{mk("scrub"), mk("scrub")}, `"scrub" used twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newPipeline(tt.stages)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestVerdict(t *testing.T) {
	if v := Keep(); v.Dropped() || v.Reason() != "" {
		t.Errorf("Keep() = %+v", v)
	}
	if v := (Verdict{}); v.Dropped() {
		t.Errorf("zero Verdict drops")
	}
	if v := Drop("x"); !v.Dropped() || v.Reason() != "x" {
		t.Errorf("Drop(x) = %+v", v)
	}
}

func TestSanitizeLabel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"release", "release"},
		{"a-b_c.d:e", "a-b_c.d:e"},
		{`x"y\z`, "x_y_z"},
		{"é", "_"},
		{strings.Repeat("a", 70), strings.Repeat("a", 64)},
		{"", ""},
	}
	for _, tt := range tests {
		if got := sanitizeLabel(tt.in); got != tt.want {
			t.Errorf("sanitizeLabel(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
