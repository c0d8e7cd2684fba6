package worker

import (
	"unsafe"

	"github.com/relayhq/relay/internal/stream"
)

// spoolData returns the bytes to spool or bury for a delivery whose stages
// have run: the message as it was published (Delivery.Raw) when no stage
// changed it, so moving a backlog into the spool neither re-encodes nor
// copies each envelope; nil when a stage changed it, and the parcel then
// encodes the message as the stages left it. before is the message as it
// was before the stages.
//
// The envelope is compared by identity, not content: Msg.Envelope aliases
// the tail of Raw, so a stage that rewrites it in place, keeping its
// length, has rewritten Raw too; a stage that builds a new envelope gives
// it a new backing array or length.
func spoolData(d *stream.Delivery, before *stream.Message) []byte {
	if !sameMessage(before, &d.Msg) {
		return nil
	}
	return d.Raw()
}

// sameMessage reports whether a and b encode to the same bytes, given that
// b is a after the stages: every field equal, the envelope the same slice.
// TestSameMessageKnowsEveryField fails when stream.Message gains a field
// this does not compare.
func sameMessage(a, b *stream.Message) bool {
	return a.ProjectID == b.ProjectID &&
		a.PublicKey == b.PublicKey &&
		a.Client == b.Client &&
		a.Version == b.Version &&
		a.Origin == b.Origin &&
		a.UserAgent == b.UserAgent &&
		a.RemoteAddr == b.RemoteAddr &&
		a.ForwardedFor == b.ForwardedFor &&
		a.ReceivedAt.Equal(b.ReceivedAt) &&
		a.EventID == b.EventID &&
		len(a.Envelope) == len(b.Envelope) &&
		unsafe.SliceData(a.Envelope) == unsafe.SliceData(b.Envelope)
}
