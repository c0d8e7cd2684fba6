package ingest

import (
	"bytes"
	"io"
	"net/http"
	"runtime"
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
	_, e := readBody(r, encGzip, limit, buf)
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
		got, err := readLimited(buf, bytes.NewReader(in), tc.limit, tc.hint)
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
			got, e := readBody(r, enc, 1<<20, buf)
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
