package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

// A builder's bytes are exactly what AppendGroup writes for the same
// members (one member: its version-1 encoding), for counts whose uvarint
// takes one and two bytes.
func TestGroupBuilderMatchesAppendGroup(t *testing.T) {
	for _, n := range []int{1, 2, 3, 32, 127, 128, MaxGroupMembers} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ms := groupOf(n)
			ms[0].Envelope = bytes.Repeat([]byte("x"), 300) // a two-byte length prefix
			b := NewGroupBuilder(ms[0].ProjectID, 0)
			for i, m := range ms {
				ok, err := b.Add(m, 0)
				if err != nil || !ok {
					t.Fatalf("add %d: %v %v", i, ok, err)
				}
			}
			var want []byte
			if n == 1 {
				want, _ = ms[0].MarshalBinary()
			} else {
				want, _ = AppendGroup(nil, ms)
			}
			got := b.Bytes()
			if !bytes.Equal(got, want) {
				t.Fatalf("builder bytes differ from AppendGroup's (%d vs %d bytes)", len(got), len(want))
			}
			if b.Size() != len(got) || b.Len() != n {
				t.Fatalf("Size %d Len %d, want %d %d", b.Size(), b.Len(), len(got), n)
			}
		})
	}
}

// A reset builder (ingest reuses them) builds exactly what a new one would:
// nothing of the group before it, larger or smaller, is left in its bytes.
func TestGroupBuilderReset(t *testing.T) {
	b := NewGroupBuilder(1, 0)
	for i, n := range []int{32, 1, 3, 128, 2, 1} {
		ms := groupOf(n)
		project := uint64(100 + i)
		for _, m := range ms {
			m.ProjectID = project
			m.Envelope = bytes.Repeat([]byte{byte('a' + i)}, 100*(i+1))
		}
		b.Reset(project)
		if b.Len() != 0 || b.Size() != 0 || b.Bytes() != nil || b.ProjectID() != project {
			t.Fatalf("group %d: after Reset: Len %d Size %d project %d", i, b.Len(), b.Size(), b.ProjectID())
		}
		if ok, err := b.Add(&Message{ProjectID: project - 1}, 0); ok || !errors.Is(err, ErrGroupProject) {
			t.Fatalf("group %d: a member of the previous group's project: %v %v", i, ok, err)
		}
		for j, m := range ms {
			if ok, err := b.Add(m, 0); err != nil || !ok {
				t.Fatalf("group %d: add %d: %v %v", i, j, ok, err)
			}
		}
		var want []byte
		if n == 1 {
			want, _ = ms[0].MarshalBinary()
		} else {
			want, _ = AppendGroup(nil, ms)
		}
		if got := b.Bytes(); !bytes.Equal(got, want) || b.Size() != len(want) || b.Len() != n {
			t.Fatalf("group %d (%d members): %d bytes, Size %d, Len %d; want %d bytes", i, n, len(got), b.Size(), b.Len(), len(want))
		}
	}
}

func TestGroupBuilderBounds(t *testing.T) {
	m := msgN(0)
	one, _ := m.MarshalBinary()
	member := len(binary.AppendUvarint(nil, uint64(len(one)))) + len(one) // framed
	tests := []struct {
		name    string
		maxSize int
		want    int // members taken before Add says no
	}{
		{"unbounded stops at MaxGroupMembers", 0, MaxGroupMembers},
		{"first member always taken", 1, 1},
		{"exactly two", 2 + 2*member, 2},
		{"one byte short of three", 2 + 3*member - 1, 2},
		{"exactly three", 2 + 3*member, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewGroupBuilder(m.ProjectID, 64)
			for {
				before := b.Size()
				ok, err := b.Add(m, tt.maxSize)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					if b.Size() != before {
						t.Fatal("a refused Add changed the builder")
					}
					break
				}
			}
			if b.Len() != tt.want {
				t.Fatalf("took %d members, want %d", b.Len(), tt.want)
			}
			if tt.maxSize > 0 && b.Len() > 1 && b.Size() > tt.maxSize {
				t.Fatalf("size %d over the bound %d", b.Size(), tt.maxSize)
			}
			if len(b.Bytes()) != b.Size() {
				t.Fatalf("len(Bytes) %d != Size %d", len(b.Bytes()), b.Size())
			}
		})
	}
}

func TestGroupBuilderRefuses(t *testing.T) {
	b := NewGroupBuilder(1, 0)
	if ok, err := b.Add(msgN(0), 0); !ok || err != nil {
		t.Fatal(ok, err)
	}
	size := b.Size()
	other := msgN(1) // project 2
	if _, err := b.Add(other, 0); !errors.Is(err, ErrGroupProject) {
		t.Fatalf("another project: %v", err)
	}
	bad := msgN(0)
	bad.Version = math.MaxInt32 + 1
	if _, err := b.Add(bad, 0); err == nil {
		t.Fatal("an unencodable message was added")
	}
	if b.Size() != size || b.Len() != 1 {
		t.Fatal("a failed Add changed the builder")
	}
	if NewGroupBuilder(1, 0).Bytes() != nil {
		t.Fatal("an empty builder has bytes")
	}
}

// FuzzGroupBuilder: encodedSize is the encoding's exact length for any
// Message, and a builder of two copies decodes back to both.
func FuzzGroupBuilder(f *testing.F) {
	s := sampleMessage()
	f.Add(s.ProjectID, s.PublicKey, s.Client, s.Version, s.Origin, s.UserAgent, s.RemoteAddr, s.ForwardedFor, s.ReceivedAt.UnixNano(), s.EventID, s.Envelope)
	f.Add(uint64(math.MaxUint64), "", "", math.MinInt32, "", "", "", "", int64(math.MinInt64), "", []byte(nil))
	f.Add(uint64(0), "", "", math.MaxInt32+1, "", "", "", "", int64(-1), "", bytes.Repeat([]byte("y"), 200))
	f.Fuzz(func(t *testing.T, pid uint64, key, client string, version int, origin, ua, addr, xff string, at int64, eventID string, env []byte) {
		m := Message{ProjectID: pid, PublicKey: key, Client: client, Version: version, Origin: origin,
			UserAgent: ua, RemoteAddr: addr, ForwardedFor: xff, EventID: eventID, Envelope: env}
		if at != 0 {
			m.ReceivedAt = time.Unix(0, at)
		}
		b := NewGroupBuilder(pid, 0)
		want, err := m.MarshalBinary()
		if err != nil {
			if _, addErr := b.Add(&m, 0); addErr == nil || b.Len() != 0 {
				t.Fatalf("Add took a message MarshalBinary refuses (%v)", err)
			}
			return
		}
		if got := m.encodedSize(); got != len(want) {
			t.Fatalf("encodedSize %d, encoding %d bytes", got, len(want))
		}
		for range 2 {
			if ok, err := b.Add(&m, 0); !ok || err != nil {
				t.Fatalf("add: %v %v", ok, err)
			}
		}
		members, err := GroupMembers(b.Bytes())
		if err != nil || len(members) != 2 {
			t.Fatalf("members %d: %v", len(members), err)
		}
		for _, raw := range members {
			if !bytes.Equal(raw, want) {
				t.Fatal("member differs from the message's encoding")
			}
		}
	})
}

// PublishBuilt stores one stream message on the project's subject; a
// builder of one is a plain version-1 message; a retry with the same id is
// stored once; a builder over the stream's limit is ErrTooLarge.
func TestPublishBuilt(t *testing.T) {
	c := openTest(t, testConfig(t))
	ms := groupOf(5)
	b := NewGroupBuilder(1, 0)
	for _, m := range ms {
		if _, err := b.Add(m, 0); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := c.PublishBuilt(ctxT(t, 10*time.Second), b, "b-1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := streamMsgs(t, c); n != 1 {
		t.Fatalf("stream holds %d messages, want 1", n)
	}
	raw, err := c.stream.GetMsg(ctxT(t, 5*time.Second), 1)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Subject != c.Subject(1) {
		t.Fatalf("subject %q", raw.Subject)
	}
	if members, err := GroupMembers(raw.Data); err != nil || len(members) != len(ms) {
		t.Fatalf("members %d: %v", len(members), err)
	}

	lone := NewGroupBuilder(2, 0)
	if _, err := lone.Add(msgN(1), 0); err != nil {
		t.Fatal(err)
	}
	if err := c.PublishBuilt(ctxT(t, 10*time.Second), lone, ""); err != nil {
		t.Fatal(err)
	}
	raw, err = c.stream.GetMsg(ctxT(t, 5*time.Second), 2)
	if err != nil {
		t.Fatal(err)
	}
	var got Message
	if IsGroup(raw.Data) || got.UnmarshalBinary(raw.Data) != nil || raw.Subject != c.Subject(2) {
		t.Fatal("a builder of one was not stored as a version-1 message")
	}
	sameMessage(t, got, msgN(1))

	big := NewGroupBuilder(1, 0)
	for _, m := range groupOf(3) {
		m.Envelope = bytes.Repeat([]byte("x"), int(c.MaxPayload()/2))
		if _, err := big.Add(m, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.PublishBuilt(ctxT(t, 10*time.Second), big, ""); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if err := c.PublishBuilt(ctxT(t, 10*time.Second), NewGroupBuilder(1, 0), ""); err == nil {
		t.Fatal("an empty builder was published")
	}
}
