package upstream

import "github.com/relayhq/relay/internal/stream"

// RequestFrom builds the upstream request for a stream message: the SDK's
// key, client, protocol version and request metadata travel unchanged, and
// the envelope bytes are used as they are (not copied).
func RequestFrom(m *stream.Message) Request {
	return Request{
		ProjectID:    m.ProjectID,
		PublicKey:    m.PublicKey,
		Client:       m.Client,
		Version:      m.Version,
		ForwardedFor: m.ForwardedFor,
		UserAgent:    m.UserAgent,
		Origin:       m.Origin,
		Envelope:     m.Envelope,
	}
}
