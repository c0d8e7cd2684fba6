package stream

import (
	"encoding/binary"
	"fmt"
)

// A group is one stream message that carries several Messages: ingest's
// group publish (ingest/group.go) lets concurrent requests for one project
// share a single publish — one Nats-Msg-Id, one PubAck, one stored record,
// one delivery and one ack — instead of paying JetStream's per-message cost
// for each envelope. Each SDK is still answered only after the group's
// PubAck.
//
// Version 2 layout (integers are uvarints):
//
//	byte     version (=2)
//	uvarint  count          (2 ≤ count ≤ MaxGroupMembers)
//	count ×  member          uvarint length, then a version-1 encoding
//
// A member is a complete version-1 Message encoding — never another group —
// so a member can be handed on by itself (to the spool, or re-published
// alone) as the very bytes it was published as. Nothing may follow the last
// member. A group of one is never written: a lone Message is published in
// version 1, which every worker reads.
//
// # The ack rule for a group
//
// A group is acknowledged on the stream only when every member was settled
// — forwarded, spooled, dead-lettered, dropped by a stage, or re-published
// alone (Delivery.Nak on a member) — see Delivery. A member that cannot be
// settled makes the whole group come back: duplicates of the members
// already settled, never a loss.
const encodingGroup byte = 2

// MaxGroupMembers bounds a group, so a decoder never allocates for a count
// it cannot hold (a corrupt or hostile count fails before any allocation).
const MaxGroupMembers = 256

// AppendGroup appends the version-2 encoding of ms to dst. It needs at least
// two Messages, no more than MaxGroupMembers, all for one project (a group is
// published on that project's subject).
func AppendGroup(dst []byte, ms []*Message) ([]byte, error) {
	if len(ms) < 2 || len(ms) > MaxGroupMembers {
		return dst, fmt.Errorf("stream: encode group: %d members (want 2 to %d)", len(ms), MaxGroupMembers)
	}
	n := 1 + binary.MaxVarintLen64
	for _, m := range ms {
		if m.ProjectID != ms[0].ProjectID {
			return dst, fmt.Errorf("stream: encode group: projects %d and %d in one group", ms[0].ProjectID, m.ProjectID)
		}
		n += binary.MaxVarintLen64 + m.encodedLen()
	}
	if cap(dst)-len(dst) < n {
		dst = append(make([]byte, 0, len(dst)+n), dst...)
	}
	dst = append(dst, encodingGroup)
	dst = binary.AppendUvarint(dst, uint64(len(ms)))
	for _, m := range ms {
		// The length prefix is written after the member, once its size is
		// known: reserve the maximum, encode, then shift the member left
		// over the unused prefix bytes (a memmove of one member, cheaper
		// than encoding twice).
		at := len(dst)
		dst = append(dst, make([]byte, binary.MaxVarintLen64)...)
		var err error
		if dst, err = m.AppendBinary(dst); err != nil {
			return dst[:at], err
		}
		size := len(dst) - at - binary.MaxVarintLen64
		k := binary.PutUvarint(dst[at:], uint64(size))
		copy(dst[at+k:], dst[at+binary.MaxVarintLen64:])
		dst = dst[:at+k+size]
	}
	return dst, nil
}

// IsGroup reports whether b is a version-2 group (by its first byte only).
func IsGroup(b []byte) bool { return len(b) > 0 && b[0] == encodingGroup }

// GroupMembers returns the members of the group b, each the version-1
// encoding of one Message, aliasing b (capacity clipped). It checks the
// framing and that every member is a version-1 encoding, not that a member
// decodes: decode each with UnmarshalBinary. Errors wrap ErrMessageVersion,
// ErrMessageTruncated or ErrMessageCorrupt.
func GroupMembers(b []byte) ([][]byte, error) {
	if !IsGroup(b) {
		if len(b) == 0 {
			return nil, fmt.Errorf("stream: decode group: empty input: %w", ErrMessageTruncated)
		}
		return nil, fmt.Errorf("stream: decode group: version %d is not a group: %w", b[0], ErrMessageVersion)
	}
	d := decoder{b: b, off: 1}
	count := d.uvarint("count")
	if d.err != nil {
		return nil, groupErr(d.err)
	}
	if count < 2 || count > MaxGroupMembers {
		d.fail("count", ErrMessageCorrupt, fmt.Sprintf("%d members (want 2 to %d)", count, MaxGroupMembers))
		return nil, groupErr(d.err)
	}
	out := make([][]byte, 0, count)
	for range count {
		m := d.bytes("member")
		if d.err != nil {
			return nil, groupErr(d.err)
		}
		if len(m) == 0 || m[0] != encodingV1 {
			d.fail("member", ErrMessageCorrupt, "member is not a version-1 message")
			return nil, groupErr(d.err)
		}
		out = append(out, m)
	}
	if d.off != len(b) {
		d.fail("member", ErrMessageCorrupt, fmt.Sprintf("%d trailing bytes", len(b)-d.off))
		return nil, groupErr(d.err)
	}
	return out, nil
}

// groupErr renames the shared decoder's error for a group.
func groupErr(err error) error { return fmt.Errorf("stream: decode group: %w", err) }
