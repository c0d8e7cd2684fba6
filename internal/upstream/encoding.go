package upstream

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// Content-Encoding values accepted in Config.Encoding (Relay's
// http.encoding). "deflate" is the zlib format (RFC 1950), which is what
// HTTP means by it and what Relay and Sentry decode.
const (
	EncodingIdentity = "identity"
	EncodingGzip     = "gzip"
	EncodingDeflate  = "deflate"
	EncodingBrotli   = "br"
	EncodingZstd     = "zstd"
)

// Encodings lists the accepted Config.Encoding values; New's error for any
// other value names them.
func Encodings() []string {
	return []string{EncodingIdentity, EncodingGzip, EncodingDeflate, EncodingBrotli, EncodingZstd}
}

// compressor turns an envelope into the request body. Implementations are
// safe for concurrent use: writers are pooled (a gzip or brotli writer holds
// hundreds of KB of state, too much to allocate per request), and the zstd
// encoder's EncodeAll is concurrent by design.
type compressor interface {
	// compress returns the encoded form of src, in a new slice that the
	// request may keep (the transport can still read the body after Send
	// returns, so the result is never recycled).
	compress(src []byte) ([]byte, error)
	close()
}

func newCompressor(encoding string) (compressor, error) {
	switch encoding {
	case "", EncodingIdentity:
		return nil, nil
	case EncodingGzip:
		return newPooled(func() (pooledWriter, error) { return gzip.NewWriterLevel(nil, gzip.DefaultCompression) })
	case EncodingDeflate:
		return newPooled(func() (pooledWriter, error) { return zlib.NewWriterLevel(nil, zlib.DefaultCompression) })
	case EncodingBrotli:
		return newPooled(func() (pooledWriter, error) {
			return brotli.NewWriterLevel(nil, brotli.DefaultCompression), nil
		})
	case EncodingZstd:
		enc, err := zstd.NewWriter(nil, zstdOptions...)
		if err != nil {
			return nil, fmt.Errorf("upstream: zstd encoder: %w", err)
		}
		return zstdCompressor{enc: enc}, nil
	default:
		return nil, fmt.Errorf("upstream: unknown encoding %q (want one of %s)", encoding, strings.Join(Encodings(), ", "))
	}
}

// zstdOptions are the upstream encoder's settings.
//
// SpeedFastest (zstd level 1), not Relay's level 3 (SpeedDefault): on the
// recorded SDK envelopes (BenchmarkZstdSettings, all 65 fixtures) it
// compresses to 3.3 % more bytes (3.4 % for the 1–8 KB events and
// transactions that make most traffic) and costs about a third less CPU
// per envelope, more under load: level 3's double-fast matcher uses a 1 MB
// table whose cache misses the microbenchmark hides. The upstream decodes
// either; the frame does not say the level.
//
// Zero frames keep an empty body a valid zstd stream. Concurrency 0 =
// GOMAXPROCS encoders; EncodeAll blocks when all are busy, which only
// happens when every CPU is already compressing. The window stays the
// default: EncodeAll of a body smaller than the window never uses more.
// A 1 MiB window (zstd.WithWindowSize) would cut the two encoders' history
// buffers from ~17 to ~5 MiB of live heap and encode every body up to
// 1 MiB byte for byte the same, but with it cmd/relay-load/memory.sh's move
// peaked higher, not lower (NOTES-h-rss2.md), so it was not kept.
// WithLowerEncoderMem is off: it only changes buffer allocation, and was
// slower per envelope.
//
// No content checksum: it is optional in a zstd frame, libzstd (and so
// Relay) leaves it off by default, and TCP/TLS already protect the bytes;
// hashing every envelope (xxhash64) was CPU spent on each send for
// nothing the upstream checks.
var zstdOptions = []zstd.EOption{
	zstd.WithEncoderLevel(zstd.SpeedFastest),
	zstd.WithEncoderConcurrency(0),
	zstd.WithEncoderCRC(false),
	zstd.WithZeroFrames(true),
}

type zstdCompressor struct{ enc *zstd.Encoder }

func (z zstdCompressor) compress(src []byte) ([]byte, error) {
	return z.enc.EncodeAll(src, make([]byte, 0, zstdCap(len(src)))), nil
}

// zstdCap is the capacity to give the compressed body of n bytes so that
// EncodeAll rarely has to grow it (a second allocation and a copy): on the
// recorded SDK envelopes bodies under 1 KB compress to 50–107 % of their
// size (a frame costs ~10 bytes: the smallest grow), 1–8 KB ones to 25–90 %
// (events about 45 %), larger ones to a fifth or less.
func zstdCap(n int) int {
	switch {
	case n < 1<<10:
		return n + 32
	case n < 8<<10:
		return n*3/4 + 64
	default:
		return n/4 + 64
	}
}

func (z zstdCompressor) close() { _ = z.enc.Close() }

// pooledWriter is the common shape of gzip.Writer, zlib.Writer and
// brotli.Writer.
type pooledWriter interface {
	io.WriteCloser
	Reset(w io.Writer)
}

type pooled struct {
	pool sync.Pool
}

func newPooled(mk func() (pooledWriter, error)) (*pooled, error) {
	// Build one writer now so that a bad level fails New, not a Send.
	w, err := mk()
	if err != nil {
		return nil, fmt.Errorf("upstream: compressor: %w", err)
	}
	p := &pooled{}
	p.pool.New = func() any {
		w, _ := mk() // the same arguments succeeded above
		return w
	}
	p.pool.Put(w)
	return p, nil
}

func (p *pooled) compress(src []byte) ([]byte, error) {
	w := p.pool.Get().(pooledWriter)
	var buf bytes.Buffer
	buf.Grow(len(src)/3 + 64)
	w.Reset(&buf)
	_, err := w.Write(src)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	w.Reset(io.Discard) // drop the reference to buf before pooling
	p.pool.Put(w)
	if err != nil {
		return nil, fmt.Errorf("upstream: compress: %w", err)
	}
	return buf.Bytes(), nil
}

func (p *pooled) close() {}
