package stream

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func sampleMessage() Message {
	return Message{
		ProjectID:    42,
		PublicKey:    "e12d836b15bb49d7bbf99e64295d995b",
		Client:       "sentry.go/0.50.0",
		Version:      7,
		Origin:       "https://app.example.com",
		UserAgent:    "sentry-go/0.50.0",
		RemoteAddr:   "203.0.113.7",
		ForwardedFor: "198.51.100.1, 203.0.113.7",
		ReceivedAt:   time.Date(2025, 3, 4, 5, 6, 7, 891011121, time.UTC),
		EventID:      "9ec79c33ec9942ab8353589fcb2e04dc",
		Envelope:     []byte("{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"event\",\"length\":2}\n{}\n"),
	}
}

func equalMessages(a, b Message) bool {
	return a.ProjectID == b.ProjectID && a.PublicKey == b.PublicKey && a.Client == b.Client &&
		a.Version == b.Version && a.Origin == b.Origin && a.UserAgent == b.UserAgent &&
		a.RemoteAddr == b.RemoteAddr && a.ForwardedFor == b.ForwardedFor &&
		a.ReceivedAt.Equal(b.ReceivedAt) && a.ReceivedAt.IsZero() == b.ReceivedAt.IsZero() &&
		a.EventID == b.EventID && bytes.Equal(a.Envelope, b.Envelope)
}

func TestMessageRoundTrip(t *testing.T) {
	full := sampleMessage()
	local := full
	local.ReceivedAt = time.Date(2025, 3, 4, 5, 6, 7, 8, time.FixedZone("CET", 3600))
	before1970 := full
	before1970.ReceivedAt = time.Date(1901, 1, 1, 0, 0, 0, 1, time.UTC)
	big := full
	big.Envelope = bytes.Repeat([]byte("x"), 1<<20)
	negVersion := full
	negVersion.Version = -3
	maxID := full
	maxID.ProjectID = ^uint64(0)
	unicode := full
	unicode.UserAgent = "agënt/1 ✓ \x00 nul"

	tests := []struct {
		name string
		msg  Message
	}{
		{"zero", Message{}},
		{"full", full},
		{"non-UTC time", local},
		{"time before 1970", before1970},
		{"1 MiB envelope", big},
		{"negative protocol version", negVersion},
		{"max project id", maxID},
		{"non-ASCII and NUL in strings", unicode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.msg.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			if b[0] != encodingCurrent {
				t.Fatalf("first byte = %d, want version %d", b[0], encodingCurrent)
			}
			if len(b) > cap(b) || cap(b) < tt.msg.encodedLen() {
				t.Fatalf("MarshalBinary regrew its buffer: len %d cap %d bound %d", len(b), cap(b), tt.msg.encodedLen())
			}
			var got Message
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if !equalMessages(got, tt.msg) {
				t.Fatalf("round trip mismatch:\n got %+v\nwant %+v", got, tt.msg)
			}
			// AppendBinary onto a prefix gives the same bytes after it.
			pre := []byte("prefix")
			ab, err := tt.msg.AppendBinary(pre)
			if err != nil {
				t.Fatalf("AppendBinary: %v", err)
			}
			if !bytes.Equal(ab[len(pre):], b) {
				t.Fatal("AppendBinary differs from MarshalBinary")
			}
		})
	}
}

func TestMessageEnvelopeAliasesInput(t *testing.T) {
	m := sampleMessage()
	b, _ := m.MarshalBinary()
	var got Message
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	// The envelope must alias the input (no copy) ...
	if &got.Envelope[0] != &b[len(b)-len(m.Envelope)] {
		t.Fatal("Envelope was copied; it should alias the input")
	}
	// ... with its capacity clipped, so an append cannot scribble on b.
	if cap(got.Envelope) != len(got.Envelope) {
		t.Fatalf("Envelope cap %d != len %d", cap(got.Envelope), len(got.Envelope))
	}
	// Strings are copies: mutating b after decoding does not change them.
	for i := range b[:len(b)-len(m.Envelope)] {
		if i > 0 {
			b[i] = 'Z'
		}
	}
	if got.PublicKey != m.PublicKey || got.ForwardedFor != m.ForwardedFor {
		t.Fatal("strings alias the input")
	}
}

func TestMessageUnmarshalRejectsTruncation(t *testing.T) {
	m := sampleMessage()
	b, _ := m.MarshalBinary()
	// Every proper prefix must fail with ErrMessageTruncated: the envelope is
	// length-prefixed, so even a cut inside it is detected.
	for n := 0; n < len(b); n++ {
		var got Message
		err := got.UnmarshalBinary(b[:n])
		if !errors.Is(err, ErrMessageTruncated) {
			t.Fatalf("prefix of %d/%d bytes: err = %v, want ErrMessageTruncated", n, len(b), err)
		}
		if !equalMessages(got, Message{}) {
			t.Fatalf("prefix of %d bytes: message not left zeroed on error", n)
		}
	}
}

func TestMessageUnmarshalErrors(t *testing.T) {
	good, _ := (&Message{ProjectID: 1, ReceivedAt: time.Unix(5, 0)}).MarshalBinary()
	// Offset of the ReceivedAt presence flag in `good`: version, project id,
	// two empty strings, version varint, four empty strings.
	flagAt := 1 + 1 + 1 + 1 + 1 + 4
	badFlag := bytes.Clone(good)
	badFlag[flagAt] = 7
	badNanos := append(bytes.Clone(good[:flagAt+2]), 0x80, 0x94, 0xeb, 0xdc, 0x03, 0, 0) // 1e9 ns
	tests := []struct {
		name    string
		in      []byte
		want    error
		message string
	}{
		{"empty", nil, ErrMessageTruncated, "empty input"},
		{"version 0", []byte{0}, ErrMessageVersion, "version 0"},
		{"version 2", append([]byte{2}, good[1:]...), ErrMessageVersion, "version 2"},
		{"version 255", []byte{255, 1, 2, 3}, ErrMessageVersion, "version 255"},
		{"trailing bytes", append(bytes.Clone(good), 'x'), ErrMessageCorrupt, "1 trailing bytes"},
		{"overlong varint", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrMessageCorrupt, "project_id"},
		{"bad time flag", badFlag, ErrMessageCorrupt, "presence flag 7"},
		{"nanoseconds out of range", badNanos, ErrMessageCorrupt, "nanoseconds"},
		{"huge string length", []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}, ErrMessageTruncated, "public_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			err := m.UnmarshalBinary(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("error %q does not mention %q", err, tt.message)
			}
		})
	}
}

func TestMessageMarshalRejectsHugeVersion(t *testing.T) {
	m := Message{Version: 1 << 40}
	if _, err := m.MarshalBinary(); err == nil {
		t.Fatal("MarshalBinary accepted a protocol version outside int32")
	}
}

func BenchmarkMessageMarshal(b *testing.B) {
	m := sampleMessage()
	m.Envelope = bytes.Repeat([]byte("x"), 1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMessageUnmarshal(b *testing.B) {
	m := sampleMessage()
	m.Envelope = bytes.Repeat([]byte("x"), 1024)
	enc, _ := m.MarshalBinary()
	b.ReportAllocs()
	var got Message
	for b.Loop() {
		if err := got.UnmarshalBinary(enc); err != nil {
			b.Fatal(err)
		}
	}
}
