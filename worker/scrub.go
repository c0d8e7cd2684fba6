package worker

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/scrub"
)

// scrubbedItemsTotal counts items whose payload the scrub stage replaced
// (something personal was removed); scrubbedEnvelopesTotal the envelopes that
// held at least one.
var (
	scrubbedItemsTotal     = metrics.NewCounter(`relay_worker_scrubbed_items_total`)
	scrubbedEnvelopesTotal = metrics.NewCounter(`relay_worker_scrubbed_envelopes_total`)

	// scrubDuration times the scrub of one envelope (parse, every item's
	// rules, re-serialise), for envelopes whose project has rules to apply.
	scrubDuration = metrics.NewPrometheusHistogramExt(`relay_worker_scrub_duration_seconds`,
		[]float64{1e-5, 5e-5, 1e-4, 5e-4, .001, .005, .01, .05, .1, .5, 1, 5})
)

// ItemScrubber removes personal data from one envelope item's payload; it is
// what *scrub.Scrubber offers.
type ItemScrubber interface {
	ScrubItem(it scrub.Item, payload []byte) (out []byte, changed bool, err error)
}

// ipScrubber is implemented by scrubbers that can remove IP addresses
// (*scrub.Scrubber: scrubIpAddresses).
type ipScrubber interface {
	ScrubsIPAddresses() bool
}

// ScrubStage runs the PII scrubber over every item of an envelope before it
// leaves the relay. Items the scrubber did not change are forwarded
// byte-for-byte (their payloads alias the stream message); a changed item gets
// its new payload and a matching `length`. A payload the scrubber cannot parse
// is an error: the envelope is buried rather than forwarded unscrubbed.
//
// With WithProjects, each message is scrubbed by its key's project rules when
// the project has its own, and by the relay-wide scrubber otherwise.
//
// When the scrubber removes IP addresses, the client's address is not
// forwarded either (X-Forwarded-For): Sentry would otherwise infer
// user.ip_address from it again (for browser and mobile platforms, or
// "{{auto}}") after the relay removed it.
//
// The relay-wide scrubber can be replaced while messages are processed
// (SetScrubber, on a SIGHUP reload): each message is scrubbed wholly by the
// scrubber it started with, never partly by the old rules and partly by the
// new ones.
type ScrubStage struct {
	relayWide atomic.Pointer[relayScrubber]
	projects  ScrubberSource // nil: the relay-wide scrubber scrubs every message
}

// relayScrubber is the relay-wide scrubber with what it implies for the
// client's address, swapped as one.
type relayScrubber struct {
	s         ItemScrubber
	dropPeers bool
}

// NewScrubStage returns the scrub stage for s.
func NewScrubStage(s ItemScrubber) *ScrubStage {
	st := &ScrubStage{}
	st.SetScrubber(s)
	return st
}

// SetScrubber makes s the relay-wide scrubber for every message whose
// processing starts after it returns.
func (st *ScrubStage) SetScrubber(s ItemScrubber) {
	rs := &relayScrubber{s: s}
	if ip, ok := s.(ipScrubber); ok {
		rs.dropPeers = ip.ScrubsIPAddresses()
	}
	st.relayWide.Store(rs)
}

// Name implements Stage.
func (*ScrubStage) Name() string { return "scrub" }

// Process implements Stage. Cost: one envelope parse (no payload copies) per
// message, plus the scrubber's own work; the envelope is re-serialised only
// when an item changed. On error m is left as it was.
func (st *ScrubStage) Process(_ context.Context, m *stream.Message) (Verdict, error) {
	s, dropPeers, err := st.scrubberFor(m)
	if err != nil {
		return Verdict{}, err
	}
	if n, ok := s.(noopScrubber); ok && n.Noop() {
		return Keep(), nil
	}
	defer scrubDuration.UpdateDuration(time.Now())
	env, err := envelope.Parse(m.Envelope)
	if err != nil {
		return Verdict{}, fmt.Errorf("scrub: parse envelope: %w", err)
	}
	changed := 0
	for i, it := range env.Items {
		out, ch, err := s.ScrubItem(scrub.Item{
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
			changed++
		}
	}
	if changed > 0 {
		m.Envelope = env.AppendTo(make([]byte, 0, len(m.Envelope)+64))
		scrubbedItemsTotal.Add(changed)
		scrubbedEnvelopesTotal.Inc()
	}
	if dropPeers {
		m.ForwardedFor = ""
	}
	return Keep(), nil
}
