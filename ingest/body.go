package ingest

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// Request bodies (protocol doc §1.0): Content-Encoding gzip, deflate (zlib, or
// raw deflate as some clients send), br and zstd are decoded; an empty value
// or "UTF-8" (sentry-ruby 5.x, old Android) means none. The size limit applies
// to the DECODED bytes, and the decoded body is never held beyond limit+1
// bytes: a gzip bomb costs one buffer of at most the limit, then 413.

type contentEncoding uint8

const (
	encIdentity contentEncoding = iota
	encGzip
	encDeflate
	encBrotli
	encZstd
)

var encodingNames = [...]string{"identity", "gzip", "deflate", "br", "zstd"}

// parseContentEncoding reads the request's Content-Encoding. ok is false for
// an encoding we cannot decode (answered 415, as tower-http does in Relay). A
// list of encodings ("gzip, br") is not supported: no SDK sends one.
func parseContentEncoding(h http.Header) (enc contentEncoding, raw string, ok bool) {
	v := h["Content-Encoding"]
	if len(v) == 0 {
		return encIdentity, "", true
	}
	raw = strings.TrimSpace(v[0])
	switch {
	case raw == "", asciiEqualFold(raw, "utf-8"), asciiEqualFold(raw, "identity"):
		return encIdentity, raw, true
	case asciiEqualFold(raw, "gzip"), asciiEqualFold(raw, "x-gzip"):
		return encGzip, raw, true
	case asciiEqualFold(raw, "deflate"):
		return encDeflate, raw, true
	case asciiEqualFold(raw, "br"):
		return encBrotli, raw, true
	case asciiEqualFold(raw, "zstd"):
		return encZstd, raw, true
	}
	return encIdentity, raw, false
}

func errUnsupportedEncoding(raw string) *apiError {
	return &apiError{status: http.StatusUnsupportedMediaType, detail: "unsupported content encoding",
		causes:  []string{"Content-Encoding " + strconv.Quote(raw) + " is not one of gzip, deflate, br, zstd"},
		dropped: droppedEncoding}
}

func errBodyTooLarge(limit int64) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, detail: "failed to read request body",
		causes:  []string{"request body exceeds the size limit of " + strconv.FormatInt(limit, 10) + " bytes"},
		dropped: droppedBodyTooLarge}
}

func errMessageTooLarge(size, max int64) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, detail: "failed to read request body",
		causes: []string{"envelope and request metadata (" + strconv.FormatInt(size, 10) +
			" bytes) exceed the stream's message size limit of " + strconv.FormatInt(max, 10) + " bytes"},
		dropped: droppedBodyTooLarge}
}

func errCompression(enc contentEncoding, err error) *apiError {
	return &apiError{status: http.StatusBadRequest, detail: "invalid compression",
		causes: []string{encodingNames[enc] + ": " + err.Error()}, dropped: droppedCompression}
}

func errBodyRead(err error) *apiError {
	return &apiError{status: http.StatusBadRequest, detail: "failed to read request body",
		causes: []string{err.Error()}, dropped: droppedBodyRead}
}

// Buffer pooling. Bodies of typical events (a few KiB) reuse pooled buffers;
// buffers that grew past maxPooledBuffer are left to the GC so one big
// attachment does not pin memory forever.
const (
	minBodyBuffer   = 8 << 10
	maxPooledBuffer = 1 << 20
	// rawSlack is how much the still-compressed input may exceed the decoded
	// limit: compression can expand incompressible data a little, but input
	// much larger than the decoded limit is refused without decoding it all.
	rawSlack = 64 << 10
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, minBodyBuffer); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuffer {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// readLimited reads r to EOF into (*buf)[:0], growing it as needed but never
// beyond limit+1 bytes. It returns errTooLarge as soon as more than limit bytes
// arrive. sizeHint (Content-Length, or -1) sizes the buffer up front. Every
// buffer it allocates is charged to ch first (see admission.go); a failed
// charge is returned as a *budgetError.
func readLimited(buf *[]byte, r io.Reader, limit, sizeHint int64, ch charger) ([]byte, error) {
	b := (*buf)[:0]
	if sizeHint > 0 && int64(cap(b)) < sizeHint+1 && sizeHint <= limit {
		if err := ch.charge(sizeHint + 1); err != nil {
			return nil, err
		}
		b = make([]byte, 0, sizeHint+1) // +1: see EOF without another grow
	} else if err := ch.charge(int64(cap(b))); err != nil { // the pooled buffer
		return nil, err
	}
	for {
		if len(b) == cap(b) {
			if int64(len(b)) > limit {
				*buf = b[:0]
				return nil, errTooLarge
			}
			newCap := 2 * cap(b)
			if newCap < minBodyBuffer {
				newCap = minBodyBuffer
			}
			if int64(newCap) > limit+1 {
				newCap = int(limit + 1)
			}
			// The old buffer is garbage once copied: the charge follows the
			// live buffer (garbage is the collector's to bound).
			if err := ch.charge(int64(newCap - cap(b))); err != nil {
				*buf = b[:0]
				return nil, err
			}
			nb := make([]byte, len(b), newCap)
			copy(nb, b)
			b = nb
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > limit {
			*buf = b[:0]
			return nil, errTooLarge
		}
		if err == io.EOF {
			*buf = b
			return b, nil
		}
		if err != nil {
			*buf = b[:0]
			return nil, err
		}
	}
}

var errTooLarge = errors.New("body exceeds limit")

// sourceReader wraps the raw request body: it bounds how many compressed
// bytes are read and remembers the body's own I/O error, so a decode failure
// caused by the network (client went away) is not blamed on the compression.
type sourceReader struct {
	r   io.Reader
	n   int64
	max int64
	err error
}

var errRawTooLarge = errors.New("compressed body exceeds limit")

func (s *sourceReader) Read(p []byte) (int, error) {
	if s.n > s.max {
		s.err = errRawTooLarge
		return 0, s.err
	}
	if rem := s.max - s.n + 1; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	if err != nil && err != io.EOF {
		s.err = err
	}
	if s.n > s.max {
		s.err = errRawTooLarge
		return n, s.err
	}
	return n, err
}

// Decoder pools: decoders carry large tables and windows; building one per
// request would dominate the cost of a compressed request.
var (
	bufioPool   = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}
	gzipPool    sync.Pool // *gzip.Reader
	zlibPool    sync.Pool // io.ReadCloser implementing zlib.Resetter
	flatePool   sync.Pool // io.ReadCloser implementing flate.Resetter
	brotliPool  sync.Pool // *brotli.Reader
	zstdPool    sync.Pool // *zstd.Decoder
	zstdOptions = []zstd.DOption{
		zstd.WithDecoderConcurrency(1), // decode synchronously: no goroutines per decoder
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(32 << 20), // a hostile frame cannot demand a huge window
	}
)

// readBody reads the request body, decoded, into the request's buffer, and
// applies limit to the decoded size. The returned slice aliases *buf.
func readBody(r *http.Request, enc contentEncoding, limit int64, buf *[]byte, ch charger) ([]byte, *apiError) {
	if enc == encIdentity {
		if r.ContentLength > limit {
			return nil, errBodyTooLarge(limit)
		}
		b, err := readLimited(buf, r.Body, limit, r.ContentLength, ch)
		if err == nil {
			// Read to its end. Closed now, it spares net/http, once the
			// handler returned, a copy of the rest into io.Discard (and the
			// reader it allocates for it) to learn that nothing is left.
			_ = r.Body.Close() // at EOF: nothing to fail
			return b, nil
		}
		if be, ok := budgetOf(err); ok {
			return nil, errAdmission(be)
		}
		if err == errTooLarge {
			return nil, errBodyTooLarge(limit)
		}
		return nil, errBodyRead(err)
	}

	src := &sourceReader{r: r.Body, max: limit + rawSlack}
	br := bufioPool.Get().(*bufio.Reader)
	br.Reset(src)
	defer func() {
		br.Reset(nil)
		bufioPool.Put(br)
	}()
	if _, err := br.Peek(1); err != nil {
		if err == io.EOF {
			return (*buf)[:0], nil // no bytes at all: the caller answers "empty request body"
		}
		return nil, errBodyRead(err)
	}

	dec, release, err := newDecoder(enc, br)
	if err == nil {
		var b []byte
		b, err = readLimited(buf, dec, limit, -1, ch)
		release()
		if err == nil {
			return b, nil
		}
	}
	if be, ok := budgetOf(err); ok {
		return nil, errAdmission(be)
	}
	switch {
	case err == errTooLarge || src.err == errRawTooLarge:
		return nil, errBodyTooLarge(limit)
	case src.err != nil:
		return nil, errBodyRead(src.err)
	default:
		return nil, errCompression(enc, err)
	}
}

// budgetOf returns the admission refusal err wraps, if any. Its own
// variable, not one of readBody's: errors.As takes the address, which puts
// the variable on the heap where it is declared — on every request when it
// was declared at the top of readBody.
func budgetOf(err error) (*budgetError, bool) {
	var be *budgetError
	ok := errors.As(err, &be)
	return be, ok
}

// newDecoder returns a pooled decoder reading br, and the function that puts
// it back. Header errors (gzip/zlib) are returned as decode errors.
func newDecoder(enc contentEncoding, br *bufio.Reader) (io.Reader, func(), error) {
	switch enc {
	case encGzip:
		zr, _ := gzipPool.Get().(*gzip.Reader)
		if zr == nil {
			zr = new(gzip.Reader)
		}
		if err := zr.Reset(br); err != nil {
			gzipPool.Put(zr)
			return nil, nil, err
		}
		return zr, func() { gzipPool.Put(zr) }, nil

	case encDeflate:
		// "deflate" is zlib by the RFC, but some clients send raw deflate:
		// a valid zlib header decides (RFC 1950: CM=8, CINFO≤7, FCHECK).
		if hdr, err := br.Peek(2); err == nil && hdr[0]&0x0f == 8 && hdr[0]>>4 <= 7 &&
			(uint16(hdr[0])<<8|uint16(hdr[1]))%31 == 0 {
			if zr, _ := zlibPool.Get().(io.ReadCloser); zr != nil {
				if err := zr.(zlib.Resetter).Reset(br, nil); err != nil {
					zlibPool.Put(zr)
					return nil, nil, err
				}
				return zr, func() { zlibPool.Put(zr) }, nil
			}
			zr, err := zlib.NewReader(br)
			if err != nil {
				return nil, nil, err
			}
			return zr, func() { zlibPool.Put(zr) }, nil
		}
		fr, _ := flatePool.Get().(io.ReadCloser)
		if fr == nil {
			fr = flate.NewReader(br)
		} else if err := fr.(flate.Resetter).Reset(br, nil); err != nil {
			flatePool.Put(fr)
			return nil, nil, err
		}
		return fr, func() { flatePool.Put(fr) }, nil

	case encBrotli:
		bz, _ := brotliPool.Get().(*brotli.Reader)
		if bz == nil {
			bz = brotli.NewReader(br)
		} else if err := bz.Reset(br); err != nil {
			brotliPool.Put(bz)
			return nil, nil, err
		}
		return bz, func() { brotliPool.Put(bz) }, nil

	case encZstd:
		zd, _ := zstdPool.Get().(*zstd.Decoder)
		if zd == nil {
			var err error
			if zd, err = zstd.NewReader(nil, zstdOptions...); err != nil {
				return nil, nil, err
			}
		}
		if err := zd.Reset(br); err != nil {
			zstdPool.Put(zd)
			return nil, nil, err
		}
		return zd, func() {
			_ = zd.Reset(nil) // drop the reference to this request's body
			zstdPool.Put(zd)
		}, nil
	}
	return nil, nil, errors.New("unsupported encoding")
}
