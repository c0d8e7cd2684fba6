package stream

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzMessageUnmarshal: decoding arbitrary bytes never panics, fails only with
// one of the three documented errors, and whatever decodes re-encodes to the
// very same bytes (the encoding is canonical for what it accepts, except for
// the time's location, which is always UTC after decoding).
func FuzzMessageUnmarshal(f *testing.F) {
	seed := sampleMessage()
	b, _ := seed.MarshalBinary()
	f.Add(b)
	z, _ := (&Message{}).MarshalBinary()
	f.Add(z)
	f.Add([]byte{})
	f.Add([]byte{2})
	f.Add(b[:len(b)/2])
	f.Fuzz(func(t *testing.T, in []byte) {
		var m Message
		err := m.UnmarshalBinary(in)
		if err != nil {
			if !errors.Is(err, ErrMessageTruncated) && !errors.Is(err, ErrMessageVersion) && !errors.Is(err, ErrMessageCorrupt) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		out, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		// Varints have non-minimal encodings that decode fine (e.g. 0x80 0x00),
		// so compare by decoding again rather than byte-for-byte.
		var again Message
		if err := again.UnmarshalBinary(out); err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		if !equalMessages(m, again) {
			t.Fatalf("re-encode changed the message:\n%+v\n%+v", m, again)
		}
	})
}

// FuzzMessageRoundTrip: any message survives encode → decode.
func FuzzMessageRoundTrip(f *testing.F) {
	s := sampleMessage()
	f.Add(s.ProjectID, s.PublicKey, s.Client, s.Version, s.Origin, s.UserAgent, s.RemoteAddr, s.ForwardedFor, s.ReceivedAt.UnixNano(), s.EventID, s.Envelope)
	f.Add(uint64(0), "", "", 0, "", "", "", "", int64(0), "", []byte(nil))
	f.Fuzz(func(t *testing.T, pid uint64, key, client string, version int, origin, ua, addr, xff string, at int64, eventID string, env []byte) {
		m := Message{ProjectID: pid, PublicKey: key, Client: client, Version: int(int32(version)), Origin: origin,
			UserAgent: ua, RemoteAddr: addr, ForwardedFor: xff, EventID: eventID, Envelope: env}
		if at != 0 {
			m.ReceivedAt = time.Unix(0, at)
		}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Message
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if len(m.Envelope) == 0 {
			m.Envelope = nil
		}
		if !equalMessages(got, m) || !bytes.Equal(got.Envelope, m.Envelope) {
			t.Fatalf("mismatch:\n got %+v\nwant %+v", got, m)
		}
	})
}

// FuzzGroupMembers: the group decoder never panics or allocates beyond its
// input, returns only documented errors, and every member it returns is a
// version-1 encoding; a decoded group re-encodes to the same members.
func FuzzGroupMembers(f *testing.F) {
	g, _ := AppendGroup(nil, []*Message{msgN(0), msgN(3), msgN(6)})
	f.Add(g)
	f.Add(g[:len(g)/2])
	f.Add([]byte{encodingGroup, 2, 1, 1, 1, 1})
	f.Add([]byte{encodingGroup, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, in []byte) {
		members, err := GroupMembers(in)
		if err != nil {
			if !errors.Is(err, ErrMessageTruncated) && !errors.Is(err, ErrMessageVersion) && !errors.Is(err, ErrMessageCorrupt) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		if len(members) < 2 || len(members) > MaxGroupMembers {
			t.Fatalf("%d members", len(members))
		}
		ms := make([]*Message, 0, len(members))
		for _, raw := range members {
			if raw[0] != encodingV1 {
				t.Fatalf("member of version %d", raw[0])
			}
			var m Message
			if err := m.UnmarshalBinary(raw); err != nil {
				return // framing is valid, a member is not: the consumer's concern
			}
			ms = append(ms, &m)
		}
		for _, m := range ms[1:] {
			if m.ProjectID != ms[0].ProjectID {
				return // AppendGroup refuses mixed projects; nothing to compare
			}
		}
		out, err := AppendGroup(nil, ms)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := GroupMembers(out)
		if err != nil || len(again) != len(members) {
			t.Fatalf("decode of re-encoding: %d members, %v", len(again), err)
		}
	})
}
