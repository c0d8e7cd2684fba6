package stream

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkGroupConsume is the worker's side of BenchmarkGroupPublish: the
// CPU to fetch and ack one envelope when envelopes arrive in groups of N
// (one stream message, one delivery, one ack per group) against one message
// each (group=1, today's path). The stream is filled before the timer
// starts; the timed loop fetches 8 stream messages at a time (the worker's
// default FetchBatch), expands them, AckNoWaits every Delivery (the
// worker's ack, loss record included), and ends once the stream is empty —
// so the embedded server's work on the acks is counted too.
//
// ns/op and cpu-µs/env are per envelope; compare within one run:
//
//	go test -run '^$' -bench BenchmarkGroupConsume -benchtime 20000x -count 6 ./internal/stream/ | tee consume.txt
//	benchstat -col /group consume.txt
func BenchmarkGroupConsume(b *testing.B) {
	for _, group := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("group=%d", group), func(b *testing.B) { benchGroupConsume(b, group) })
	}
}

func benchGroupConsume(b *testing.B, group int) {
	c, err := Open(context.Background(), Config{StoreDir: b.TempDir(), FetchWait: 100 * time.Millisecond}, testLog(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	k, err := c.Consumer(ctx, "workers")
	if err != nil {
		b.Fatal(err)
	}
	base := msgN(0)
	base.Envelope = bytes.Repeat([]byte("x"), 1024)
	// Fill: 64 publishers, b.N envelopes in groups of group.
	var (
		left atomic.Int64
		seq  atomic.Int64
		wg   sync.WaitGroup
		fail atomic.Pointer[error]
	)
	left.Store(int64(b.N))
	for range 64 {
		wg.Go(func() {
			for {
				n := min(int64(group), left.Add(-int64(group))+int64(group))
				if n <= 0 {
					return
				}
				ms := make([]*Message, n)
				for i := range ms {
					m := *base
					m.EventID = fmt.Sprintf("%032x", seq.Add(1))
					ms[i] = &m
				}
				if err := c.PublishGroup(ctx, ms, ""); err != nil {
					fail.Store(&err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := fail.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportAllocs()
	ru0 := rusageCPU(b)
	b.ResetTimer()
	got := 0
	for got < b.N {
		ds, err := k.Fetch(ctx, 8)
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range ds {
			if err := d.AckNoWait(); err != nil {
				b.Fatal(err)
			}
		}
		got += len(ds)
	}
	for {
		info, err := c.stream.Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if info.State.Msgs == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cpu := rusageCPU(b) - ru0
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/env")
}
