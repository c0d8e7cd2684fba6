package ratelimit

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
)

const key = "0123456789abcdef0123456789abcdef"

// clock is an injected time source tests move by hand.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }

func openConn(t *testing.T, dir string) *stream.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := stream.Open(ctx, stream.Config{StoreDir: dir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("stream.Open: %v", err)
	}
	return c
}

// setup gives a test a clock, a 30 s context, a stream in a fresh directory
// and the limits' bucket on it, all closed when the test ends.
func setup(t *testing.T) (*clock, context.Context, *stream.Conn, *stream.KV) {
	t.Helper()
	clk := newClock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	conn := openConn(t, t.TempDir())
	t.Cleanup(func() { _ = conn.Close() })
	return clk, ctx, conn, openBucket(t, ctx, conn)
}

// openBucket binds to the limits' bucket on c (creating it the first time).
func openBucket(t *testing.T, ctx context.Context, c *stream.Conn) *stream.KV {
	t.Helper()
	kv, err := c.KeyValue(ctx, BucketName, BucketTTL)
	if err != nil {
		t.Fatalf("KeyValue: %v", err)
	}
	return kv
}

func openShared(t *testing.T, ctx context.Context, c *stream.Conn, now func() time.Time) *Shared {
	t.Helper()
	s, err := Open(ctx, openBucket(t, ctx, c), now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A limit one process records is seen by another process on the same stream
// (through the watch, not a bucket read per call), merges with what that
// process records itself, survives a restart with its remaining time, and
// expires by the clock.
func TestSharedAcrossProcessesAndRestart(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := openConn(t, dir)
	a := openShared(t, ctx, conn, clk.now)
	b := openShared(t, ctx, conn, clk.now)

	now := clk.now()
	errLimit := upstream.RateLimits{}.Add(upstream.RateLimit{Categories: []string{"error"}, Scope: upstream.ScopeKey,
		ReasonCode: "quota", Until: now.Add(60 * time.Second)})
	if err := a.Record(ctx, key, errLimit); err != nil {
		t.Fatalf("Record: %v", err)
	}
	waitFor(t, "b to see a's limit", func() bool { return b.Limits(key).Len() == 1 })
	if _, ok := b.Limits(key).IsLimited([]string{"error"}, now); !ok {
		t.Fatalf("b: error not limited: %+v", b.Limits(key).Limits())
	}
	txLimit := upstream.RateLimits{}.Add(upstream.RateLimit{Categories: []string{"transaction"}, Scope: upstream.ScopeKey,
		Until: now.Add(2 * time.Second)})
	if err := b.Record(ctx, key, txLimit); err != nil {
		t.Fatalf("Record: %v", err)
	}
	waitFor(t, "a to see both limits", func() bool { return a.Limits(key).Len() == 2 })
	if got := a.Limits(key).Format(now); got != "60:error:key:quota, 2:transaction:key" &&
		got != "2:transaction:key, 60:error:key:quota" {
		t.Fatalf("a's limits = %q", got)
	}

	cancel()
	if err := conn.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	clk.add(30 * time.Second)
	conn2 := openConn(t, dir)
	defer func() { _ = conn2.Close() }()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	c := openShared(t, ctx2, conn2, clk.now)
	if got := c.Limits(key).Format(clk.now()); got != "30:error:key:quota" {
		t.Fatalf("after restart: limits = %q; want the error limit's remaining 30 s only", got)
	}
	clk.add(30 * time.Second)
	if got := c.Limits(key); got.Len() != 0 {
		t.Fatalf("after expiry: %+v", got.Limits())
	}
	if got := c.Limits("ffffffffffffffffffffffffffffffff"); got.Len() != 0 {
		t.Fatalf("unknown key: %+v", got.Limits())
	}
}

// A value that does not decode is ignored (and counted), not a crash, and
// does not erase what the key had.
func TestSharedIgnoresBadValues(t *testing.T) {
	clk, ctx, conn, kv := setup(t)
	s := openShared(t, ctx, conn, clk.now)
	if err := s.Record(ctx, key, upstream.RateLimits{}.Add(upstream.RateLimit{Until: clk.now().Add(time.Minute)})); err != nil {
		t.Fatalf("Record: %v", err)
	}
	// One at a time: the bucket keeps one value per key, so a value replaced
	// before the watch read it is never seen (nor needs to be).
	for _, v := range []string{"not json", `{"c":1}`, `[{"u":"x"}]`} {
		before := decodeErrors.Get()
		if err := kv.Put(ctx, key, []byte(v)); err != nil {
			t.Fatalf("Put: %v", err)
		}
		waitFor(t, "the bad value "+v+" to be seen", func() bool { return decodeErrors.Get() >= before+1 })
	}
	if got := s.Limits(key).Format(clk.now()); got != "60::key" {
		t.Fatalf("limits = %q; want the recorded one kept", got)
	}
}

// deafBucket is a real bucket whose watch delivers nothing: a process whose
// view of the bucket lags behind the other processes' writes.
type deafBucket struct{ *stream.KV }

func (deafBucket) Watch(context.Context, func(string, []byte)) error { return nil }

// racingBucket writes intruder into the key right after the first read of
// a Record, as another process would between its read and its write.
type racingBucket struct {
	*stream.KV
	intruder []byte
	done     bool
}

func (b *racingBucket) GetRevision(ctx context.Context, key string) ([]byte, uint64, error) {
	v, rev, err := b.KV.GetRevision(ctx, key)
	if err == nil && !b.done {
		b.done = true
		if err := b.KV.Put(ctx, key, b.intruder); err != nil {
			return nil, 0, err
		}
	}
	return v, rev, err
}

func bucketLimits(t *testing.T, ctx context.Context, kv *stream.KV, key string, now time.Time) string {
	t.Helper()
	v, _, err := kv.GetRevision(ctx, key)
	if err != nil {
		t.Fatalf("GetRevision: %v", err)
	}
	rl, err := decode(v)
	if err != nil {
		t.Fatalf("decode %q: %v", v, err)
	}
	return rl.Format(now)
}

// Two processes recording different limits of one key: the bucket ends with
// both, also when the second process had not yet seen the first one's write
// (its Record merges with the bucket, not only with its own view), and the
// first process sees both through its watch.
func TestRecordMergesWithTheBucket(t *testing.T) {
	clk, ctx, conn, kv := setup(t)
	a := openShared(t, ctx, conn, clk.now)
	b, err := Open(ctx, deafBucket{kv}, clk.now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	now := clk.now()
	if err := a.Record(ctx, key, upstream.RateLimits{}.Add(upstream.RateLimit{Categories: []string{"error"},
		Scope: upstream.ScopeKey, Until: now.Add(60 * time.Second)})); err != nil {
		t.Fatalf("Record a: %v", err)
	}
	if got := b.Limits(key).Format(now); got != "" {
		t.Fatalf("b saw %q; the test needs a process that has not seen a's write", got)
	}
	if err := b.Record(ctx, key, upstream.RateLimits{}.Add(upstream.RateLimit{Categories: []string{"transaction"},
		Scope: upstream.ScopeKey, Until: now.Add(120 * time.Second)})); err != nil {
		t.Fatalf("Record b: %v", err)
	}
	const want = "120:transaction:key, 60:error:key"
	if got := bucketLimits(t, ctx, kv, key, now); got != want {
		t.Fatalf("bucket holds %q; want %q (the later write must not drop the earlier one)", got, want)
	}
	waitFor(t, "a to see both limits", func() bool { return a.Limits(key).Format(now) == want })
}

// A write that lands between Record's read and its write makes the write
// fail and Record read, merge and write again: nothing of either is lost.
func TestRecordRetriesOnConflict(t *testing.T) {
	clk, ctx, _, kv := setup(t)
	now := clk.now()
	intruder, err := encode(upstream.RateLimits{}.Add(upstream.RateLimit{Categories: []string{"session"},
		Scope: upstream.ScopeKey, Until: now.Add(30 * time.Second)}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		key   string
		first bool // the key has no value before the Record (Create, not Update)
	}{{"no value yet", "fedcba9876543210fedcba9876543210", true}, {"a value already", key, false}} {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key
			if !tc.first {
				if err := kv.Put(ctx, key, intruder); err != nil {
					t.Fatalf("Put: %v", err)
				}
			}
			bucket := &racingBucket{KV: kv, intruder: intruder}
			s, err := Open(ctx, bucket, clk.now, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			before := swapConflicts.Get()
			if err := s.Record(ctx, key, upstream.RateLimits{}.Add(upstream.RateLimit{Categories: []string{"error"},
				Scope: upstream.ScopeKey, Until: now.Add(60 * time.Second)})); err != nil {
				t.Fatalf("Record: %v", err)
			}
			if got := swapConflicts.Get() - before; got != 1 {
				t.Fatalf("conflicts counted: %d, want 1", got)
			}
			if got, want := bucketLimits(t, ctx, kv, key, now), "60:error:key, 30:session:key"; got != want {
				t.Fatalf("bucket holds %q; want %q", got, want)
			}
		})
	}
}
