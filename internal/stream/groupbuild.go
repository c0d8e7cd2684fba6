package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// groupHeaderRoom is the room a GroupBuilder keeps in front of its members
// for the group header: the version byte and the member count, a uvarint of
// at most two bytes (MaxGroupMembers < 1<<14).
const groupHeaderRoom = 3

// GroupBuilder builds one stream message for one project member by member:
// each Add encodes its Message into the builder's buffer at once, so the
// caller may reuse the Message (and its Envelope) as soon as Add returns.
// That is what ingest's group publish needs: a request that joined a group
// and then gives up (its ctx ended) must not leave its buffers referenced by
// a publish still running.
//
// Bytes is the version-2 group encoding (group.go) — byte for byte what
// AppendGroup writes for the same Messages — or, for one member, that
// member's plain version-1 encoding. Each Message is encoded exactly once,
// straight into place: no per-member allocation and no copy beyond the
// encoding itself.
//
// A GroupBuilder is not safe for concurrent use (ingest serialises Adds
// under its per-project lock). The zero value is not usable: NewGroupBuilder.
type GroupBuilder struct {
	project uint64
	buf     []byte // groupHeaderRoom bytes, then per member: uvarint length, version-1 encoding
	n       int    // members
	first   int    // offset of the first member's encoding (after its length)
}

// NewGroupBuilder returns an empty builder for projectID's subject;
// sizeHint is the capacity to start with (the expected encoded size).
func NewGroupBuilder(projectID uint64, sizeHint int) *GroupBuilder {
	return &GroupBuilder{project: projectID, buf: make([]byte, groupHeaderRoom, groupHeaderRoom+max(sizeHint, 0))}
}

// Reset empties b for a new group of projectID's subject, keeping its
// buffer's capacity: a builder can be reused once the stream message it
// built is no longer referenced — after PublishBuilt returned, as
// PublishBuilt does not keep Bytes().
func (b *GroupBuilder) Reset(projectID uint64) {
	b.project, b.buf, b.n, b.first = projectID, b.buf[:groupHeaderRoom], 0, 0
}

// ProjectID is the project every member belongs to.
func (b *GroupBuilder) ProjectID() uint64 { return b.project }

// Len is the number of members added.
func (b *GroupBuilder) Len() int { return b.n }

// Size is len(Bytes()): the stream message's size (without headers).
func (b *GroupBuilder) Size() int { return b.sizeWith(b.n, len(b.buf)) }

// sizeWith is the size of the stream message with n members whose framed
// encodings end at end in buf.
func (b *GroupBuilder) sizeWith(n, end int) int {
	switch n {
	case 0:
		return 0
	case 1:
		return end - b.first
	}
	return 1 + uvarintLen(uint64(n)) + end - groupHeaderRoom
}

// ErrGroupProject is returned by Add for a Message of another project than
// the builder's: a group is published on one project's subject.
var ErrGroupProject = errors.New("stream: group: message of another project")

// Add encodes m as the next member unless that would make the stream
// message larger than maxSize bytes (maxSize ≤ 0: no bound) or the group
// would exceed MaxGroupMembers; then it returns false and the builder is
// unchanged. The first member is always taken (a lone Message too large for
// the stream fails its publish with ErrTooLarge, as Publish does). An error
// (ErrGroupProject, or m cannot be encoded) leaves the builder unchanged.
// Cost: one encoding of m into the buffer, which grows by doubling.
func (b *GroupBuilder) Add(m *Message, maxSize int) (bool, error) {
	if m.ProjectID != b.project {
		return false, fmt.Errorf("%w: %d in a group of project %d", ErrGroupProject, m.ProjectID, b.project)
	}
	if b.n == MaxGroupMembers {
		return false, nil
	}
	size := m.encodedSize()
	end := len(b.buf) + uvarintLen(uint64(size)) + size
	if b.n > 0 && maxSize > 0 && b.sizeWith(b.n+1, end) > maxSize {
		return false, nil
	}
	at := len(b.buf)
	b.buf = binary.AppendUvarint(b.buf, uint64(size))
	start := len(b.buf)
	var err error
	if b.buf, err = m.AppendBinary(b.buf); err != nil {
		b.buf = b.buf[:at]
		return false, fmt.Errorf("stream: group: %w", err)
	}
	if len(b.buf)-start != size {
		// encodedSize and AppendBinary disagree: a bug, caught here
		// rather than published as a corrupt group.
		b.buf = b.buf[:at]
		return false, fmt.Errorf("stream: group: message encoded to %d bytes, expected %d", len(b.buf)-start, size)
	}
	if b.n == 0 {
		b.first = start
	}
	b.n++
	return true, nil
}

// Bytes is the stream message: the version-2 group of the members, or the
// version-1 encoding of the only one; nil when empty. It aliases the
// builder's buffer, which Add may change: call it once the builder is done.
func (b *GroupBuilder) Bytes() []byte {
	switch b.n {
	case 0:
		return nil
	case 1:
		return b.buf[b.first:len(b.buf):len(b.buf)]
	}
	k := uvarintLen(uint64(b.n))
	at := groupHeaderRoom - 1 - k
	b.buf[at] = encodingGroup
	binary.PutUvarint(b.buf[at+1:groupHeaderRoom], uint64(b.n))
	return b.buf[at:len(b.buf):len(b.buf)]
}

// PublishBuilt publishes what b built (one stream message on b's project's
// subject) as Publish does: nil only after the PubAck (every member then
// survives a crash), msgID deduplicates retries, errors wrap the same
// sentinels, and a failure promises none of the members (the message is
// stored whole or not at all). It keeps nothing of b once it returned —
// each attempt's bytes are copied into the connection's buffer before it
// waits (pubreply.go) — so b may then be Reset and reused (ingest does).
// Not so in the benchmark's comparison mode libAsyncPublish: the library's
// async publish keeps the message for its own retries.
func (c *Conn) PublishBuilt(ctx context.Context, b *GroupBuilder, msgID string) error {
	if b.n == 0 {
		return errors.New("stream: publish: empty group")
	}
	c.inflight.Add(1)
	defer c.inflight.Add(-1)
	if c.closing.Load() {
		publishFailedUnavail.Inc()
		return fmt.Errorf("stream: publish group: connection closing: %w", ErrUnavailable)
	}
	if err := c.downErr(); err != nil {
		return c.refuseDown(err)
	}
	return c.publishData(ctx, c.Subject(b.project), b.Bytes(), msgID)
}

// encodedSize is the exact length of m's version-1 encoding (AppendBinary),
// computed without encoding: the group's byte bound is checked before a
// member is written, and its length prefix written in front of it.
func (m *Message) encodedSize() int {
	n := 1 + uvarintLen(m.ProjectID) + varintLen(int64(m.Version)) + 1
	for _, s := range [...]string{m.PublicKey, m.Client, m.Origin, m.UserAgent, m.RemoteAddr, m.ForwardedFor, m.EventID} {
		n += uvarintLen(uint64(len(s))) + len(s)
	}
	if !m.ReceivedAt.IsZero() {
		n += varintLen(m.ReceivedAt.Unix()) + uvarintLen(uint64(m.ReceivedAt.Nanosecond()))
	}
	return n + uvarintLen(uint64(len(m.Envelope))) + len(m.Envelope)
}

// uvarintLen is len(binary.AppendUvarint(nil, x)).
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// varintLen is len(binary.AppendVarint(nil, x)) (zig-zag).
func varintLen(x int64) int { return uvarintLen(uint64(x<<1) ^ uint64(x>>63)) }
