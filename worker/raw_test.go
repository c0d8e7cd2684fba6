package worker

import (
	"bytes"
	"context"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/relayhq/relay/internal/stream"
)

// TestSameMessageKnowsEveryField: sameMessage must compare every field of
// stream.Message, or a stage's change to a new field would be spooled as
// the old bytes.
func TestSameMessageKnowsEveryField(t *testing.T) {
	if n := reflect.TypeFor[stream.Message]().NumField(); n != 11 {
		t.Fatalf("stream.Message has %d fields; sameMessage compares 11: teach it the new ones, then this count", n)
	}
	base := stream.Message{
		ProjectID: 1, PublicKey: keyA, Client: "c", Version: 7, Origin: "o", UserAgent: "ua",
		RemoteAddr: "127.0.0.1", ForwardedFor: "10.0.0.1", ReceivedAt: time.Unix(100, 5), EventID: "e",
		Envelope: []byte("{}\n"),
	}
	cases := map[string]func(m *stream.Message){
		"ProjectID":       func(m *stream.Message) { m.ProjectID++ },
		"PublicKey":       func(m *stream.Message) { m.PublicKey = keyB },
		"Client":          func(m *stream.Message) { m.Client += "x" },
		"Version":         func(m *stream.Message) { m.Version++ },
		"Origin":          func(m *stream.Message) { m.Origin += "x" },
		"UserAgent":       func(m *stream.Message) { m.UserAgent += "x" },
		"RemoteAddr":      func(m *stream.Message) { m.RemoteAddr += "x" },
		"ForwardedFor":    func(m *stream.Message) { m.ForwardedFor += "x" },
		"ReceivedAt":      func(m *stream.Message) { m.ReceivedAt = m.ReceivedAt.Add(1) },
		"ReceivedAt zero": func(m *stream.Message) { m.ReceivedAt = time.Time{} },
		"EventID":         func(m *stream.Message) { m.EventID += "x" },
		"Envelope copy":   func(m *stream.Message) { m.Envelope = bytes.Clone(m.Envelope) },
		"Envelope cut":    func(m *stream.Message) { m.Envelope = m.Envelope[:1] },
	}
	if !sameMessage(&base, &base) {
		t.Fatal("a message differs from itself")
	}
	for name, change := range cases {
		m := base
		change(&m)
		if sameMessage(&base, &m) {
			t.Errorf("%s changed, sameMessage still true", name)
		}
	}
}

// TestSpoolDataIsRaw: a delivery no stage changed is spooled as the bytes
// JetStream delivered (no re-encoding, no copy of the envelope); one a
// stage changed is spooled as the stages left it.
func TestSpoolDataIsRaw(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.publish(2, keyA)
	ds, err := h.consumer().Fetch(context.Background(), 2)
	if err != nil || len(ds) != 2 {
		t.Fatalf("fetch: %d deliveries, %v", len(ds), err)
	}

	kept := ds[0]
	before := kept.Msg
	data := spoolData(kept, &before)
	if data == nil || unsafe.SliceData(data) != unsafe.SliceData(kept.Raw()) {
		t.Fatal("unchanged message: spool data is not the delivered bytes")
	}
	p := newParcel(&kept.Msg, data, nil)
	if got, _ := p.encoded(); unsafe.SliceData(got) != unsafe.SliceData(kept.Raw()) {
		t.Fatal("unchanged message: the parcel re-encoded it")
	}

	changed := ds[1]
	before = changed.Msg
	changed.Msg.Envelope = bytes.ReplaceAll(changed.Msg.Envelope, []byte("worker test"), []byte("scrubbed"))
	if spoolData(changed, &before) != nil {
		t.Fatal("changed message: spool data is the delivered bytes")
	}
	got, err := newParcel(&changed.Msg, nil, nil).encoded()
	if err != nil {
		t.Fatal(err)
	}
	var dec stream.Message
	if err := dec.UnmarshalBinary(got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(dec.Envelope, []byte("scrubbed")) || bytes.Contains(dec.Envelope, []byte("worker test")) {
		t.Fatalf("changed message spooled without the change: %q", dec.Envelope)
	}
	for _, d := range ds {
		_ = d.Nak(0)
	}
}
