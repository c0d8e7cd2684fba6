package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// waitMsgs polls until the stream holds want messages or d passed.
func waitMsgs(t *testing.T, c *Conn, want uint64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		n := streamMsgs(t, c)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream holds %d messages, want %d", n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fetchGroup publishes a group of n under id and fetches its n members.
func fetchGroup(t *testing.T, c *Conn, k *Consumer, n int, id string) ([]*Message, []*Delivery) {
	t.Helper()
	ms := groupOf(n)
	if err := c.PublishGroup(ctxT(t, 10*time.Second), ms, id); err != nil {
		t.Fatal(err)
	}
	ds := fetchAll(t, k, n, 5*time.Second)
	if len(ds) != n {
		t.Fatalf("fetched %d deliveries, want %d (one per member)", len(ds), n)
	}
	for i, d := range ds {
		sameMessage(t, d.Msg, ms[i])
		want, _ := ms[i].MarshalBinary()
		if !bytes.Equal(d.Raw(), want) {
			t.Fatalf("member %d: Raw is not the member's version-1 encoding", i)
		}
		if idx, of := d.Member(); idx != i || of != n {
			t.Fatalf("member %d: Member() = %d, %d", i, idx, of)
		}
		if d.MsgID() != fmt.Sprintf("%s/%d", id, i) {
			t.Fatalf("member %d: MsgID %q", i, d.MsgID())
		}
		if d.Sequence() != ds[0].Sequence() {
			t.Fatalf("members of one group with different sequences")
		}
	}
	return ms, ds
}

// TestGroupSettlement: the group leaves the stream only once every member
// was settled; a Nak'd member is re-published alone and delivered next.
func TestGroupSettlement(t *testing.T) {
	const n = 4
	for _, tc := range []struct {
		name    string
		settle  func(t *testing.T, i int, d *Delivery) error
		lone    []int // members that must come back alone
		waitAck bool  // settled with Ack: the stream is empty at once
	}{
		{name: "all AckNoWait", settle: func(_ *testing.T, _ int, d *Delivery) error { return d.AckNoWait() }},
		{name: "all Ack", waitAck: true, settle: func(t *testing.T, _ int, d *Delivery) error { return d.Ack(ctxT(t, 5*time.Second)) }},
		{name: "one Nak", lone: []int{2}, settle: func(_ *testing.T, i int, d *Delivery) error {
			if i == 2 {
				return d.Nak(time.Hour) // the copy comes at once: the delay is the copy's Nak's
			}
			return d.AckNoWait()
		}},
		{name: "last Nak", lone: []int{n - 1}, settle: func(_ *testing.T, i int, d *Delivery) error {
			if i == n-1 {
				return d.Nak(0)
			}
			return d.AckNoWait()
		}},
		{name: "all Nak", lone: []int{0, 1, 2, 3}, settle: func(_ *testing.T, _ int, d *Delivery) error { return d.Nak(0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := openTest(t, testConfig(t))
			k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
			if err != nil {
				t.Fatal(err)
			}
			ms, ds := fetchGroup(t, c, k, n, "grp")
			for i, d := range ds {
				if !heldSeqs(t, c)[d.Sequence()] {
					t.Fatal("group left the stream before its last member settled")
				}
				if err := tc.settle(t, i, d); err != nil {
					t.Fatalf("settle member %d: %v", i, err)
				}
			}
			if tc.waitAck && streamMsgs(t, c) != 0 {
				t.Fatalf("after the last Ack the stream holds %d messages", streamMsgs(t, c))
			}
			waitMsgs(t, c, uint64(len(tc.lone)), 5*time.Second)
			got := fetchAll(t, k, len(tc.lone), 5*time.Second)
			if len(got) != len(tc.lone) {
				t.Fatalf("%d re-published copies delivered, want %d", len(got), len(tc.lone))
			}
			for j, i := range tc.lone {
				d := got[j]
				sameMessage(t, d.Msg, ms[i])
				if idx, _ := d.Member(); idx != -1 || d.NumDelivered() != 1 {
					t.Fatalf("copy of member %d: Member %d, delivered %d times; want a lone first delivery", i, idx, d.NumDelivered())
				}
				if d.MsgID() != fmt.Sprintf("grp/%d", i) {
					t.Fatalf("copy of member %d has id %q", i, d.MsgID())
				}
			}
			ackAll(t, got)
			waitMsgs(t, c, 0, 5*time.Second)
		})
	}
}

// TestGroupRepublishFails: a member whose re-publish fails brings the whole
// group back — with a full stream, and with the connection closed.
func TestGroupRepublishFails(t *testing.T) {
	t.Run("full stream", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.MaxBytes = 64 << 10
		c := openTest(t, cfg)
		k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
		if err != nil {
			t.Fatal(err)
		}
		_, ds := fetchGroup(t, c, k, 3, "grp")
		// Fill what is left with small messages, until the stream refuses.
		filler := 0
		for ; ; filler++ {
			m := msgN(1000 + filler)
			err := c.Publish(ctxT(t, 5*time.Second), m, fmt.Sprintf("fill-%d", filler))
			if errors.Is(err, ErrFull) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := ds[1].Nak(0); !errors.Is(err, ErrFull) {
			t.Fatalf("Nak of a member on a full stream: %v, want ErrFull", err)
		}
		if err := ds[0].AckNoWait(); err != nil {
			t.Fatal(err)
		}
		if err := ds[2].Ack(ctxT(t, 5*time.Second)); err != nil { // the last: Naks the group
			t.Fatal(err)
		}
		seq := ds[0].Sequence()
		again := 0
		for _, d := range fetchAll(t, k, filler+3, 10*time.Second) {
			if d.Sequence() == seq {
				again++
				if d.NumDelivered() != 2 {
					t.Fatalf("group member delivered %d times, want 2", d.NumDelivered())
				}
			}
		}
		if again != 3 {
			t.Fatalf("%d members of the group came back, want all 3", again)
		}
	})
	t.Run("closed connection", func(t *testing.T) {
		cfg := testConfig(t)
		c := mustOpen(t, cfg)
		k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
		if err != nil {
			t.Fatal(err)
		}
		ms, ds := fetchGroup(t, c, k, 3, "grp")
		if err := ds[0].AckNoWait(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := ds[1].Nak(0); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Nak of a member on a closed connection: %v, want ErrUnavailable", err)
		}
		ds[2].AckNoWait() // the last: the group's Nak fails too; AckWait brings it back
		c = mustOpen(t, cfg)
		defer c.Close()
		if lost, _ := c.LostOnOpen(); lost != 0 {
			t.Fatalf("reopen reported %d lost", lost)
		}
		k, err = c.Consumer(ctxT(t, 5*time.Second), "workers")
		if err != nil {
			t.Fatal(err)
		}
		got := fetchAll(t, k, 3, 10*time.Second)
		if len(got) != 3 {
			t.Fatalf("%d members back after reopening, want 3", len(got))
		}
		for i, d := range got {
			sameMessage(t, d.Msg, ms[i])
		}
	})
}

// A member settled twice does not count for another: the group stays.
func TestGroupMemberSettledTwice(t *testing.T) {
	c := openTest(t, testConfig(t))
	k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
	if err != nil {
		t.Fatal(err)
	}
	_, ds := fetchGroup(t, c, k, 2, "grp")
	if err := ds[0].Ack(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	for name, again := range map[string]func() error{
		"Ack":       func() error { return ds[0].Ack(ctxT(t, 5*time.Second)) },
		"AckNoWait": ds[0].AckNoWait,
		"Nak":       func() error { return ds[0].Nak(0) },
	} {
		if err := again(); err == nil {
			t.Fatalf("second %s of a settled member returned nil", name)
		}
	}
	if n := streamMsgs(t, c); n != 1 {
		t.Fatalf("stream holds %d messages after one of two members settled (several times), want 1", n)
	}
	if err := ds[1].Ack(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, c); n != 0 {
		t.Fatalf("stream holds %d after both members settled", n)
	}
}

// A group that does not decode (framing, or one member) is one undecodable
// message: Nak'd for later, counted, left in the stream.
func TestGroupUndecodable(t *testing.T) {
	good, _ := AppendGroup(nil, groupOf(2))
	member, _ := msgN(0).MarshalBinary()
	badMember := append([]byte{encodingGroup, 2, byte(len(member))}, member...)
	badMember = append(badMember, 3, encodingV1, 0xff, 0xff)
	for name, data := range map[string][]byte{
		"trailing bytes": append(append([]byte{}, good...), 0),
		"bad member":     badMember,
		"count of one":   {encodingGroup, 1, byte(len(member))},
	} {
		t.Run(name, func(t *testing.T) {
			c := openTest(t, testConfig(t))
			k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
			if err != nil {
				t.Fatal(err)
			}
			c.inflight.Add(1)
			err = c.publishData(ctxT(t, 5*time.Second), c.Subject(1), data, "bad")
			c.inflight.Add(-1)
			if err != nil {
				t.Fatal(err)
			}
			before := undecodableCorrupt.Get()
			ds, err := k.Fetch(ctxT(t, 5*time.Second), 10)
			if err != nil || len(ds) != 0 {
				t.Fatalf("Fetch returned %d deliveries, %v; want none", len(ds), err)
			}
			if undecodableCorrupt.Get() != before+1 {
				t.Fatalf("undecodable counter %d -> %d, want +1", before, undecodableCorrupt.Get())
			}
			if n := streamMsgs(t, c); n != 1 {
				t.Fatalf("stream holds %d, want the undecodable group kept", n)
			}
		})
	}
}

// InProgress on every member sends one extension for the group per beat,
// and keeps the group from being redelivered past AckWait.
func TestGroupInProgress(t *testing.T) {
	cfg := testConfig(t)
	cfg.AckWait = time.Second
	c := openTest(t, cfg)
	k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
	if err != nil {
		t.Fatal(err)
	}
	_, ds := fetchGroup(t, c, k, 3, "grp")
	end := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(end) {
		for _, d := range ds {
			if err := d.InProgress(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if more, err := k.Fetch(ctx, 10); len(more) != 0 {
		t.Fatalf("group redelivered while its members were in progress (%d, %v)", len(more), err)
	}
	for _, d := range ds {
		if err := d.AckNoWait(); err != nil {
			t.Fatal(err)
		}
	}
	waitMsgs(t, c, 0, 5*time.Second)
}

// A group arriving while Fetch waits, with more messages ready behind it:
// max counts stream messages, so the top-up after the wait asks for max-1
// messages however many members the group had.
func TestGroupFetchWhileWaiting(t *testing.T) {
	cfg := testConfig(t)
	cfg.FetchWait = 3 * time.Second
	c := openTest(t, cfg)
	k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		ds  []*Delivery
		err error
	}
	got := make(chan result, 1)
	go func() {
		ds, err := k.Fetch(ctxT(t, 10*time.Second), 2)
		got <- result{ds, err}
	}()
	time.Sleep(300 * time.Millisecond) // Fetch is waiting on the server
	if err := c.PublishGroup(ctxT(t, 5*time.Second), groupOf(5), "grp"); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || len(r.ds) != 5 {
		t.Fatalf("Fetch(2) while waiting: %d deliveries, %v; want the group's 5", len(r.ds), r.err)
	}
	publishN(t, c, 0, 3)
	// Fast path: a group and lone messages ready at once, max 2 messages.
	ds, err := k.Fetch(ctxT(t, 5*time.Second), 2)
	if err != nil || len(ds) != 2 {
		t.Fatalf("Fetch(2) with 3 lone messages ready: %d, %v", len(ds), err)
	}
	ackAll(t, append(r.ds, ds...))
}
