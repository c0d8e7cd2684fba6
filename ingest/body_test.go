package ingest

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
)

// TestGzipBombMemory: decoding a 1 GiB gzip bomb against a 4 MiB limit stops
// at the limit: 413, and the allocations stay within a few times the limit
// (the growing buffer), nowhere near the bomb's size.
func TestGzipBombMemory(t *testing.T) {
	const limit = 4 << 20
	bomb := gzipBomb()
	r, err := http.NewRequest("POST", "/", bytes.NewReader(bomb))
	if err != nil {
		t.Fatal(err)
	}
	buf := getBuf()
	defer putBuf(buf)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, e := readBody(r, encGzip, limit, buf, noCharge{})
	runtime.ReadMemStats(&after)
	if e == nil || e.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("bomb: %+v, want 413", e)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 3*limit+(1<<20) {
		t.Fatalf("bomb allocated %d bytes against a %d byte limit", alloc, limit)
	}
	// Only a little of the compressed input was read.
	rest, _ := io.Copy(io.Discard, r.Body)
	if consumed := int64(len(bomb)) - rest; consumed > 64<<10 {
		t.Fatalf("read %d compressed bytes to find the bomb", consumed)
	}
}

// TestReadLimited covers the exact edges of the limit.
func TestReadLimited(t *testing.T) {
	for _, tc := range []struct {
		size, limit, hint int64
		ok                bool
	}{
		{0, 10, -1, true}, {10, 10, -1, true}, {11, 10, -1, false},
		{10, 10, 10, true}, {100000, 100000, -1, true}, {100001, 100000, -1, false},
		{100000, 100000, 100000, true},
	} {
		in := bytes.Repeat([]byte{'a'}, int(tc.size))
		buf := getBuf()
		got, err := readLimited(buf, bytes.NewReader(in), tc.limit, tc.hint, noCharge{})
		if tc.ok != (err == nil) {
			t.Fatalf("%+v: err %v", tc, err)
		}
		if tc.ok && !bytes.Equal(got, in) {
			t.Fatalf("%+v: wrong bytes", tc)
		}
		if !tc.ok && err != errTooLarge {
			t.Fatalf("%+v: err %v", tc, err)
		}
		putBuf(buf)
	}
}

// TestDecoderReuse: pooled decoders give right results when reused, including
// after a failure.
func TestDecoderReuse(t *testing.T) {
	header := map[string]string{"gzip": "gzip", "deflate": "deflate", "raw-deflate": "deflate", "br": "br", "zstd": "zstd"}
	for kind, value := range header {
		enc, _, ok := parseContentEncoding(http.Header{"Content-Encoding": {value}})
		if !ok {
			t.Fatalf("%s not supported", value)
		}
		for i := range 3 {
			payload := bytes.Repeat([]byte{byte('a' + i)}, 1000*(i+1))
			body := compress(t, kind, payload)
			if i == 1 {
				body = body[:len(body)/2] // a failure in the middle
			}
			r, _ := http.NewRequest("POST", "/", bytes.NewReader(body))
			buf := getBuf()
			got, e := readBody(r, enc, 1<<20, buf, noCharge{})
			switch {
			case i == 1 && e == nil:
				t.Fatalf("%s: truncated stream accepted", kind)
			case i != 1 && (e != nil || !bytes.Equal(got, payload)):
				t.Fatalf("%s round %d: %+v", kind, i, e)
			}
			putBuf(buf)
		}
	}
}

// failingReader returns some bytes, then a network-style error.
type failingReader struct{ sent bool }

func (f *failingReader) Read(p []byte) (int, error) {
	if !f.sent {
		f.sent = true
		return copy(p, "{}\n"), nil
	}
	return 0, errors.New("connection reset by peer")
}

// TestBodyReadError: a body that fails mid-way (client gone) is 400 "failed to
// read request body", not blamed on the compression.
func TestBodyReadError(t *testing.T) {
	for _, enc := range []contentEncoding{encIdentity, encGzip} {
		r, _ := http.NewRequest("POST", "/", nil)
		r.Body = io.NopCloser(&failingReader{})
		r.ContentLength = -1
		buf := getBuf()
		_, e := readBody(r, enc, 1<<20, buf, noCharge{})
		putBuf(buf)
		if e == nil || e.status != 400 || e.detail != "failed to read request body" || !strings.Contains(e.causes[0], "reset") {
			t.Fatalf("%s: %+v", encodingNames[enc], e)
		}
	}
}

// TestCompressedInputBound: compressed input far larger than the decoded
// limit is refused (413) even when it decodes to almost nothing — here
// thousands of empty gzip members — so the raw read is bounded too.
func TestCompressedInputBound(t *testing.T) {
	const limit = 64 << 10
	empty := gzipBytes(t, nil)
	body := bytes.Repeat(empty, (limit+rawSlack)/len(empty)+100)
	r, _ := http.NewRequest("POST", "/", bytes.NewReader(body))
	buf := getBuf()
	_, e := readBody(r, encGzip, limit, buf, noCharge{})
	putBuf(buf)
	if e == nil || e.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("%+v, want 413", e)
	}
	// Just under the bound it is accepted (and empty).
	body = bytes.Repeat(empty, limit/len(empty))
	r, _ = http.NewRequest("POST", "/", bytes.NewReader(body))
	buf = getBuf()
	got, e := readBody(r, encGzip, limit, buf, noCharge{})
	putBuf(buf)
	if e != nil || len(got) != 0 {
		t.Fatalf("%+v %d", e, len(got))
	}
}

// noCharge is a charger with no budget, for tests of reading alone.
type noCharge struct{}

func (noCharge) charge(int64) error { return nil }
