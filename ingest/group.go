package ingest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/internal/stream"
)

// The group publish: concurrent requests for one project share one
// JetStream publish (one stream message, one Nats-Msg-Id, one PubAck),
// which costs JetStream far less per envelope than a publish each
// (internal/stream/group_bench_test.go: 71–82 % less publish CPU per
// envelope in groups of 8–32 with the default sync, ~50 % with sync always).
//
// Policy, per project (a group is one project's subject):
//
//   - Fewer than GroupConfig.MaxInFlight publishes in flight for the
//     project: the request takes a slot, yields the processor once (so
//     that requests already runnable join a group behind it), and
//     publishes alone as a version-1 message — a lone SDK pays no added
//     latency and no group encoding.
//   - Otherwise it joins the newest group waiting for the project (or
//     starts one): its Message is encoded into the group's buffer at once
//     (stream.GroupBuilder), so nothing of the request is referenced after
//     it joined. A group takes at most MaxMembers members and MaxBytes
//     bytes (never more than the stream's max payload); a request that
//     would overflow it starts the next group.
//   - When a publish of the project completes, its slot goes to the oldest
//     waiting group; the first of its members to take the slot leads: it
//     publishes the group under its own ctx (and a msgID of the group's);
//     the other members wait for the result. A group that got only one
//     member is published as a plain version-1 message.
//
// The promise is Publisher's, for every member: nil only after the group's
// PubAck; any failure of the group's publish is returned to every member
// still waiting (each SDK gets its 503 and it is counted by reason as
// before). A member whose ctx ends first returns its ctx error (counted as
// a publish timeout by ingest); the group is still published or fails on
// its own, so that member's envelope may be stored although its SDK was
// told 503 — a duplicate after the SDK's retry, never a loss. A group whose
// members all gave up before it got a slot is never published and gives the
// slot on (groupsAbandoned).
//
// Bounds: each waiting group holds at most MaxMembers requests' encodings,
// and every member is a request inside the handler, so the queue is bounded
// by MaxConcurrentRequests and its bytes by MaxInFlightBytes (which charges
// each request for its encoded stream message already). No goroutine is
// started: every publish runs on a request's goroutine.

// GroupPublisher is what the group publish needs from the stream;
// *stream.Conn is the real one.
type GroupPublisher interface {
	Publisher
	// PublishBuilt publishes a built group (or lone message) as one
	// stream message with Publish's promise. It must keep nothing of b
	// (nor of b.Bytes()) once it returned: the Grouper reuses builders.
	PublishBuilt(ctx context.Context, b *stream.GroupBuilder, msgID string) error
	// MaxPayload is the largest stream message a publish may carry.
	MaxPayload() int64
}

var _ GroupPublisher = (*stream.Conn)(nil)

// GroupConfig sizes the group publish. Zero values take the defaults.
type GroupConfig struct {
	// MaxMembers bounds the envelopes in one group (default 32, at most
	// stream.MaxGroupMembers).
	MaxMembers int
	// MaxBytes bounds one group's stream message (default 256 KiB); it is
	// lowered to the stream's max payload when that is smaller. An
	// envelope over a quarter of it is always published alone.
	MaxBytes int64
	// MaxInFlight bounds the publishes in flight per project (default 1):
	// requests beyond it queue into groups.
	MaxInFlight int
}

// Defaults of GroupConfig.
const (
	DefaultGroupMaxMembers  = 32
	DefaultGroupMaxBytes    = 256 << 10
	DefaultGroupMaxInFlight = 1
)

var (
	// groupSize is the number of envelopes per stream publish (1 for a
	// publish alone): how much sharing the load gives.
	groupSize = metrics.NewPrometheusHistogramExt(`relay_ingest_publish_group_envelopes`, metrics.ExponentialBuckets(1, 2, 9))
	// Publishes by type: alone (nothing was queued: published at once),
	// single (queued, but no one joined: published as version 1), group
	// (two or more envelopes in one version-2 message).
	publishesAlone  = metrics.NewCounter(`relay_ingest_publishes_total{type="alone"}`)
	publishesSingle = metrics.NewCounter(`relay_ingest_publishes_total{type="single"}`)
	publishesGroup  = metrics.NewCounter(`relay_ingest_publishes_total{type="group"}`)
	// publishesLarge: over MaxBytes/soloFraction, published alone at once
	// without taking the project's slot (Publish).
	publishesLarge = metrics.NewCounter(`relay_ingest_publishes_total{type="large"}`)
	// groupsAbandoned counts groups never published because every member's
	// ctx ended before the group got a slot (each member's 503 is counted
	// by ingest as a publish timeout).
	groupsAbandoned = metrics.NewCounter(`relay_ingest_publish_groups_abandoned_total`)
)

// soloFraction: an envelope over MaxBytes/soloFraction (64 KiB by default)
// never joins a group.
const soloFraction = 4

// groupShards spreads projects over independent locks: joins encode under
// their project's shard lock, so different projects do not serialise.
const groupShards = 32

// Grouper is a Publisher that lets concurrent requests for one project
// share one stream publish (see the policy above). Build it with
// NewGrouper; it needs no Close (it owns no goroutine).
type Grouper struct {
	pub         GroupPublisher
	builders    sync.Pool // *stream.GroupBuilder, returned by lead after the publish
	maxMembers  int
	maxBytes    int
	maxInFlight int
	shards      [groupShards]groupShard
}

type groupShard struct {
	mu       sync.Mutex
	projects map[uint64]*projectQueue // only busy projects: removed when idle
}

// projectQueue is one project's publishing state, guarded by its shard's
// lock. Invariant: pending is non-empty only while inflight == maxInFlight
// (a freed slot goes to the oldest pending group at once).
type projectQueue struct {
	inflight int
	pending  []*pubGroup // FIFO; only the last may take more members
	lastSize int         // bytes of the last group granted a slot: the next one's capacity
}

// pubGroup is one group: the members' encodings and the result they wait for.
type pubGroup struct {
	b *stream.GroupBuilder
	// slot receives one token when the group gets a publish slot; the
	// member that takes it leads (buffered: granting never blocks).
	slot chan struct{}
	done chan struct{} // closed once err is set
	err  error

	// Guarded by the shard lock:
	closed  bool // takes no more members (full, or granted a slot)
	granted bool // a token was put in slot
	led     bool // a member took the token
	waiting int  // members that joined and have not given up
}

// NewGrouper wraps pub with the group publish. A MaxMembers of 1 is
// accepted (every request publishes alone, through the same queue) but the
// relay then uses pub directly.
func NewGrouper(pub GroupPublisher, cfg GroupConfig) *Grouper {
	if cfg.MaxMembers <= 0 {
		cfg.MaxMembers = DefaultGroupMaxMembers
	}
	cfg.MaxMembers = min(cfg.MaxMembers, stream.MaxGroupMembers)
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultGroupMaxBytes
	}
	if p := pub.MaxPayload(); p > 0 {
		cfg.MaxBytes = min(cfg.MaxBytes, p)
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultGroupMaxInFlight
	}
	g := &Grouper{pub: pub, maxMembers: cfg.MaxMembers, maxBytes: int(cfg.MaxBytes), maxInFlight: cfg.MaxInFlight}
	for i := range g.shards {
		g.shards[i].projects = make(map[uint64]*projectQueue)
	}
	return g
}

// Publish stores m alone or as a member of a group (see the policy above)
// and returns nil only once the stream acknowledged the message holding it.
// When m is published in a group, msgID is not used: the group has its own.
// m is not referenced after Publish returns (nor, in a group, after it
// joined).
func (g *Grouper) Publish(ctx context.Context, m *stream.Message, msgID string) error {
	if messageSize(m) > int64(g.maxBytes/soloFraction) {
		// A large envelope gains nothing from sharing a publish — its bytes,
		// not JetStream's per-message cost, dominate — while a group of
		// them holds up to MaxBytes per publish in memory at once and
		// queues each behind the project's publish in flight. It is
		// published alone, now, beside whatever is in flight for its
		// project, exactly as without the group publish.
		publishesLarge.Inc()
		groupSize.Update(1)
		return g.pub.Publish(ctx, m, msgID)
	}
	sh := &g.shards[m.ProjectID%groupShards]
	sh.mu.Lock()
	q := sh.projects[m.ProjectID]
	if q == nil {
		q = &projectQueue{}
		sh.projects[m.ProjectID] = q
	}
	if q.inflight < g.maxInFlight {
		// Nothing queued (the invariant): publish alone, now.
		q.inflight++
		sh.mu.Unlock()
		// One yield before the store, holding the slot: under load the
		// handlers already runnable on this processor then reach the
		// Grouper while this publish is in flight and share the next
		// store instead of each storing alone — with the embedded
		// server the store is a call on this goroutine, over before most
		// of them would arrive. With nothing else runnable (a lone SDK)
		// it returns at once. Measured at 64 connections (alternated 6 s
		// runs): ingest alone 0.6 → 0.2 stores per envelope, its CPU per
		// envelope within the machine's noise (medians 50.0 → 47.1 µs in
		// one comparison, 50.0 → 51.8 in another); the whole relay
		// 186–218 → 174–186 µs per envelope, as the worker fetches and
		// acks one stream message per group instead of one per envelope.
		runtime.Gosched()
		return g.publishAlone(ctx, sh, q, m, msgID)
	}
	if err := ctx.Err(); err != nil {
		// Too late to be answered: do not add an envelope nobody waits for
		// (q stays: a publish is in flight).
		sh.mu.Unlock()
		return fmt.Errorf("ingest: group publish of project %d: %w", m.ProjectID, err)
	}
	grp, err := g.joinLocked(q, m)
	sh.mu.Unlock()
	if err != nil {
		return err // m could not be encoded: nothing was queued
	}

	select {
	case <-grp.slot:
		if ctx.Err() == nil {
			return g.lead(ctx, sh, m.ProjectID, q, grp)
		}
		// The slot and the end of ctx came together: a publish under
		// this ctx would fail at once for every member. The token goes
		// back for another member (or to abandonLocked below).
		grp.slot <- struct{}{}
	case <-grp.done:
		return grp.err
	case <-ctx.Done():
	}
	// Given up. The group may still be published (with m in it): m's SDK is
	// told 503 and may send it again — a duplicate, never a loss.
	sh.mu.Lock()
	grp.waiting--
	abandoned := grp.waiting == 0 && !grp.led
	if abandoned {
		// No member is left to lead it, and none was promised anything.
		g.abandonLocked(sh, m.ProjectID, q, grp)
	}
	sh.mu.Unlock()
	if !abandoned {
		select {
		case <-grp.done: // the result came as ctx ended: it stands
			return grp.err
		default:
		}
	}
	return fmt.Errorf("ingest: waiting for the group publish of project %d: %w", m.ProjectID, ctx.Err())
}

// joinLocked adds m to the project's newest open group, or to a new one
// when there is none or m does not fit. Called with the shard lock held.
func (g *Grouper) joinLocked(q *projectQueue, m *stream.Message) (*pubGroup, error) {
	var grp *pubGroup
	if n := len(q.pending); n > 0 && !q.pending[n-1].closed {
		grp = q.pending[n-1]
		ok, err := grp.b.Add(m, g.maxBytes)
		if err != nil {
			return nil, fmt.Errorf("ingest: group publish: %w", err)
		}
		if !ok {
			grp.closed = true // over the byte bound with m: m starts the next group
			grp = nil
		}
	}
	if grp == nil {
		// Capacity: the last group's size, so a steady load grows no buffer.
		grp = &pubGroup{b: g.builder(m.ProjectID, min(max(q.lastSize, int(messageSize(m))), g.maxBytes)), slot: make(chan struct{}, 1), done: make(chan struct{})}
		if _, err := grp.b.Add(m, g.maxBytes); err != nil { // the first member is always taken
			return nil, fmt.Errorf("ingest: group publish: %w", err)
		}
		q.pending = append(q.pending, grp)
	}
	if grp.b.Len() >= g.maxMembers {
		grp.closed = true
	}
	grp.waiting++
	return grp, nil
}

// publishAlone publishes m by itself on a slot the caller took, and passes
// the slot on — also if the publisher panics (net/http recovers a
// handler's panic: a slot never given back would stall the project).
func (g *Grouper) publishAlone(ctx context.Context, sh *groupShard, q *projectQueue, m *stream.Message, msgID string) error {
	defer g.release(sh, m.ProjectID, q)
	publishesAlone.Inc()
	groupSize.Update(1)
	return g.pub.Publish(ctx, m, msgID)
}

// errLeaderPanicked is what the members of a group get when its publish
// panicked (the panic goes on up the leader's stack).
var errLeaderPanicked = errors.New("ingest: group publish panicked")

// lead publishes grp, which holds a slot, answers its members and passes
// the slot on (also when the publish panics).
func (g *Grouper) lead(ctx context.Context, sh *groupShard, project uint64, q *projectQueue, grp *pubGroup) (err error) {
	sh.mu.Lock()
	grp.led = true
	sh.mu.Unlock()
	err = errLeaderPanicked
	defer func() {
		grp.err = err
		close(grp.done)
		g.release(sh, project, q)
	}()
	n := grp.b.Len()
	if n == 1 {
		publishesSingle.Inc()
	} else {
		publishesGroup.Inc()
	}
	groupSize.Update(float64(n))
	err = g.pub.PublishBuilt(ctx, grp.b, newRandomID())
	// Granted, so closed: only this goroutine holds the builder now, and
	// PublishBuilt kept nothing of its bytes.
	g.builders.Put(grp.b)
	grp.b = nil
	return err
}

// builder returns an empty group builder for project: a reused one (its
// buffer grown to the groups it held, so a steady load allocates and
// zeroes no group buffer), or a new one with capacity hint. Reuse cut
// what ingest allocates under load from ~13 to ~8 KB a request
// (cmd/relay-load, 64 connections, 1.5 KB envelopes: the group buffers
// were 4.3 KB an envelope, most of it append's regrowth past the hint).
// A builder from an abandoned group is left to the GC.
func (g *Grouper) builder(project uint64, hint int) *stream.GroupBuilder {
	if b, ok := g.builders.Get().(*stream.GroupBuilder); ok {
		b.Reset(project)
		return b
	}
	return stream.NewGroupBuilder(project, hint)
}

// release ends one publish of the project: the slot goes to the oldest
// waiting group, and an idle project is forgotten.
func (g *Grouper) release(sh *groupShard, project uint64, q *projectQueue) {
	sh.mu.Lock()
	q.inflight--
	g.grantLocked(sh, project, q)
	sh.mu.Unlock()
}

// grantLocked gives free slots to the oldest pending groups, and forgets
// the project when it is idle. Called with the shard lock held.
func (g *Grouper) grantLocked(sh *groupShard, project uint64, q *projectQueue) {
	for q.inflight < g.maxInFlight && len(q.pending) > 0 {
		grp := q.pending[0]
		q.pending[0] = nil
		q.pending = q.pending[1:]
		grp.closed, grp.granted = true, true
		q.lastSize = grp.b.Size()
		q.inflight++
		grp.slot <- struct{}{} // buffered, sent once: never blocks
	}
	if len(q.pending) == 0 {
		q.pending = nil // the backing array is not kept for an idle project
		if q.inflight == 0 {
			delete(sh.projects, project)
		}
	}
}

// abandonLocked drops a group none of whose members waits any more and
// that no member leads: nobody was promised anything. A group still queued
// leaves the queue; one already granted a slot (its token still unread:
// no member took it, or it would be led) gives the slot on.
func (g *Grouper) abandonLocked(sh *groupShard, project uint64, q *projectQueue, grp *pubGroup) {
	groupsAbandoned.Inc()
	grp.closed = true
	grp.err = errGroupAbandoned
	close(grp.done)
	if grp.granted {
		<-grp.slot // the unread token: never blocks (see above)
		q.inflight--
		g.grantLocked(sh, project, q)
		return
	}
	for i, p := range q.pending {
		if p == grp {
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			break
		}
	}
	if len(q.pending) == 0 && q.inflight == 0 {
		delete(sh.projects, project)
	}
}

// errGroupAbandoned is the result of a group nobody waited for; no member
// sees it (each returned its ctx error), it only marks the group settled.
var errGroupAbandoned = errors.New("ingest: group abandoned by all its members")
