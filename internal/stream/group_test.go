package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"
)

// groupOf is n distinct messages of one project.
func groupOf(n int) []*Message {
	ms := make([]*Message, n)
	for i := range ms {
		ms[i] = msgN(3 * i) // msgN(3i) are all project 1
	}
	return ms
}

func TestGroupRoundTrip(t *testing.T) {
	for _, n := range []int{2, 3, 32, MaxGroupMembers} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ms := groupOf(n)
			ms[0].Envelope = bytes.Repeat([]byte("x"), 300) // a member whose length prefix takes two bytes
			b, err := AppendGroup(nil, ms)
			if err != nil {
				t.Fatal(err)
			}
			if !IsGroup(b) {
				t.Fatal("IsGroup false for a group")
			}
			members, err := GroupMembers(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(members) != n {
				t.Fatalf("%d members, want %d", len(members), n)
			}
			for i, raw := range members {
				want, _ := ms[i].MarshalBinary()
				if !bytes.Equal(raw, want) {
					t.Fatalf("member %d is not the message's version-1 encoding", i)
				}
				var got Message
				if err := got.UnmarshalBinary(raw); err != nil {
					t.Fatalf("member %d: %v", i, err)
				}
				sameMessage(t, got, ms[i])
			}
			// Appending after a prefix keeps the prefix.
			b2, err := AppendGroup([]byte("pre"), ms)
			if err != nil || !bytes.Equal(b2[3:], b) || string(b2[:3]) != "pre" {
				t.Fatalf("AppendGroup after a prefix: %v", err)
			}
		})
	}
}

func TestAppendGroupRefuses(t *testing.T) {
	mixed := []*Message{msgN(0), msgN(1)} // projects 1 and 2
	huge := groupOf(2)
	huge[1].Version = 1 << 40
	for name, ms := range map[string][]*Message{
		"none":           nil,
		"one":            groupOf(1),
		"too many":       groupOf(MaxGroupMembers + 1),
		"two projects":   mixed,
		"invalid member": huge,
	} {
		if _, err := AppendGroup(nil, ms); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestGroupMembersErrors(t *testing.T) {
	good, err := AppendGroup(nil, groupOf(2))
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := msgN(0).MarshalBinary()
	nested := binary.AppendUvarint([]byte{encodingGroup, 2}, uint64(len(good)))
	nested = append(nested, good...)
	nested = binary.AppendUvarint(nested, uint64(len(v1)))
	nested = append(nested, v1...)
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMessageTruncated},
		{"a version-1 message", v1, ErrMessageVersion},
		{"no count", []byte{encodingGroup}, ErrMessageTruncated},
		{"count 0", []byte{encodingGroup, 0}, ErrMessageCorrupt},
		{"count 1", append([]byte{encodingGroup, 1, byte(len(v1))}, v1...), ErrMessageCorrupt},
		{"count over the cap", binary.AppendUvarint([]byte{encodingGroup}, MaxGroupMembers+1), ErrMessageCorrupt},
		{"huge count", binary.AppendUvarint([]byte{encodingGroup}, 1<<62), ErrMessageCorrupt},
		{"truncated member", good[:len(good)-1], ErrMessageTruncated},
		{"fewer members than the count", good[:2+1+len(v1)], ErrMessageTruncated},
		{"trailing bytes", append(append([]byte{}, good...), 0), ErrMessageCorrupt},
		{"nested group", nested, ErrMessageCorrupt},
		{"empty member", []byte{encodingGroup, 2, 0, 0}, ErrMessageCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := GroupMembers(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// A build that reads only version 1 (an older worker during an upgrade)
// refuses a group as an unknown version, which leaves it in the stream for
// a newer worker rather than dropping it.
func TestGroupIsUnknownVersionToMessageDecoder(t *testing.T) {
	b, err := AppendGroup(nil, groupOf(2))
	if err != nil {
		t.Fatal(err)
	}
	var m Message
	if err := m.UnmarshalBinary(b); !errors.Is(err, ErrMessageVersion) {
		t.Fatalf("UnmarshalBinary(group) = %v, want ErrMessageVersion", err)
	}
}

// PublishGroup stores the group as one stream message, under the project's
// subject, and the stored bytes give every member back.
func TestPublishGroupStoresOneMessage(t *testing.T) {
	c := openTest(t, testConfig(t))
	ms := groupOf(5)
	if err := c.PublishGroup(ctxT(t, 10*time.Second), ms, "g-1"); err != nil {
		t.Fatal(err)
	}
	// The same id again (a retry) is deduplicated.
	if err := c.PublishGroup(ctxT(t, 10*time.Second), ms, "g-1"); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, c); n != 1 {
		t.Fatalf("stream holds %d messages, want 1", n)
	}
	raw, err := c.stream.GetMsg(ctxT(t, 5*time.Second), 1)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Subject != c.Subject(1) {
		t.Fatalf("subject %q, want %q", raw.Subject, c.Subject(1))
	}
	members, err := GroupMembers(raw.Data)
	if err != nil || len(members) != len(ms) {
		t.Fatalf("members: %d, %v", len(members), err)
	}
	// A group of one is a plain version-1 message.
	if err := c.PublishGroup(ctxT(t, 10*time.Second), ms[:1], "g-2"); err != nil {
		t.Fatal(err)
	}
	raw, err = c.stream.GetMsg(ctxT(t, 5*time.Second), 2)
	if err != nil {
		t.Fatal(err)
	}
	if IsGroup(raw.Data) {
		t.Fatal("a group of one was published as a group")
	}
}

func TestPublishGroupTooLarge(t *testing.T) {
	cfg := testConfig(t)
	c := openTest(t, cfg)
	ms := groupOf(3)
	for _, m := range ms {
		m.Envelope = bytes.Repeat([]byte("x"), int(c.MaxPayload()/2))
	}
	err := c.PublishGroup(ctxT(t, 10*time.Second), ms, "")
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}
