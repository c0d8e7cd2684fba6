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
