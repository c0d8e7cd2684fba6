package history

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time                   { return c.t }
func (c *fakeClock) add(d time.Duration)              { c.t = c.t.Add(d) }
func newClock() *fakeClock                            { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }
func counts(a, f, s uint64) Counts                    { return Counts{Accepted: a, Forwarded: f, Spooled: s} }
func src(c *Counts) SourceFunc                        { return func() Counts { return *c } }
func at(base time.Time, sec int) time.Time            { return base.Add(time.Duration(sec) * time.Second) }
func sample(base time.Time, sec int, c Counts) Sample { return Sample{At: at(base, sec), Counts: c} }

func TestRingKeepsTheNewestSamplesOldestFirst(t *testing.T) {
	clk := newClock()
	var c Counts
	r := New(src(&c), Options{Every: 5 * time.Second, Keep: 20 * time.Second, Now: clk.now})
	if got := len(r.ring); got != 5 {
		t.Fatalf("ring holds %d samples, want keep/every+1 = 5", got)
	}
	for i := range 8 {
		c = counts(uint64(i), 0, 0)
		r.Sample()
		clk.add(5 * time.Second)
	}
	got := r.Samples()
	if len(got) != 5 {
		t.Fatalf("%d samples, want 5", len(got))
	}
	for i, s := range got {
		if want := uint64(3 + i); s.Accepted != want {
			t.Errorf("sample %d accepted = %d, want %d (oldest first, the three oldest overwritten)", i, s.Accepted, want)
		}
	}
	if span := got[4].At.Sub(got[0].At); span != 20*time.Second {
		t.Errorf("ring spans %v, want the whole keep (20s)", span)
	}
}

func TestRates(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name    string
		samples []Sample
		window  time.Duration
		want    Rates
	}{
		{name: "no samples", window: time.Minute},
		{name: "one sample", samples: []Sample{sample(base, 0, counts(5, 5, 5))}, window: time.Minute},
		{
			name: "younger than the window: over what there is",
			samples: []Sample{
				sample(base, 0, counts(0, 0, 0)),
				sample(base, 10, counts(50, 20, 10)),
			},
			window: time.Minute,
			want:   Rates{Window: 10 * time.Second, Accepted: 5, Forwarded: 2, Spooled: 1},
		},
		{
			name: "older samples outside the window are ignored",
			samples: []Sample{
				sample(base, 0, counts(0, 0, 0)),
				sample(base, 30, counts(1000, 1000, 1000)),
				sample(base, 60, counts(1060, 1000, 1000)),
				sample(base, 90, counts(1120, 1030, 1000)),
			},
			window: time.Minute,
			want:   Rates{Window: time.Minute, Accepted: 2, Forwarded: 0.5, Spooled: 0},
		},
		{
			name: "a late tick divides by the real span",
			samples: []Sample{
				sample(base, 0, counts(0, 0, 0)),
				sample(base, 40, counts(40, 0, 0)),
			},
			window: time.Minute,
			want:   Rates{Window: 40 * time.Second, Accepted: 1},
		},
		{
			name: "a counter that went down restarted from zero",
			samples: []Sample{
				sample(base, 0, counts(100, 0, 0)),
				sample(base, 10, counts(20, 0, 0)),
			},
			window: time.Minute,
			want:   Rates{Window: 10 * time.Second, Accepted: 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := RatesOf(tc.samples, tc.window); got != tc.want {
				t.Errorf("RatesOf = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSeriesIsTheGrowthPerInterval(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	s := SeriesOf([]Sample{
		sample(base, 0, counts(0, 0, 0)),
		sample(base, 5, counts(3, 1, 0)),
		sample(base, 10, counts(3, 4, 2)),
		sample(base, 15, counts(1, 4, 2)), // restarted from zero
	}, 5*time.Second)
	want := Series{
		Every:     5 * time.Second,
		End:       []time.Time{at(base, 5), at(base, 10), at(base, 15)},
		Accepted:  []uint64{3, 0, 1},
		Forwarded: []uint64{1, 3, 0},
		Spooled:   []uint64{0, 2, 0},
	}
	if len(s.End) != 3 {
		t.Fatalf("series has %d points, want 3", len(s.End))
	}
	for i := range 3 {
		if !s.End[i].Equal(want.End[i]) || s.Accepted[i] != want.Accepted[i] ||
			s.Forwarded[i] != want.Forwarded[i] || s.Spooled[i] != want.Spooled[i] {
			t.Errorf("point %d = %v %d/%d/%d, want %v %d/%d/%d", i, s.End[i], s.Accepted[i], s.Forwarded[i], s.Spooled[i],
				want.End[i], want.Accepted[i], want.Forwarded[i], want.Spooled[i])
		}
	}
	if got := SeriesOf([]Sample{sample(base, 0, counts(1, 1, 1))}, time.Second); len(got.End) != 0 {
		t.Errorf("one sample makes %d points, want none", len(got.End))
	}
}

func TestRingSizeIsBounded(t *testing.T) {
	r := New(SourceFunc(func() Counts { return Counts{} }), Options{Every: time.Nanosecond, Keep: 24 * time.Hour})
	if len(r.ring) != maxSamples {
		t.Fatalf("ring of %d samples, want it capped at %d", len(r.ring), maxSamples)
	}
	d := New(SourceFunc(func() Counts { return Counts{} }), Options{})
	if d.Every() != DefaultEvery || len(d.ring) != int(DefaultKeep/DefaultEvery)+1 {
		t.Fatalf("defaults: every %v, %d samples", d.Every(), len(d.ring))
	}
}

// TestRunSamplesUntilCancelled runs the sampling goroutine on a short real
// interval and checks it samples at start, keeps sampling, and returns once
// its context ends.
func TestRunSamplesUntilCancelled(t *testing.T) {
	var reads atomic.Int64
	r := New(SourceFunc(func() Counts {
		return Counts{Accepted: uint64(reads.Add(1))}
	}), Options{Every: time.Millisecond, Keep: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(r.Samples()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d samples after 10s", len(r.Samples()))
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	n := len(r.Samples())
	time.Sleep(20 * time.Millisecond)
	if len(r.Samples()) != n {
		t.Fatal("sampling went on after Run returned")
	}
	if s := r.Samples(); s[0].Accepted != 1 {
		t.Errorf("first sample read %d, want the read at start (1)", s[0].Accepted)
	}
}
