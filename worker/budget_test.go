package worker

import (
	"context"
	"testing"
	"time"
)

func TestByteBudget(t *testing.T) {
	b := newByteBudget(1000)
	b.est = 100
	ctx := context.Background()

	// Room: 4 messages at the estimate are reserved at once.
	r1 := b.reserve(ctx, 4)
	if r1 != 400 || b.inUse() != 400 {
		t.Fatalf("reserve(4) = %d, in use %d; want 400, 400", r1, b.inUse())
	}
	// The fetch brought 3 messages of 300: the reservation becomes 900, and
	// the estimate the largest seen.
	b.settle(r1, []int64{300, 300, 300})
	if b.inUse() != 900 || b.est != 300 {
		t.Fatalf("after settle: in use %d, estimate %d; want 900, 300", b.inUse(), b.est)
	}

	// No room for another 2 × 300: the reservation waits until released.
	got := make(chan int64)
	go func() { got <- b.reserve(ctx, 2) }()
	select {
	case r := <-got:
		t.Fatalf("reserve past the limit returned %d at once", r)
	case <-time.After(50 * time.Millisecond):
	}
	b.release(300)
	select {
	case r := <-got:
		t.Fatalf("reserve returned %d with 600 in use and 600 wanted", r)
	case <-time.After(50 * time.Millisecond):
	}
	b.release(600)
	if r := <-got; r != 600 || b.inUse() != 600 {
		t.Fatalf("reserve after release = %d, in use %d; want 600, 600", r, b.inUse())
	}
	b.settle(600, nil) // the fetch found nothing
	if b.inUse() != 0 {
		t.Fatalf("in use %d after an empty fetch, want 0", b.inUse())
	}

	// Nothing held: even a reservation past the limit goes through, so one
	// envelope larger than the budget is still handled.
	b.settle(b.reserve(ctx, 1), []int64{5000})
	if b.inUse() != 5000 {
		t.Fatalf("in use %d, want 5000", b.inUse())
	}

	// A waiting reservation gives up with its context.
	cctx, cancel := context.WithCancel(ctx)
	go func() { got <- b.reserve(cctx, 1) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if r := <-got; r != 0 || b.inUse() != 5000 {
		t.Fatalf("cancelled reserve = %d, in use %d; want 0, 5000", r, b.inUse())
	}

	// The estimate decays towards the sizes seen lately.
	b.release(5000)
	for range 1000 {
		b.settle(0, []int64{10})
		b.release(10)
	}
	if b.est > 20 {
		t.Fatalf("estimate %d after 1000 messages of 10 bytes, want it back near 10", b.est)
	}
}
