package upstream

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/relayhq/relay/internal/testfixture"
)

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
	type setting struct {
		name string
		opts []zstd.EOption
	}
	var settings []setting
	for _, lvl := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression} {
		for _, low := range []bool{false, true} {
			for _, win := range []int{0, 64 << 10} {
				opts := []zstd.EOption{zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false), zstd.WithZeroFrames(true), zstd.WithLowerEncoderMem(low)}
				n := lvl.String()
				if low {
					n += "-lowmem"
				}
				if win != 0 {
					opts = append(opts, zstd.WithWindowSize(win))
					n += "-win64k"
				}
				settings = append(settings, setting{n, opts})
			}
		}
	}
	for _, s := range settings {
		b.Run(s.name, func(b *testing.B) {
			enc, err := zstd.NewWriter(nil, s.opts...)
			if err != nil {
				b.Fatal(err)
			}
			var in, out int
			for _, c := range corpus {
				in += len(c)
				out += len(enc.EncodeAll(c, nil))
			}
			buf := make([]byte, 0, 64<<10)
			b.ReportAllocs()
			for b.Loop() {
				for _, c := range corpus {
					buf = enc.EncodeAll(c, buf[:0])
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(corpus)), "ns/envelope")
			b.ReportMetric(float64(out)/float64(in), "ratio")
			b.ReportMetric(float64(out), "bytes")
		})
	}
}
