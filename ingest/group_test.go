package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relayhq/relay/internal/stream"
)

// groupStream is a real embedded JetStream that also listens on a free
// local port, so a test can read back the raw stored messages (groups are
// not decoded by this build's consumer).
type groupStream struct {
	*stream.Conn
	raw jetstream.Stream
}

func openGroupStream(t *testing.T, cfg stream.Config) *groupStream {
	t.Helper()
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	cfg.Listen = "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := stream.Open(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	nc, err := nats.Connect(conn.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := js.Stream(ctx, conn.StreamName())
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	return &groupStream{Conn: conn, raw: raw}
}

// stored returns the data of every message in the stream, in order.
func (s *groupStream) stored(t *testing.T) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := s.raw.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	var out [][]byte
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.raw.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get %d: %v", seq, err)
		}
		out = append(out, m.Data)
	}
	return out
}

// decodeStored decodes every stored message into its envelopes (a group's
// members, or the one version-1 message), failing on anything else.
func decodeStored(t *testing.T, raw [][]byte) (msgs []stream.Message, sizes []int) {
	t.Helper()
	for i, data := range raw {
		members := [][]byte{data}
		if stream.IsGroup(data) {
			var err error
			if members, err = stream.GroupMembers(data); err != nil {
				t.Fatalf("stored message %d: %v", i, err)
			}
		}
		for _, b := range members {
			var m stream.Message
			if err := m.UnmarshalBinary(b); err != nil {
				t.Fatalf("stored message %d: %v", i, err)
			}
			msgs = append(msgs, m)
		}
		sizes = append(sizes, len(members))
	}
	return msgs, sizes
}

// gatedPub holds every publish alone (the path a request takes when nothing
// is in flight) until gate is closed, so a test can queue requests behind it.
type gatedPub struct {
	GroupPublisher
	gate chan struct{}
}

func (p *gatedPub) Publish(ctx context.Context, m *stream.Message, msgID string) error {
	select {
	case <-p.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return p.GroupPublisher.Publish(ctx, m, msgID)
}

// queued is the number of members waiting in project's groups.
func (g *Grouper) queued(project uint64) (members, groups int) {
	sh := &g.shards[project%groupShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if q := sh.projects[project]; q != nil {
		for _, grp := range q.pending {
			members += grp.waiting
		}
		groups = len(q.pending)
	}
	return members, groups
}

// busy is the number of projects the grouper tracks (only busy ones).
func (g *Grouper) busy() int {
	n := 0
	for i := range g.shards {
		g.shards[i].mu.Lock()
		n += len(g.shards[i].projects)
		g.shards[i].mu.Unlock()
	}
	return n
}

func waitInFlight(t *testing.T, g *Grouper, project uint64, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sh := &g.shards[project%groupShards]
		sh.mu.Lock()
		n := 0
		if q := sh.projects[project]; q != nil {
			n = q.inflight
		}
		sh.mu.Unlock()
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d publishes in flight, want %d", n, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitQueued(t *testing.T, g *Grouper, project uint64, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _ := g.queued(project)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d members queued, want %d", n, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// member is a distinct message of project 7 with an envelope of size bytes.
func member(i, size int) *stream.Message {
	env := []byte(fmt.Sprintf("{\"event_id\":\"%032x\"}\n", i))
	env = append(env, bytes.Repeat([]byte("x"), max(0, size-len(env)))...)
	return &stream.Message{ProjectID: 7, PublicKey: testKey, Version: 7, EventID: fmt.Sprintf("%032x", i),
		ReceivedAt: time.Unix(1700000000, int64(i)), Envelope: env}
}

// 64 concurrent SDK requests over HTTP while the project's first publish is
// held: the first is stored alone (version 1), the other 63 in groups of at
// most 32; every envelope is in the stream exactly once and every SDK got 200.
func TestGroupConcurrentRequests(t *testing.T) {
	s := openGroupStream(t, stream.Config{})
	gp := &gatedPub{GroupPublisher: s.Conn, gate: make(chan struct{})}
	g := NewGrouper(gp, GroupConfig{})
	cfg := testConfig()
	cfg.MaxPublishPayload = s.MaxPayload()
	cfg.PublishTimeout = 20 * time.Second
	ts := startServer(t, New(cfg, g, nil, testLogger(t)))

	const n = 64
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", ts.URL+"/api/42/envelope/",
				bytes.NewReader(eventEnvelope(fmt.Sprintf("%032x", i+1), `{"message":"m`+fmt.Sprint(i)+`"}`)))
			req.Header.Set("X-Sentry-Auth", testAuth)
			res, err := ts.Client().Do(req)
			if err != nil {
				t.Errorf("post %d: %v", i, err)
				return
			}
			res.Body.Close()
			statuses[i] = res.StatusCode
		})
	}
	waitQueued(t, g, 42, n-1) // one holds the gate, the rest are queued
	close(gp.gate)
	wg.Wait()
	for i, st := range statuses {
		if st != 200 {
			t.Fatalf("request %d: status %d", i, st)
		}
	}
	raw := s.stored(t)
	if stream.IsGroup(raw[0]) {
		t.Fatal("the first request (nothing in flight) was not stored alone")
	}
	msgs, sizes := decodeStored(t, raw)
	if len(raw) != 3 || sizes[0] != 1 || sizes[1] != 32 || sizes[2] != 31 {
		t.Fatalf("stored messages of %v envelopes, want [1 32 31]", sizes)
	}
	seen := map[string]int{}
	for _, m := range msgs {
		if m.ProjectID != 42 || !bytes.Contains(m.Envelope, []byte(m.EventID)) {
			t.Fatalf("stored message %+v", m)
		}
		seen[m.EventID]++
	}
	for i := range n {
		if id := fmt.Sprintf("%032x", i+1); seen[id] != 1 {
			t.Fatalf("envelope %s stored %d times", id, seen[id])
		}
	}
	if g.busy() != 0 {
		t.Fatalf("%d projects still tracked after the load", g.busy())
	}
}

// A lone request (nothing in flight) is stored as a version-1 message, with
// its own msgID; so is a queued request no one joined.
func TestGroupLoneRequestIsVersion1(t *testing.T) {
	s := openGroupStream(t, stream.Config{})
	g := NewGrouper(s.Conn, GroupConfig{})
	alone := publishesAlone.Get()
	ctx := context.Background()
	for i := range 3 {
		if err := g.Publish(ctx, member(i, 200), fmt.Sprintf("id-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Publish(ctx, member(0, 200), "id-0"); err != nil { // a retry: deduplicated
		t.Fatal(err)
	}
	raw := s.stored(t)
	if len(raw) != 3 {
		t.Fatalf("%d stored messages, want 3", len(raw))
	}
	for i, data := range raw {
		var m stream.Message
		if stream.IsGroup(data) || m.UnmarshalBinary(data) != nil || m.EventID != fmt.Sprintf("%032x", i) {
			t.Fatalf("message %d is not the lone version-1 message", i)
		}
	}
	if got := publishesAlone.Get() - alone; got != 4 {
		t.Fatalf("publishes alone: %d, want 4", got)
	}
}

// A group whose publish fails fails every member, and none is stored: the
// stream full (a tiny max_bytes), and the connection closed.
func TestGroupFailureFailsEveryMember(t *testing.T) {
	tests := []struct {
		name    string
		cfg     stream.Config
		breakIt func(t *testing.T, s *groupStream)
		want    error
	}{
		{"stream full", stream.Config{MaxBytes: 4096}, func(*testing.T, *groupStream) {}, stream.ErrFull},
		{"connection closed", stream.Config{}, func(t *testing.T, s *groupStream) {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}, stream.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openGroupStream(t, tt.cfg)
			gp := &gatedPub{GroupPublisher: s.Conn, gate: make(chan struct{})}
			g := NewGrouper(gp, GroupConfig{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			const n = 10
			errs := make([]error, n+1)
			var wg sync.WaitGroup
			wg.Go(func() { errs[0] = g.Publish(ctx, member(0, 100), "first") })
			waitInFlight(t, g, 7, 1)
			for i := 1; i <= n; i++ {
				wg.Go(func() { errs[i] = g.Publish(ctx, member(i, 1000), "") })
			}
			waitQueued(t, g, 7, n)
			before := len(s.stored(t))
			tt.breakIt(t, s)
			close(gp.gate)
			wg.Wait()
			for i := 1; i <= n; i++ {
				if !errors.Is(errs[i], tt.want) {
					t.Fatalf("member %d: %v, want %v", i, errs[i], tt.want)
				}
			}
			if tt.want == stream.ErrFull {
				if errs[0] != nil {
					t.Fatalf("the small first publish: %v", errs[0])
				}
				raw := s.stored(t)
				if len(raw) != before+1 || stream.IsGroup(raw[len(raw)-1]) {
					t.Fatalf("stored %d messages after the failed group (had %d + the first)", len(raw), before)
				}
			}
			if g.busy() != 0 {
				t.Fatal("project still tracked")
			}
		})
	}
}

// A waiter whose ctx ends first returns its ctx error at once; the group is
// still published for the others, from the encoding taken when the waiter
// joined (its buffers, reused at once here, are not read again). A group
// every member gave up on is never published.
func TestGroupWaiterCtxEnds(t *testing.T) {
	s := openGroupStream(t, stream.Config{})
	gp := &gatedPub{GroupPublisher: s.Conn, gate: make(chan struct{})}
	g := NewGrouper(gp, GroupConfig{})
	long, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	var firstErr, otherErr error
	wg.Go(func() { firstErr = g.Publish(long, member(0, 100), "") })
	waitInFlight(t, g, 7, 1)

	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	quitter := member(1, 300)
	want := bytes.Clone(quitter.Envelope)
	start := time.Now()
	wg.Go(func() { otherErr = g.Publish(long, member(2, 300), "") })
	err := g.Publish(short, quitter, "")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("the waiter whose ctx ended: %v after %s", err, time.Since(start))
	}
	// The request's buffers are reused once Publish returned.
	for i := range quitter.Envelope {
		quitter.Envelope[i] = '!'
	}
	*quitter = stream.Message{}
	close(gp.gate)
	wg.Wait()
	if firstErr != nil || otherErr != nil {
		t.Fatalf("the others: %v, %v", firstErr, otherErr)
	}
	msgs, sizes := decodeStored(t, s.stored(t))
	if len(sizes) != 2 || sizes[1] != 2 || !bytes.Equal(msgs[1].Envelope, want) && !bytes.Equal(msgs[2].Envelope, want) {
		t.Fatalf("stored %v; the group does not carry the quitter's envelope as it was", sizes)
	}

	// Every member gives up: the group is dropped and the slot passes on.
	gp.gate = make(chan struct{})
	abandoned := groupsAbandoned.Get()
	wg.Go(func() { firstErr = g.Publish(long, member(10, 100), "") })
	waitInFlight(t, g, 7, 1)
	for i := 11; i < 14; i++ {
		short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancelShort()
		wg.Go(func() {
			if err := g.Publish(short, member(i, 100), ""); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("member %d: %v", i, err)
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for groupsAbandoned.Get() == abandoned {
		if time.Now().After(deadline) {
			t.Fatal("the group nobody waits for was not abandoned")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if m, grps := g.queued(7); m != 0 || grps != 0 {
		t.Fatalf("%d members in %d groups still queued", m, grps)
	}
	close(gp.gate)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	if _, sizes := decodeStored(t, s.stored(t)); len(sizes) != 3 || sizes[2] != 1 {
		t.Fatalf("stored %v, want the abandoned group left out", sizes)
	}
	if g.busy() != 0 {
		t.Fatal("project still tracked")
	}
}

// A request whose ctx has already ended does not join a group.
func TestGroupEndedCtxDoesNotJoin(t *testing.T) {
	s := openGroupStream(t, stream.Config{})
	gp := &gatedPub{GroupPublisher: s.Conn, gate: make(chan struct{})}
	g := NewGrouper(gp, GroupConfig{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := g.Publish(context.Background(), member(0, 100), ""); err != nil {
			t.Error(err)
		}
	})
	waitInFlight(t, g, 7, 1)
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Publish(ended, member(1, 100), ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("ended ctx: %v", err)
	}
	if m, grps := g.queued(7); m != 0 || grps != 0 {
		t.Fatalf("%d members in %d groups queued", m, grps)
	}
	close(gp.gate)
	wg.Wait()
	if raw := s.stored(t); len(raw) != 1 {
		t.Fatalf("%d stored messages, want 1", len(raw))
	}
}

// panicPub panics in every group publish.
type panicPub struct{ *gatedPub }

func (p panicPub) PublishBuilt(context.Context, *stream.GroupBuilder, string) error {
	panic("publish exploded")
}

// A group publish that panics (net/http recovers a handler's panic) still
// answers every member with an error and gives its slot back.
func TestGroupPublishPanicReleasesSlot(t *testing.T) {
	s := openGroupStream(t, stream.Config{})
	gp := &gatedPub{GroupPublisher: s.Conn, gate: make(chan struct{})}
	g := NewGrouper(panicPub{gp}, GroupConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := g.Publish(ctx, member(0, 100), ""); err != nil {
			t.Error(err)
		}
	})
	waitInFlight(t, g, 7, 1)
	var panics, failed atomic.Int32
	for i := 1; i <= 4; i++ {
		wg.Go(func() {
			defer func() {
				if recover() != nil {
					panics.Add(1)
				}
			}()
			if err := g.Publish(ctx, member(i, 100), ""); errors.Is(err, errLeaderPanicked) {
				failed.Add(1)
			}
		})
	}
	waitQueued(t, g, 7, 4)
	close(gp.gate)
	wg.Wait()
	if panics.Load() != 1 || failed.Load() != 3 {
		t.Fatalf("%d leaders panicked, %d members failed; want 1 and 3", panics.Load(), failed.Load())
	}
	if g.busy() != 0 {
		t.Fatal("the slot was not given back")
	}
}

// The byte bound: a member that would take a group over MaxBytes starts the
// next group; no stored group is over the bound; a member larger than the
// bound travels alone.
func TestGroupByteBound(t *testing.T) {
	s := openGroupStream(t, stream.Config{})
	gp := &gatedPub{GroupPublisher: s.Conn, gate: make(chan struct{})}
	one, _ := member(1, 1000).MarshalBinary()
	// Five framed members and the group header: each member is under a
	// quarter of the bound, so none is published alone for its size.
	bound := 5*(len(one)+2) + 2
	g := NewGrouper(gp, GroupConfig{MaxBytes: int64(bound)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 9)
	wg.Go(func() { errs[0] = g.Publish(ctx, member(0, 100), "") })
	waitInFlight(t, g, 7, 1)
	for i := 1; i <= 7; i++ { // queued in order: a group of 5, then one of 2
		wg.Go(func() { errs[i] = g.Publish(ctx, member(i, 1000), "") })
		waitQueued(t, g, 7, i)
	}
	// An envelope over a quarter of the bound never joins a group: it is
	// published alone at once, beside the publish in flight, without
	// queueing or taking the project's slot.
	large := publishesLarge.Get()
	wg.Go(func() { errs[8] = g.Publish(ctx, member(8, bound), "") })
	deadline := time.Now().Add(10 * time.Second)
	for publishesLarge.Get() == large {
		if time.Now().After(deadline) {
			t.Fatal("the large envelope was not published alone")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n, _ := g.queued(7); n != 7 {
		t.Fatalf("%d members queued after the large envelope, want 7", n)
	}
	close(gp.gate)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	raw := s.stored(t)
	_, sizes := decodeStored(t, raw)
	slices.Sort(sizes)
	if fmt.Sprint(sizes) != "[1 1 2 5]" {
		t.Fatalf("stored groups of %v envelopes (sorted), want [1 1 2 5]", sizes)
	}
	for i, data := range raw {
		if stream.IsGroup(data) && len(data) > bound {
			t.Fatalf("group %d: %d bytes, bound %d", i, len(data), bound)
		}
	}
}

// With two publishes in flight per project, two requests publish alone at
// once and the third queues.
func TestGroupTwoInFlight(t *testing.T) {
	s := openGroupStream(t, stream.Config{})
	gp := &gatedPub{GroupPublisher: s.Conn, gate: make(chan struct{})}
	g := NewGrouper(gp, GroupConfig{MaxInFlight: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			if err := g.Publish(ctx, member(i, 100), ""); err != nil {
				t.Error(err)
			}
		})
	}
	waitQueued(t, g, 7, 3)
	close(gp.gate)
	wg.Wait()
	_, sizes := decodeStored(t, s.stored(t))
	slices.Sort(sizes) // the group may be stored before the second lone one
	if fmt.Sprint(sizes) != "[1 1 3]" {
		t.Fatalf("stored %v, want [1 1 3]", sizes)
	}
}

func TestNewGrouperBounds(t *testing.T) {
	s := openGroupStream(t, stream.Config{})
	g := NewGrouper(s.Conn, GroupConfig{MaxMembers: 1000, MaxBytes: 1 << 40})
	if g.maxMembers != stream.MaxGroupMembers || int64(g.maxBytes) != s.MaxPayload() || g.maxInFlight != 1 {
		t.Fatalf("bounds %d %d %d", g.maxMembers, g.maxBytes, g.maxInFlight)
	}
	if err := g.Publish(context.Background(), &stream.Message{ProjectID: 1, Version: 1 << 40}, ""); err == nil ||
		!strings.Contains(err.Error(), "version") {
		t.Fatalf("an unencodable message: %v", err)
	}
}
