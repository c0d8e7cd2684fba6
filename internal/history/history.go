// Package history keeps the relay's recent throughput for the status page
// and `relay status`: a fixed ring of samples of three monotonic counters —
// envelopes accepted at ingest, forwarded upstream, committed to the spool —
// taken at a fixed interval by a goroutine the app owns (Recorder.Run).
//
// Invariants:
//   - Memory is fixed at New: the ring holds keep/every+1 samples and never
//     grows; the oldest sample is overwritten (an hour at 5 s is 721
//     samples, about 35 KiB).
//   - The counters are read through Source, the same counters /metrics
//     exposes, so what the page shows and what Prometheus scrapes agree.
//   - Counters only grow within a process. A sample lower than the one
//     before (a Source that was swapped or reset) is read as a restart from
//     zero, as Prometheus's rate() does: a delta is never negative.
//   - Samples carry the time they were taken; rates divide by the time the
//     samples span, not by the nominal interval, so a late tick (a loaded
//     machine, a paused process) does not inflate a rate.
package history

import (
	"context"
	"sync"
	"time"
)

// Counts are the three counters the history follows, each a total since the
// process started.
type Counts struct {
	Accepted  uint64 `json:"accepted"`  // envelopes ingest stored in the stream and acknowledged
	Forwarded uint64 `json:"forwarded"` // envelopes the upstream accepted (from the stream or the spool)
	Spooled   uint64 `json:"spooled"`   // envelopes committed to the spool
}

// Source reads the counters. It is called from the sampling goroutine and
// from request handlers at once, so it must be safe for concurrent use and
// must not block (counter loads, not I/O).
type Source interface {
	Counts() Counts
}

// SourceFunc adapts a function to Source.
type SourceFunc func() Counts

// Counts calls f.
func (f SourceFunc) Counts() Counts { return f() }

// Sample is the counters at one moment.
type Sample struct {
	At time.Time
	Counts
}

// Rates are per-second rates over a window that ends at the newest sample.
type Rates struct {
	// Window is the time the two samples the rates come from span: the
	// requested window, or less while the history is younger than it (zero
	// with fewer than two samples, when every rate is 0).
	Window    time.Duration
	Accepted  float64
	Forwarded float64
	Spooled   float64
}

// Recorder samples a Source into a ring. Its methods are safe for
// concurrent use.
type Recorder struct {
	src   Source
	every time.Duration
	now   func() time.Time

	mu    sync.Mutex
	ring  []Sample // fixed length; ring[next] is the slot written next
	next  int
	count int // samples held, ≤ len(ring)
}

// Options shape a Recorder. Zero values take the defaults.
type Options struct {
	Every time.Duration    // sampling interval; default 5 s
	Keep  time.Duration    // how far back the ring reaches; default 1 h
	Now   func() time.Time // the clock; default time.Now
}

// Defaults of Options.
const (
	DefaultEvery = 5 * time.Second
	DefaultKeep  = time.Hour
)

// maxSamples bounds the ring whatever Options say (a day at 1 s).
const maxSamples = 86400 + 1

// New returns a Recorder of src holding Keep/Every+1 samples (the +1 so the
// ring spans the whole of Keep). Nothing is sampled before Sample or Run.
func New(src Source, opts Options) *Recorder {
	if opts.Every <= 0 {
		opts.Every = DefaultEvery
	}
	if opts.Keep <= 0 {
		opts.Keep = DefaultKeep
	}
	if opts.Keep < opts.Every {
		opts.Keep = opts.Every
	}
	n := int(opts.Keep/opts.Every) + 1
	if n > maxSamples {
		n = maxSamples // a tiny interval over a long keep must not allocate without bound
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Recorder{
		src:   src,
		every: opts.Every,
		now:   opts.Now,
		ring:  make([]Sample, n),
	}
}

// Every returns the sampling interval.
func (r *Recorder) Every() time.Duration { return r.every }

// Current reads the Source now, without recording a sample.
func (r *Recorder) Current() Counts { return r.src.Counts() }

// Sample reads the Source and records the result as the newest sample.
func (r *Recorder) Sample() {
	s := Sample{At: r.now(), Counts: r.src.Counts()}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ring[r.next] = s
	r.next = (r.next + 1) % len(r.ring)
	if r.count < len(r.ring) {
		r.count++
	}
}

// Run samples once at once, then every interval, until ctx ends; it
// returns ctx's error. The app starts it in a goroutine it waits for.
func (r *Recorder) Run(ctx context.Context) error {
	r.Sample()
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			r.Sample()
		}
	}
}

// Samples returns the samples held, oldest first.
func (r *Recorder) Samples() []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Sample, r.count)
	start := (r.next - r.count + len(r.ring)) % len(r.ring)
	for i := range out {
		out[i] = r.ring[(start+i)%len(r.ring)]
	}
	return out
}

// RatesOf returns the per-second rates between the newest of samples
// (oldest first) and the oldest one no more than window before it.
func RatesOf(samples []Sample, window time.Duration) Rates {
	if len(samples) < 2 {
		return Rates{}
	}
	last := samples[len(samples)-1]
	first := last
	for i := len(samples) - 2; i >= 0; i-- {
		if last.At.Sub(samples[i].At) > window {
			break
		}
		first = samples[i]
	}
	span := last.At.Sub(first.At)
	if span <= 0 {
		return Rates{}
	}
	sec := span.Seconds()
	return Rates{
		Window:    span,
		Accepted:  float64(delta(first.Accepted, last.Accepted)) / sec,
		Forwarded: float64(delta(first.Forwarded, last.Forwarded)) / sec,
		Spooled:   float64(delta(first.Spooled, last.Spooled)) / sec,
	}
}

// delta is how much a counter grew from prev to cur; a cur below prev is a
// counter that restarted from zero, so it grew by cur.
func delta(prev, cur uint64) uint64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// Series is the history as a chart draws it: for each interval between two
// consecutive samples, its end time and how much each counter grew in it.
type Series struct {
	Every     time.Duration
	End       []time.Time
	Accepted  []uint64
	Forwarded []uint64
	Spooled   []uint64
}

// SeriesOf turns samples (oldest first) into a Series.
func SeriesOf(samples []Sample, every time.Duration) Series {
	s := Series{Every: every}
	for i := 1; i < len(samples); i++ {
		prev, cur := samples[i-1], samples[i]
		s.End = append(s.End, cur.At)
		s.Accepted = append(s.Accepted, delta(prev.Accepted, cur.Accepted))
		s.Forwarded = append(s.Forwarded, delta(prev.Forwarded, cur.Forwarded))
		s.Spooled = append(s.Spooled, delta(prev.Spooled, cur.Spooled))
	}
	return s
}
