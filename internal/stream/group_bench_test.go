package stream

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkGroupPublish asks whether a group publish would pay before one is
// built: ingest's cost per envelope when N concurrent envelopes share one
// stream message (one Nats-Msg-Id, one PubAck) against one message each.
//
// The load is 64 envelopes in flight (like 64 concurrent HTTP handlers): with
// group=N, 64/N publishers each encode N Messages (1 KiB envelopes, the
// fields ingest fills), join them length-prefixed — the shape a multi-envelope
// stream message would have — and Publish that as one Message through the
// relay's own path (record, subject, PubAck, retries), on an embedded server
// with the relay's stream config (sync "default" or "always"). group=1 is
// today's path exactly: one Publish per envelope.
//
// ns/op is per envelope. cpu-µs/env is the process's user+system CPU (the
// embedded nats-server runs in it, as in the relay) over the timed loop
// divided by the envelopes published: the figure that does not move with the
// load of a shared machine. Compare the groups of one run with benchstat:
//
//	go test -run '^$' -bench BenchmarkGroupPublish -count 6 ./internal/stream/ | tee group.txt
//	benchstat -col /group group.txt
func BenchmarkGroupPublish(b *testing.B) {
	for _, syncMode := range []string{"default", "always"} {
		for _, group := range []int{1, 8, 16, 32} {
			b.Run(fmt.Sprintf("sync=%s/group=%d", syncMode, group), func(b *testing.B) {
				benchGroupPublish(b, syncMode, group, 64)
			})
		}
	}
}

func benchGroupPublish(b *testing.B, syncMode string, group, inflight int) {
	cfg := Config{StoreDir: b.TempDir(), Sync: syncMode}
	if syncMode == "default" {
		cfg.Sync = ""
	}
	c, err := Open(context.Background(), cfg, testLog(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	base := msgN(0)
	base.Envelope = bytes.Repeat([]byte("x"), 1024)
	base.UserAgent = "sentry.python/2.19.0"
	base.ForwardedFor = "10.0.0.1, 127.0.0.1"

	publishers := max(1, inflight/group)
	var (
		left  atomic.Int64 // envelopes still to publish
		seq   atomic.Int64 // message ids
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	left.Store(int64(b.N))
	ctx := context.Background()
	b.SetBytes(int64(len(base.Envelope)))
	b.ReportAllocs()
	ru0 := rusageCPU(b)
	b.ResetTimer()
	for range publishers {
		wg.Go(func() {
			m := *base
			var member, joined []byte
			for {
				n := min(int64(group), left.Add(-int64(group))+int64(group))
				if n <= 0 {
					return
				}
				id := fmt.Sprintf("m-%d", seq.Add(1))
				var err error
				if group == 1 {
					m.EventID = fmt.Sprintf("%032x", seq.Load())
					err = c.Publish(ctx, &m, id)
				} else {
					joined = joined[:0]
					for i := range n {
						m.EventID = fmt.Sprintf("%032x", i)
						member, err = m.AppendBinary(member[:0])
						if err != nil {
							break
						}
						joined = binary.AppendUvarint(joined, uint64(len(member)))
						joined = append(joined, member...)
					}
					g := Message{ProjectID: m.ProjectID, ReceivedAt: m.ReceivedAt, Envelope: joined}
					if err == nil {
						err = c.Publish(ctx, &g, id)
					}
				}
				if err != nil {
					errMu.Lock()
					first = err
					errMu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	cpu := rusageCPU(b) - ru0
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/env")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "env/s")
}

// rusageCPU is the user+system CPU this process has used so far.
func rusageCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGroupPublishJoin prices the batching policy a group publish would
// use, not a fixed group size: no time window — an envelope that finds no
// publish in flight is published at once, alone; envelopes arriving while one
// is in flight join the next group (at most 32), published the moment the
// PubAck comes. Every publisher waits for the PubAck of the message holding
// its envelope, as an SDK would. conc=1 shows a lone envelope pays nothing
// (groups of 1); conc=64 shows what group size forms by itself.
//
//	go test -run '^$' -bench BenchmarkGroupPublishJoin -count 6 ./internal/stream/ | tee join.txt
//	benchstat -col /policy join.txt
func BenchmarkGroupPublishJoin(b *testing.B) {
	for _, conc := range []int{1, 64} {
		for _, policy := range []string{"alone", "join"} {
			b.Run(fmt.Sprintf("conc=%d/policy=%s", conc, policy), func(b *testing.B) {
				benchJoin(b, conc, policy == "join")
			})
		}
	}
}

// joiner is the policy under test: one publish in flight, the others queue.
type joiner struct {
	c       *Conn
	mu      sync.Mutex
	busy    bool
	pending []*joinReq
	seq     atomic.Int64
	groups  atomic.Int64
}

type joinReq struct {
	m    *Message
	done chan error
}

func (j *joiner) publish(ctx context.Context, m *Message) error {
	j.mu.Lock()
	if j.busy {
		r := &joinReq{m: m, done: make(chan error, 1)}
		j.pending = append(j.pending, r)
		j.mu.Unlock()
		return <-r.done
	}
	// This caller leads: it publishes its own envelope at once (alone,
	// unless others queued since), then the groups that queued behind
	// it, until nobody waits. A real batcher would hand the lead to a
	// per-project goroutine instead of keeping this caller's answer.
	j.busy = true
	r := &joinReq{m: m}
	j.pending = append(j.pending, r)
	var mine error
	var member, joined []byte
	for {
		n := min(len(j.pending), 32)
		group := append([]*joinReq(nil), j.pending[:n]...)
		j.pending = j.pending[n:]
		j.mu.Unlock()
		id := fmt.Sprintf("g-%d", j.seq.Add(1))
		var err error
		if len(group) == 1 {
			err = j.c.Publish(ctx, group[0].m, id)
		} else {
			joined = joined[:0]
			for _, g := range group {
				if member, err = g.m.AppendBinary(member[:0]); err != nil {
					break
				}
				joined = binary.AppendUvarint(joined, uint64(len(member)))
				joined = append(joined, member...)
			}
			if err == nil {
				err = j.c.Publish(ctx, &Message{ProjectID: m.ProjectID, ReceivedAt: m.ReceivedAt, Envelope: joined}, id)
			}
		}
		j.groups.Add(1)
		for _, g := range group {
			if g == r {
				mine = err
			} else {
				g.done <- err
			}
		}
		j.mu.Lock()
		if len(j.pending) == 0 {
			j.busy = false
			j.mu.Unlock()
			return mine
		}
	}
}

func benchJoin(b *testing.B, conc int, join bool) {
	c, err := Open(context.Background(), Config{StoreDir: b.TempDir()}, testLog(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	base := msgN(0)
	base.Envelope = bytes.Repeat([]byte("x"), 1024)
	j := &joiner{c: c}
	var (
		left  atomic.Int64
		ids   atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	left.Store(int64(b.N))
	ctx := context.Background()
	b.ReportAllocs()
	ru0 := rusageCPU(b)
	b.ResetTimer()
	for range conc {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				m := *base
				m.EventID = fmt.Sprintf("%032x", ids.Add(1))
				var err error
				if join {
					err = j.publish(ctx, &m)
				} else {
					err = c.Publish(ctx, &m, "m-"+m.EventID)
				}
				if err != nil {
					errMu.Lock()
					first = err
					errMu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	cpu := rusageCPU(b) - ru0
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/env")
	if join {
		b.ReportMetric(float64(b.N)/float64(j.groups.Load()), "env/group")
	}
}
