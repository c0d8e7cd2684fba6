package worker

import (
	"fmt"

	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/scrub"
)

// ScrubberSource gives the scrubbing a key's project asks for
// (internal/project's *Registry is the real one): the project's own
// compiled piiConfig and datascrubbingSettings, or nil when the project has
// none (or the key no project config), and the stage's relay-wide scrubber
// applies. An error means the project's rules exist but are unknown (its
// config is broken): the message is then buried, never forwarded with less
// scrubbing than its project asked for. ScrubberFor must not block.
type ScrubberSource interface {
	ScrubberFor(publicKey string) (*scrub.Scrubber, error)
}

// noopScrubber is implemented by scrubbers that can tell they never change
// anything (*scrub.Scrubber), so the stage skips parsing the envelope.
type noopScrubber interface {
	Noop() bool
}

// WithProjects makes the stage scrub each message with its key's project's
// rules when the project has its own, and with the relay-wide scrubber
// given to NewScrubStage otherwise. It returns st.
func (st *ScrubStage) WithProjects(src ScrubberSource) *ScrubStage {
	st.projects = src
	return st
}

// scrubberFor picks the scrubber for m and whether it removes the client's
// address too.
func (st *ScrubStage) scrubberFor(m *stream.Message) (ItemScrubber, bool, error) {
	if st.projects == nil {
		rw := st.relayWide.Load()
		return rw.s, rw.dropPeers, nil
	}
	ps, err := st.projects.ScrubberFor(m.PublicKey)
	if err != nil {
		return nil, false, fmt.Errorf("scrub: %w", err)
	}
	if ps == nil {
		rw := st.relayWide.Load()
		return rw.s, rw.dropPeers, nil
	}
	return ps, ps.ScrubsIPAddresses(), nil
}
