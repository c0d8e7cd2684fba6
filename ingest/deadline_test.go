package ingest

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Every publish waits under a deadline at least PublishTimeout away and at
// most the slack beyond it; publishes close together share one context.
func TestPublishDeadlines(t *testing.T) {
	const timeout = 640 * time.Millisecond // slack 10 ms
	base := time.Now()
	now := base
	d := newPublishDeadlines(timeout, func() time.Time { return now })
	check := func(ctx context.Context) time.Time {
		t.Helper()
		at, ok := ctx.Deadline()
		if !ok {
			t.Fatal("no deadline")
		}
		if at.Before(now.Add(timeout)) || at.After(now.Add(timeout+d.slack)) {
			t.Fatalf("deadline %v after now, want %v to %v", at.Sub(now), timeout, timeout+d.slack)
		}
		return at
	}
	first := d.get()
	check(first)
	for _, tc := range []struct {
		name   string
		after  time.Duration // since base
		shared bool          // the first context again
	}{
		{"same instant", 0, true},
		{"within the slack", 9 * time.Millisecond, true},
		{"at the slack", 10 * time.Millisecond, true},
		{"past the slack", 10*time.Millisecond + time.Nanosecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now = base.Add(tc.after)
			ctx := d.get()
			check(ctx)
			if (ctx == first) != tc.shared {
				t.Fatalf("shared = %v, want %v", ctx == first, tc.shared)
			}
		})
	}
	// A clock that went back (a fake one; time.Now is monotonic) still gets
	// a deadline at least timeout away, never one too far out.
	now = base.Add(-time.Second)
	check(d.get())
}

// Concurrent publishes each get a fitting deadline; the real clock.
func TestPublishDeadlinesConcurrent(t *testing.T) {
	const timeout = 64 * time.Millisecond
	d := newPublishDeadlines(timeout, time.Now)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				before := time.Now()
				ctx := d.get()
				after := time.Now()
				at, _ := ctx.Deadline()
				if at.Before(before.Add(timeout)) || at.After(after.Add(timeout+d.slack)) {
					errs <- "deadline out of range"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	// The shared context does end, by its own timer.
	ctx := d.get()
	select {
	case <-ctx.Done():
	case <-time.After(timeout + d.slack + 2*time.Second):
		t.Fatal("shared publish deadline never ended")
	}
}
