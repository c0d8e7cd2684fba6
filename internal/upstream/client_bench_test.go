package upstream

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/relayhq/relay/internal/testfixture"
)

// benchEnvelopes are real SDK envelopes: a typical error event and a large
// transaction (browser page load, ~20 KB of span JSON).
var benchEnvelopes = []string{"go-event-exception.envelope", "browser-span-stream-pageload.envelope"}

// BenchmarkSend measures one forward over loopback per encoding: the CPU
// cost of compressing plus the HTTP round trip. wire_ratio is bytes on the
// wire over envelope bytes. Run: go test -bench Send -run ^$ ./internal/upstream
func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	for _, name := range benchEnvelopes {
		env := testfixture.SDKFile(b, name)
		for _, enc := range []string{EncodingIdentity, EncodingZstd, EncodingGzip, EncodingDeflate, EncodingBrotli} {
			b.Run(name+"/"+enc, func(b *testing.B) {
				c := newClient(b, Config{URL: srv.URL, Encoding: enc})
				r := baseRequest()
				r.Envelope = env
				var wire int
				if c.compress != nil {
					out, err := c.compress.compress(env)
					if err != nil {
						b.Fatal(err)
					}
					wire = len(out)
				} else {
					wire = len(env)
				}
				b.SetBytes(int64(len(env)))
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if res := c.Send(context.Background(), r); res.Class != Accepted {
							b.Errorf("Send = %+v", res)
							return
						}
					}
				})
				b.ReportMetric(float64(wire)/float64(len(env)), "wire_ratio")
			})
		}
	}
}

// BenchmarkCompress isolates the encoding cost from the round trip.
func BenchmarkCompress(b *testing.B) {
	for _, name := range benchEnvelopes {
		env := testfixture.SDKFile(b, name)
		for _, enc := range []string{EncodingZstd, EncodingGzip, EncodingDeflate, EncodingBrotli} {
			b.Run(name+"/"+enc, func(b *testing.B) {
				comp, err := newCompressor(enc)
				if err != nil {
					b.Fatal(err)
				}
				defer comp.close()
				b.SetBytes(int64(len(env)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := comp.compress(env); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
