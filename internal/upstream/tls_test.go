package upstream

import (
	"context"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// RootCAs (http.ca_file) lets the client trust an upstream whose certificate
// a private CA signed; without it the same upstream fails verification.
func TestClientRootCAs(t *testing.T) {
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"is_healthy":true}`))
	}))
	// The client that does not trust it makes the server log a handshake error.
	up.Config.ErrorLog = log.New(io.Discard, "", 0)
	up.StartTLS()
	t.Cleanup(up.Close)
	pool := x509.NewCertPool()
	pool.AddCert(up.Certificate())
	for _, tc := range []struct {
		name  string
		roots *x509.CertPool
		ok    bool
	}{
		{"system roots only", nil, false},
		{"with the CA", pool, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{URL: up.URL + "/", Timeout: 5 * time.Second, ConnectionTimeout: 5 * time.Second, RootCAs: tc.roots})
			if err != nil {
				t.Fatal(err)
			}
			err = c.Probe(context.Background())
			if (err == nil) != tc.ok {
				t.Errorf("Probe = %v, want success %v", err, tc.ok)
			}
		})
	}
}

// An upstream that offers HTTP/2 over TLS gets the envelopes over HTTP/2
// (one connection multiplexes every concurrent send), and one that offers
// only HTTP/1.1 over TLS gets them over HTTP/1.1; either way the encoded
// body arrives whole.
func TestSendHTTP2OverTLS(t *testing.T) {
	for _, tc := range []struct {
		name      string
		h2        bool
		wantMajor int
	}{
		{"upstream offers h2", true, 2},
		{"upstream offers http/1.1 only", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan int, 16)
			var bodies atomic.Int64
			up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				dec, err := zstd.NewReader(r.Body)
				if err == nil {
					var b []byte
					if b, err = io.ReadAll(dec); err == nil && string(b) == testEnvelope {
						bodies.Add(1)
					}
					dec.Close()
				}
				select {
				case got <- r.ProtoMajor:
				default:
				}
				_, _ = io.WriteString(w, `{}`)
			}))
			up.EnableHTTP2 = tc.h2
			up.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes cut by Close
			up.StartTLS()
			t.Cleanup(up.Close)
			pool := x509.NewCertPool()
			pool.AddCert(up.Certificate())
			c := newClient(t, Config{URL: up.URL, Encoding: EncodingZstd, RootCAs: pool})
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if res := c.Send(context.Background(), baseRequest()); res.Class != Accepted {
						t.Errorf("Send = %+v", res)
					}
				}()
			}
			wg.Wait()
			if n := bodies.Load(); n != 8 {
				t.Errorf("%d of 8 bodies arrived whole", n)
			}
			if major := <-got; major != tc.wantMajor {
				t.Errorf("request over HTTP/%d, want HTTP/%d", major, tc.wantMajor)
			}
		})
	}
}
