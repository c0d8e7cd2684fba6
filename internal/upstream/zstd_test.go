package upstream

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/relayhq/relay/internal/testfixture"
)

// BenchmarkZstdSettings compares zstd encoder settings on every recorded
// SDK envelope (internal/testfixture/testdata/sdk): ns/envelope is the
// mean time per envelope, cpu-ns/envelope the process's CPU per envelope
// (the figure to compare on a busy machine), ratio the compressed bytes over the envelope
// bytes of the whole corpus. It is how zstdOptions was chosen; the level
// matters, the window and lower-mem do not for bodies this small.
//
//	go test -run '^$' -bench ZstdSettings -count 6 ./internal/upstream/
func BenchmarkZstdSettings(b *testing.B) {
	dir := testfixture.SDKDir(b)
	ents, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var corpus [][]byte
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".envelope") {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				b.Fatal(err)
			}
			corpus = append(corpus, data)
		}
	}
	base := []zstd.EOption{zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false), zstd.WithZeroFrames(true)}
	for _, s := range []struct {
		name string
		opts []zstd.EOption
	}{
		{"used", zstdOptions},
		{"fastest", []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedFastest)}},
		{"fastest-lowmem", []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithLowerEncoderMem(true)}},
		{"fastest-window64k", []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(64 << 10)}},
		{"default", []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedDefault)}},
		{"default-lowmem", []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithLowerEncoderMem(true)}},
		{"better", []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedBetterCompression)}},
	} {
		b.Run(s.name, func(b *testing.B) {
			opts := s.opts
			if s.name != "used" {
				opts = append(append([]zstd.EOption{}, base...), s.opts...)
			}
			enc, err := zstd.NewWriter(nil, opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = enc.Close() }()
			var in, out int
			for _, c := range corpus {
				in += len(c)
				out += len(enc.EncodeAll(c, nil))
			}
			buf := make([]byte, 0, 64<<10)
			b.ReportAllocs()
			cpu0 := processCPU(b)
			for b.Loop() {
				for _, c := range corpus {
					buf = enc.EncodeAll(c, buf[:0])
				}
			}
			n := float64(b.N * len(corpus))
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/envelope")
			b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/n, "cpu-ns/envelope")
			b.ReportMetric(float64(out)/float64(in), "ratio")
		})
	}
}

// processCPU is the user+system CPU this process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestZstdCapFitsFixtures: the capacity zstdCap gives the compressed body
// holds the compressed form of nearly every recorded SDK envelope, so a
// compression is one allocation; it is never more than the envelope plus a
// frame's overhead.
func TestZstdCapFitsFixtures(t *testing.T) {
	dir := testfixture.SDKDir(t)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := zstd.NewWriter(nil, zstdOptions...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = enc.Close() }()
	var all, grown int
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".envelope") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		all++
		c := zstdCap(len(data))
		if c > len(data)+64 {
			t.Errorf("%s: capacity %d for %d bytes", e.Name(), c, len(data))
		}
		if out := enc.EncodeAll(data, nil); len(out) > c {
			grown++
			t.Logf("%s: %d bytes compress to %d, capacity %d", e.Name(), len(data), len(out), c)
		}
	}
	if all == 0 || grown > all/10 {
		t.Errorf("%d of %d fixtures outgrow zstdCap", grown, all)
	}
}

// TestZstdWindowSmallBodiesUnchanged: the 1 MiB window (zstdOptions)
// encodes every recorded SDK envelope, and generated bodies up to the
// window, to exactly as many bytes as the default 8 MiB window did, and
// byte for byte the same where the frame is single-segment (over 1 KiB).
// Above the window the frame differs (multi-segment, the window named) and
// the body still round-trips.
func TestZstdWindowSmallBodiesUnchanged(t *testing.T) {
	dir := testfixture.SDKDir(t)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var bodies [][]byte
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".envelope") {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			bodies = append(bodies, data)
		}
	}
	if len(bodies) == 0 {
		t.Fatal("no fixtures")
	}
	// Compressible but not trivially so: a repeating record with a counter,
	// so matches reach back across the whole body.
	gen := func(n int) []byte {
		b := make([]byte, 0, n+64)
		for i := 0; len(b) < n; i++ {
			b = append(b, `{"frame":"handler.go","line":`...)
			b = append(b, byte('0'+i%10), byte('0'+i/10%10), byte('0'+i/100%7))
			b = append(b, "},\n"...)
		}
		return b[:n]
	}
	for _, n := range []int{200_000, zstdWindow} {
		bodies = append(bodies, gen(n))
	}
	def := []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false), zstd.WithZeroFrames(true)}
	old, err := zstd.NewWriter(nil, def...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = old.Close() }()
	cur, err := zstd.NewWriter(nil, zstdOptions...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cur.Close() }()
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for i, b := range bodies {
		o, c := old.EncodeAll(b, nil), cur.EncodeAll(b, nil)
		if len(o) != len(c) {
			t.Errorf("body %d (%d bytes): %d compressed bytes with the default window, %d with 1 MiB", i, len(b), len(o), len(c))
		}
		if len(b) > zstd.MinWindowSize && string(o) != string(c) {
			t.Errorf("body %d (%d bytes): single-segment frame differs", i, len(b))
		}
	}
	big := gen(3 * zstdWindow)
	c := cur.EncodeAll(big, nil)
	got, err := dec.DecodeAll(c, nil)
	if err != nil || string(got) != string(big) {
		t.Fatalf("3 MiB body does not round-trip: %v", err)
	}
	var h zstd.Header
	if err := h.Decode(c); err != nil {
		t.Fatal(err)
	}
	if h.SingleSegment || h.WindowSize != zstdWindow {
		t.Errorf("3 MiB body: frame window %d (single segment %v), want %d", h.WindowSize, h.SingleSegment, zstdWindow)
	}
	t.Logf("3 MiB body: %d bytes with the 1 MiB window, %d with the default", len(c), len(old.EncodeAll(big, nil)))
}
