package upstream

import (
	"context"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
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
