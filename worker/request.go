package worker

import (
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
)

// requestFor builds the upstream request for a stream message: the SDK's
// key, client, protocol version and request metadata travel unchanged, and
// the envelope bytes are used as they are (not copied). It lives here, not
// in internal/upstream, so that the HTTP client does not depend on the
// queue's message type.
func requestFor(m *stream.Message) upstream.Request {
	return upstream.Request{
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
