package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/relayhq/relay/internal/fakesentry"
)

// testPKI is a CA and a server certificate for 127.0.0.1 it signed.
type testPKI struct {
	ca      *x509.Certificate
	leaf    *x509.Certificate
	leafKey *ecdsa.PrivateKey
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "relay test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	return testPKI{ca: ca, leaf: leaf, leafKey: leafKey}
}

func (p testPKI) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return pool
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writePEM writes the leaf (chain: leaf, CA) and its key as PEM files.
func (p testPKI) writePEM(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(p.leafKey)
	if err != nil {
		t.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.leaf.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.ca.Raw})...)
	return writeFile(t, filepath.Join(dir, "cert.pem"), chain),
		writeFile(t, filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

// writePKCS12 writes the leaf, its key and the CA as a PKCS #12 archive
// (AES-256 and PBKDF2, as OpenSSL 3 writes by default).
func (p testPKI) writePKCS12(t *testing.T, dir, password string) string {
	t.Helper()
	data, err := pkcs12.Modern.Encode(p.leafKey, p.leaf, []*x509.Certificate{p.ca}, password)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, filepath.Join(dir, "relay.p12"), data)
}

// The relay serves HTTPS beside HTTP, with an identity from PEM files or a
// PKCS #12 archive, over HTTP/2, TLS 1.2 at least; an envelope sent over
// HTTPS reaches the upstream.
func TestRunServesHTTPS(t *testing.T) {
	pki := newTestPKI(t)
	for _, tc := range []struct {
		name     string
		identity func(dir string) string
	}{
		{"pem", func(dir string) string {
			c, k := pki.writePEM(t, dir)
			return fmt.Sprintf("  tls_cert_path: %s\n  tls_key_path: %s\n", filepath.Base(c), filepath.Base(k))
		}},
		{"pkcs12", func(dir string) string {
			pki.writePKCS12(t, dir, "s3cret pass")
			return "  tls_identity_path: relay.p12\n  tls_identity_password: s3cret pass\n"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := fakesentry.New(fakesentry.Options{})
			t.Cleanup(up.Close)
			dir := t.TempDir()
			tlsPort := freePort(t)
			cfg := proxyConfig(t, dir, up.URL(), fmt.Sprintf("  tls_port: %d\n%s", tlsPort, tc.identity(dir)))
			base := runRelay(t, cfg) // plain HTTP serves
			httpsBase := fmt.Sprintf("https://127.0.0.1:%d", tlsPort)

			client := &http.Client{Transport: &http.Transport{
				TLSClientConfig:   &tls.Config{RootCAs: pki.pool()},
				ForceAttemptHTTP2: true,
			}}
			t.Cleanup(client.CloseIdleConnections)
			res, err := client.Get(httpsBase + "/api/relay/healthcheck/live/")
			if err != nil {
				t.Fatalf("https: %v", err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 || res.TLS.Version < tls.VersionTLS12 {
				t.Errorf("https live: %d over %s TLS %x, want 200 over HTTP/2, TLS ≥ 1.2", res.StatusCode, res.Proto, res.TLS.Version)
			}

			body := `{"event_id":"` + managedEventID + `"}` + "\n" + `{"type":"event","length":2}` + "\n{}\n"
			req, _ := http.NewRequest(http.MethodPost, httpsBase+"/api/42/envelope/", strings.NewReader(body))
			req.Header.Set("X-Sentry-Auth", "Sentry sentry_key=0123456789abcdef0123456789abcdef, sentry_version=7")
			res, err = client.Do(req)
			if err != nil {
				t.Fatalf("https envelope: %v", err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("https envelope: %d, want 200", res.StatusCode)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := up.WaitFor(ctx, 1); err != nil {
				t.Fatalf("the envelope sent over HTTPS did not reach the upstream: %v", err)
			}

			// TLS 1.1 is refused.
			old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool(), MaxVersion: tls.VersionTLS11}}}
			if res, err := old.Get(httpsBase + "/api/relay/healthcheck/live/"); err == nil {
				res.Body.Close()
				t.Error("a TLS 1.1 client was served")
			}
			_ = base
		})
	}
}

// A TLS identity that cannot be used stops Run before anything starts, with
// an error naming the file.
func TestRunRefusesBadTLSIdentity(t *testing.T) {
	pki := newTestPKI(t)
	for _, tc := range []struct {
		name     string
		identity func(dir string) string
		want     []string
	}{
		{"wrong password", func(dir string) string {
			pki.writePKCS12(t, dir, "right")
			return "  tls_identity_path: relay.p12\n  tls_identity_password: wrong\n"
		}, []string{"relay.p12", "wrong relay.tls_identity_password"}},
		{"missing archive", func(dir string) string {
			return "  tls_identity_path: nothere.p12\n  tls_identity_password: x\n"
		}, []string{"nothere.p12", "no such file"}},
		{"not an archive", func(dir string) string {
			writeFile(t, filepath.Join(dir, "junk.p12"), []byte("not pkcs12"))
			return "  tls_identity_path: junk.p12\n"
		}, []string{"junk.p12", "PKCS #12"}},
		{"pem key missing", func(dir string) string {
			c, _ := pki.writePEM(t, dir)
			return fmt.Sprintf("  tls_cert_path: %s\n  tls_key_path: gone.pem\n", filepath.Base(c))
		}, []string{"gone.pem"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := proxyConfig(t, dir, "http://127.0.0.1:9/", fmt.Sprintf("  tls_port: %d\n%s", freePort(t), tc.identity(dir)))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := Run(ctx, cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				t.Fatal("Run started with an unusable TLS identity")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// http.ca_file makes the relay trust an upstream certificate from a private
// CA; without it that upstream fails verification (502 on the forward path).
func TestUpstreamCAFile(t *testing.T) {
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	// The client that does not trust it makes the server log a handshake error.
	up.Config.ErrorLog = log.New(io.Discard, "", 0)
	up.StartTLS()
	t.Cleanup(up.Close)
	caDir := t.TempDir()
	caFile := writeFile(t, filepath.Join(caDir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw}))
	for _, tc := range []struct {
		name   string
		extra  string
		status int
	}{
		{"without ca_file", "", http.StatusBadGateway},
		{"with ca_file", "http:\n  ca_file: " + caFile + "\n", http.StatusTeapot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := runProxyRelay(t, up.URL+"/", tc.extra)
			res, err := http.Get(base + "/api/0/organizations/")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Errorf("status %d, want %d", res.StatusCode, tc.status)
			}
		})
	}
	dir := t.TempDir()
	cfg := proxyConfig(t, dir, up.URL+"/", "http:\n  ca_file: missing.pem\n")
	err := Run(context.Background(), cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("Run with a missing ca_file: %v, want an error naming it", err)
	}
}
