package worker

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/stream"
)

// The backlog the memory test moves; the defaults keep it quick, the issue's
// measurement used 200 KB envelopes and 2 GB:
//
//	go test -run TestBacklogMemory -count=1 ./worker/ -args -backlog.n=10000 -backlog.size=200000
var (
	backlogN    = flag.Int("backlog.n", 200, "TestBacklogMemory: envelopes in the stream backlog")
	backlogSize = flag.Int("backlog.size", 200_000, "TestBacklogMemory: bytes per envelope")
)

// heapPeak samples, until stopped, the live heap (what the last GC found
// reachable: what the worker holds) and the heap in use (which RSS follows:
// live plus garbage not yet collected, set by GOGC and GOMEMLIMIT).
type heapPeak struct {
	live, inuse atomic.Uint64
	stop        chan struct{}
	done        sync.WaitGroup
}

func watchHeap() *heapPeak {
	p := &heapPeak{stop: make(chan struct{})}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
		for {
			metrics.Read(s)
			p.live.Store(max(p.live.Load(), s[0].Value.Uint64()))
			p.inuse.Store(max(p.inuse.Load(), s[1].Value.Uint64()))
			select {
			case <-p.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return p
}

func (p *heapPeak) end() (live, inuse uint64) {
	close(p.stop)
	p.done.Wait()
	return p.live.Load(), p.inuse.Load()
}

// bigEnvelope is a valid envelope of about size bytes carrying id.
func bigEnvelope(id string, size int) []byte {
	payload := fmt.Sprintf(`{"event_id":%q,"message":%q,"level":"error"}`, id, strings.Repeat("x", max(size-100, 1)))
	return fmt.Appendf(nil, "{\"event_id\":%q}\n{\"type\":\"event\",\"length\":%d}\n%s\n", id, len(payload), payload)
}

// TestBacklogMemory moves a backlog of large envelopes from the stream into
// the spool after the outage grace, then drains the spool, and checks the
// heap stays bounded by the worker's byte budget — not by how much is in the
// backlog — through both, and that nothing is lost.
func TestBacklogMemory(t *testing.T) {
	h := newHarness(t, harnessOpts{dropPayloads: true})
	n, size := *backlogN, *backlogSize
	ids := make([]string, n)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				id := fmt.Sprintf("%032x", i+1)
				ids[i] = id
				m := &stream.Message{ProjectID: testProject, PublicKey: keyA, Version: 7, ReceivedAt: time.Now(), EventID: id, Envelope: bigEnvelope(id, size)}
				if err := h.conn.Publish(context.Background(), m, id); err != nil {
					t.Errorf("publish %s: %v", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	h.mu.Lock()
	h.ledger = ids
	for _, id := range ids {
		h.keyOf[id] = keyA
	}
	h.mu.Unlock()
	runtime.GC()
	backlog := uint64(n) * uint64(size)

	h.up.Down()
	move := watchHeap()
	h.start(fastCfg(Config{})) // the default concurrency, fetch batch and byte budget
	eventually(t, 5*time.Minute, "the backlog moved into the spool", func() bool { return h.spool.Stats().Records == int64(n) })
	moveLive, moveInuse := move.end()

	drain := watchHeap()
	upAgain(t, h)
	eventually(t, 5*time.Minute, "the spool drained", func() bool { return h.spool.Stats().Records == 0 && len(h.acceptedIDs()) >= n })
	drainLive, drainInuse := drain.end()
	// Nothing lost. Redeliveries (a loaded machine lets AckWait pass while
	// 200 KB envelopes crawl through -race) duplicate some: at-least-once,
	// not what this test is about, so any number is allowed here.
	h.checkLedger(ids, n)

	t.Logf("backlog %d × %d B = %d MB; peak live heap %d MB moving into the spool, %d MB draining; peak heap objects (live and garbage) %d MB, %d MB",
		n, size, backlog>>20, moveLive>>20, drainLive>>20, moveInuse>>20, drainInuse>>20)
	// What this process holds: the worker's budget (8 MiB of messages,
	// each also encoded for the spool and in bbolt's pages), the drainer's
	// batch and sends, the embedded nats-server's block cache and buffers,
	// the fake Sentry's request bodies. Without the budget the consumers
	// held Concurrency × FetchBatch = 512 envelopes (100 MB at 200 KB) and
	// every copy of each.
	const bound = 96 << 20
	if moveLive > bound || drainLive > bound {
		t.Errorf("live heap peaked at %d MB moving and %d MB draining a %d MB backlog; want both under %d MB whatever the backlog",
			moveLive>>20, drainLive>>20, backlog>>20, bound>>20)
	}
}
