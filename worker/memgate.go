package worker

import (
	"context"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// memGate paces the move into the spool by the process's memory: before a
// Put, while the Go runtime's memory is above its soft limit
// (debug.SetMemoryLimit; cmd/relay sets 160 MiB unless GOMEMLIMIT says
// otherwise), the mover waits for the garbage collection in progress — or
// the next one — to finish, at most maxWait.
//
// Why: moving a full stream into the spool makes garbage as fast as the
// CPU allows (every envelope is copied by nats-server, nats.go and bbolt on
// its way), and ingest refills the stream as fast as the move frees it. The
// collector, capped at about half the CPU by the runtime once the limit is
// reached, then falls behind, and the RSS passes the soft limit (205–242 MB
// peaks against a 200 MB goal in cmd/relay-load/memory.sh). Waiting for a
// collection gives it the CPU the move was using; ingest slows with the move
// because the stream stays full.
//
// Costs and invariants:
//   - Nothing changes below the limit: the check is a cached read of
//     runtime/metrics (refreshed at most every checkEvery), no wait.
//   - Above it the move runs at the pace of the collector: waits are
//     counted (relay_worker_spool_memory_waits_total, _seconds_total).
//   - A wait never exceeds maxWait, so a process whose live heap really
//     needs more than the limit (a large concurrency, huge attachments)
//     still moves, at worst one Put per consumer per maxWait.
//   - It only delays a Put: the message stays un-acked (and heartbeaten)
//     meanwhile, so no ack rule changes; a ctx that ends stops the wait.
type memGate struct {
	state      func() (over bool, gcCycles uint64)
	poll       time.Duration
	maxWait    time.Duration
	checkEvery time.Duration

	lastCheck atomic.Int64 // unix nanos of the last state read that found the process under the limit
}

const (
	memGatePoll    = 2 * time.Millisecond
	memGateMaxWait = 100 * time.Millisecond
	memGateCheck   = time.Millisecond
)

func newMemGate() *memGate {
	return &memGate{state: runtimeMemState, poll: memGatePoll, maxWait: memGateMaxWait, checkEvery: memGateCheck}
}

// wait returns at once while the process is under its memory limit (or has
// none); above it, once a garbage collection finished, the process is under
// the limit again, maxWait passed or ctx ended.
func (g *memGate) wait(ctx context.Context) {
	now := time.Now()
	if now.UnixNano()-g.lastCheck.Load() < int64(g.checkEvery) {
		return // under the limit a moment ago
	}
	over, cycles := g.state()
	if !over {
		g.lastCheck.Store(now.UnixNano())
		return
	}
	t := time.NewTicker(g.poll)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
			o, c := g.state()
			done = !o || c != cycles || time.Since(now) >= g.maxWait
		}
	}
	memWaitsTotal.Inc()
	memWaitSeconds.Add(time.Since(now).Seconds())
}

var memStateSamples = sync.Pool{New: func() any {
	return &[]metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/gc/cycles/total:gc-cycles"},
	}
}}

// runtimeMemState reports whether the memory the runtime counts against
// its limit (all it mapped, less what it returned to the OS: the
// definition debug.SetMemoryLimit uses) is above the limit, and how many
// GC cycles have completed.
func runtimeMemState() (over bool, gcCycles uint64) {
	limit := debug.SetMemoryLimit(-1)
	s := memStateSamples.Get().(*[]metrics.Sample)
	defer memStateSamples.Put(s)
	metrics.Read(*s)
	total, released, cycles := (*s)[0].Value.Uint64(), (*s)[1].Value.Uint64(), (*s)[2].Value.Uint64()
	if limit == math.MaxInt64 || limit <= 0 {
		return false, cycles
	}
	return total-released > uint64(limit), cycles
}
