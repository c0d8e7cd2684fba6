package worker

import (
	"context"
	"fmt"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/scrub"
)

// ItemScrubber removes personal data from one envelope item's payload; it is
// what *scrub.Scrubber offers.
type ItemScrubber interface {
	ScrubItem(it scrub.Item, payload []byte) (out []byte, changed bool, err error)
}

// ScrubStage runs the PII scrubber over every item of an envelope before it
// leaves the relay. Items the scrubber did not change are forwarded
// byte-for-byte (their payloads alias the stream message); a changed item gets
// its new payload and a matching `length`. A payload the scrubber cannot parse
// is an error: the envelope is buried rather than forwarded unscrubbed.
type ScrubStage struct {
	s ItemScrubber
}

// NewScrubStage returns the scrub stage for s.
func NewScrubStage(s ItemScrubber) *ScrubStage { return &ScrubStage{s: s} }

// Name implements Stage.
func (*ScrubStage) Name() string { return "scrub" }

// Process implements Stage. Cost: one envelope parse (no payload copies) per
// message, plus the scrubber's own work; the envelope is re-serialised only
// when an item changed.
func (st *ScrubStage) Process(_ context.Context, m *stream.Message) (Verdict, error) {
	env, err := envelope.Parse(m.Envelope)
	if err != nil {
		return Verdict{}, fmt.Errorf("scrub: parse envelope: %w", err)
	}
	changed := false
	for i, it := range env.Items {
		out, ch, err := st.s.ScrubItem(scrub.Item{
			Type:           it.Type,
			Filename:       it.HeaderString("filename"),
			AttachmentType: it.HeaderString("attachment_type"),
			ContentType:    it.HeaderString("content_type"),
		}, it.Payload)
		if err != nil {
			return Verdict{}, fmt.Errorf("scrub: item %d (%s): %w", i, it.Type, err)
		}
		if ch {
			it.SetPayload(out)
			changed = true
		}
	}
	if changed {
		m.Envelope = env.AppendTo(make([]byte, 0, len(m.Envelope)+64))
	}
	return Keep(), nil
}
