package worker

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
)

// panickySender panics when asked to send the envelope of one event id, as
// a bug in the client or a stage-like hook on the send path would.
type panickySender struct {
	Sender
	poison string
}

func (s panickySender) Send(ctx context.Context, r upstream.Request) upstream.Result {
	if strings.Contains(string(r.Envelope), s.poison) {
		panic("test: the sender cannot handle this envelope")
	}
	return s.Sender.Send(ctx, r)
}

// A panic while handling one envelope — in a stage, or in the send, from
// the stream or from the spool — does not take the process down: that
// envelope goes to the dead letters with the reason, the panic is counted,
// and every other envelope arrives. Without the recovery the test binary
// itself dies.
func TestPanicIsBuriedNotFatal(t *testing.T) {
	tests := []struct {
		name  string
		spool bool // the envelopes wait in the spool (drain path) rather than the stream
		stage bool // the panic is in a stage (else in the send)
	}{
		{name: "stage, stream path", stage: true},
		{name: "send, stream path"},
		{name: "send, drain path", spool: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			var ids []string
			if tt.spool {
				ids = h.spoolMessages(5, keyA)
			} else {
				ids = h.publish(5, keyA)
			}
			poison := ids[2]
			var stages []Stage
			if tt.stage {
				stages = append(stages, testStage{name: "enrich", fn: func(m *stream.Message) (Verdict, error) {
					if m.EventID == poison {
						var limits map[string]int
						limits["boom"]++ // a nil-map write: a real runtime panic
					}
					return Keep(), nil
				}})
			} else {
				h.sender = panickySender{Sender: h.client, poison: poison}
			}
			panics := panicsStream.Get() + panicsDrain.Get()
			dropped := droppedPanic.Get()
			h.start(fastCfg(Config{Concurrency: 2, FetchBatch: 2, DrainConcurrency: 1}), stages...)

			want := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == poison })
			eventually(t, 10*time.Second, "the other envelopes accepted", func() bool { return h.up.Count() >= len(want) })
			eventually(t, 10*time.Second, "stream and spool empty", func() bool { return h.streamMsgs() == 0 && h.spool.Stats().Records == 0 })
			h.checkLedger(want, 0)
			dead, err := h.spool.Buried(10)
			if err != nil || len(dead) != 1 {
				t.Fatalf("dead letters %d (%v), want the poison envelope", len(dead), err)
			}
			var m stream.Message
			if err := m.UnmarshalBinary(dead[0].Data); err != nil || m.EventID != poison || !strings.HasPrefix(dead[0].Reason, "panic: ") {
				t.Errorf("dead letter event %s reason %q (%v), want %s with the panic", m.EventID, dead[0].Reason, err, poison)
			}
			if got := panicsStream.Get() + panicsDrain.Get() - panics; got != 1 {
				t.Errorf("relay_worker_panics_total grew by %d, want 1", got)
			}
			if got := droppedPanic.Get() - dropped; got != 1 {
				t.Errorf(`relay_worker_dropped_total{reason="panic"} grew by %d, want 1`, got)
			}
		})
	}
}
