package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Message is the ONLY contract between ingest and worker: ingest publishes one
// per accepted envelope, the worker consumes it, the spool stores its encoding.
// Ingest and worker may run different builds (separate processes on a NATS
// cluster), so the encoding is versioned; see MarshalBinary.
type Message struct {
	ProjectID    uint64
	PublicKey    string // the SDK's DSN key (forwarded upstream unchanged)
	Client       string // sentry_client of the SDK ("" if none)
	Version      int    // sentry_version (protocol), default 7
	Origin       string
	UserAgent    string
	RemoteAddr   string // socket peer IP
	ForwardedFor string // chain to send upstream: incoming X-Forwarded-For + ", " + peer (or peer alone)
	ReceivedAt   time.Time
	EventID      string // 32 hex or ""
	Envelope     []byte // validated envelope bytes as they will be forwarded
}

// Encoding versions. Version 1 layout, all integers are Go varints
// (encoding/binary: uvarint, or zig-zag varint where signed):
//
//	byte     version (=1)
//	uvarint  ProjectID
//	string   PublicKey      (string = uvarint length, then the bytes)
//	string   Client
//	varint   Version
//	string   Origin
//	string   UserAgent
//	string   RemoteAddr
//	string   ForwardedFor
//	byte     ReceivedAt present (0 = zero time, 1 = set)
//	varint   ReceivedAt Unix seconds   (only when present)
//	uvarint  ReceivedAt nanoseconds    (only when present, < 1e9)
//	string   EventID
//	bytes    Envelope       (uvarint length, then the bytes; last, so decoding
//	                         can alias it instead of copying)
//
// Nothing may follow the envelope: trailing bytes are rejected as corruption.
// A change of layout — including a new field — is a new version. Decoders
// accept every version up to their own, so upgrade workers before ingest.
const (
	encodingV1 byte = 1
	// encodingCurrent is what MarshalBinary writes.
	encodingCurrent = encodingV1
)

// ErrMessageVersion is wrapped by UnmarshalBinary when the first byte names an
// encoding version this build does not know (a newer ingest than worker, or
// data that is not a Message at all).
var ErrMessageVersion = errors.New("unknown message encoding version")

// ErrMessageTruncated is wrapped by UnmarshalBinary when the input ends inside
// a field.
var ErrMessageTruncated = errors.New("message truncated")

// ErrMessageCorrupt is wrapped by UnmarshalBinary for input that is not
// truncated but still cannot be a valid encoding (overlong varint, bad flag,
// trailing bytes).
var ErrMessageCorrupt = errors.New("message corrupt")

// MarshalBinary encodes m in the current version. It allocates exactly once.
// It fails only for a protocol Version outside the int32 range, which no SDK
// sends and which a 32-bit decoder could not hold.
func (m *Message) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, m.encodedLen()))
}

// AppendBinary appends the encoding of m to dst (encoding.BinaryAppender).
func (m *Message) AppendBinary(dst []byte) ([]byte, error) {
	if m.Version < math.MinInt32 || m.Version > math.MaxInt32 {
		return dst, fmt.Errorf("stream: encode message: protocol version %d out of range", m.Version)
	}
	dst = append(dst, encodingCurrent)
	dst = binary.AppendUvarint(dst, m.ProjectID)
	dst = appendString(dst, m.PublicKey)
	dst = appendString(dst, m.Client)
	dst = binary.AppendVarint(dst, int64(m.Version))
	dst = appendString(dst, m.Origin)
	dst = appendString(dst, m.UserAgent)
	dst = appendString(dst, m.RemoteAddr)
	dst = appendString(dst, m.ForwardedFor)
	if m.ReceivedAt.IsZero() {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1)
		dst = binary.AppendVarint(dst, m.ReceivedAt.Unix())
		dst = binary.AppendUvarint(dst, uint64(m.ReceivedAt.Nanosecond()))
	}
	dst = appendString(dst, m.EventID)
	dst = binary.AppendUvarint(dst, uint64(len(m.Envelope)))
	dst = append(dst, m.Envelope...)
	return dst, nil
}

// encodedLen is an upper bound of the encoding's size (exact for the strings
// and envelope, generous for the varints), so MarshalBinary never regrows.
func (m *Message) encodedLen() int {
	n := 1 + binary.MaxVarintLen64*6 + 1 // version, varints, time flag
	for _, s := range [...]string{m.PublicKey, m.Client, m.Origin, m.UserAgent, m.RemoteAddr, m.ForwardedFor, m.EventID} {
		n += binary.MaxVarintLen64 + len(s)
	}
	return n + binary.MaxVarintLen64 + len(m.Envelope)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// UnmarshalBinary decodes b into m, replacing every field. Strings are copied;
// m.Envelope aliases b (capacity clipped, so appending to it never writes into
// b): the caller must not modify b while m is in use. Errors wrap
// ErrMessageVersion, ErrMessageTruncated or ErrMessageCorrupt and name the
// field; on error m is left zeroed.
func (m *Message) UnmarshalBinary(b []byte) error {
	*m = Message{}
	if len(b) == 0 {
		return fmt.Errorf("stream: decode message: empty input: %w", ErrMessageTruncated)
	}
	switch b[0] {
	case encodingV1:
	default:
		return fmt.Errorf("stream: decode message: version %d (this build reads up to %d): %w", b[0], encodingCurrent, ErrMessageVersion)
	}
	d := decoder{b: b, off: 1}
	var out Message
	out.ProjectID = d.uvarint("project_id")
	out.PublicKey = string(d.bytes("public_key"))
	out.Client = string(d.bytes("client"))
	v := d.varint("version")
	if d.err == nil && (v < math.MinInt32 || v > math.MaxInt32) {
		d.fail("version", ErrMessageCorrupt, fmt.Sprintf("protocol version %d out of range", v))
	}
	out.Version = int(v)
	out.Origin = string(d.bytes("origin"))
	out.UserAgent = string(d.bytes("user_agent"))
	out.RemoteAddr = string(d.bytes("remote_addr"))
	out.ForwardedFor = string(d.bytes("forwarded_for"))
	switch d.byte("received_at") {
	case 0:
	case 1:
		sec := d.varint("received_at")
		nsec := d.uvarint("received_at")
		if d.err == nil && nsec >= 1e9 {
			d.fail("received_at", ErrMessageCorrupt, fmt.Sprintf("nanoseconds %d out of range", nsec))
		}
		if d.err == nil {
			out.ReceivedAt = time.Unix(sec, int64(nsec)).UTC()
		}
	default:
		if d.err == nil {
			d.fail("received_at", ErrMessageCorrupt, fmt.Sprintf("presence flag %d", b[d.off-1]))
		}
	}
	out.EventID = string(d.bytes("event_id"))
	out.Envelope = d.bytes("envelope")
	if d.err == nil && d.off != len(b) {
		d.fail("envelope", ErrMessageCorrupt, fmt.Sprintf("%d trailing bytes", len(b)-d.off))
	}
	if d.err != nil {
		return d.err
	}
	if len(out.Envelope) == 0 {
		out.Envelope = nil // normalise: an empty envelope decodes as nil, never as an alias of b
	}
	*m = out
	return nil
}

// decoder reads fields in order and remembers the first error, so the decode
// reads as a list of fields; once err is set every read returns zero.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(field string, kind error, detail string) {
	d.err = fmt.Errorf("stream: decode message: field %s at offset %d: %s: %w", field, d.off, detail, kind)
}

func (d *decoder) uvarint(field string) uint64 {
	return varintOf(d, field, binary.Uvarint)
}

func (d *decoder) varint(field string) int64 {
	return varintOf(d, field, binary.Varint)
}

// varintOf reads one varint with read (binary.Uvarint or binary.Varint).
func varintOf[T uint64 | int64](d *decoder, field string, read func([]byte) (T, int)) T {
	if d.err != nil {
		return 0
	}
	v, n := read(d.b[d.off:])
	switch {
	case n == 0:
		d.fail(field, ErrMessageTruncated, "input ends inside a varint")
		return 0
	case n < 0:
		d.fail(field, ErrMessageCorrupt, "varint overflows 64 bits")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail(field, ErrMessageTruncated, "input ends before the field")
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

// bytes reads a length-prefixed field and returns it aliasing d.b with its
// capacity clipped to its length.
func (d *decoder) bytes(field string) []byte {
	n := d.uvarint(field)
	if d.err != nil {
		return nil
	}
	if rest := uint64(len(d.b) - d.off); n > rest {
		d.fail(field, ErrMessageTruncated, fmt.Sprintf("length %d but %d bytes left", n, rest))
		return nil
	}
	end := d.off + int(n)
	s := d.b[d.off:end:end]
	d.off = end
	return s
}
