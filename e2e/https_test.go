package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
)

// writeTestIdentity writes a self-signed certificate for 127.0.0.1 and its
// key as PEM files into dir.
func writeTestIdentity(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// The getting-started smoke test over HTTPS: `sentry-cli send-event` with a
// DSN on the relay's TLS port, trusting the relay's certificate; the event
// reaches the upstream.
func TestSentryCLISendEventOverHTTPS(t *testing.T) {
	cli := sentryCLI(t)
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)

	dir := t.TempDir()
	certPath, keyPath := writeTestIdentity(t, dir)
	tlsPort := freePort(t)
	port := writeConfig(t, dir, relayConfig{upstream: up.URL()})
	cfgPath := filepath.Join(dir, "config.yml")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	portLine := fmt.Sprintf("  port: %d\n", port)
	tlsLines := fmt.Sprintf("%s  tls_port: %d\n  tls_cert_path: %s\n  tls_key_path: %s\n", portLine, tlsPort, certPath, keyPath)
	if !strings.Contains(string(b), portLine) {
		t.Fatalf("config has no %q line:\n%s", portLine, b)
	}
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(b), portLine, tlsLines, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := launch(t, dir, port)
	if err := p.waitReady(60 * time.Second); err != nil {
		t.Fatalf("relay did not become ready: %v\n%s", err, p.logs())
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, "send-event", "-m", "A test event over HTTPS")
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + t.TempDir(),
		fmt.Sprintf("SENTRY_DSN=https://0123456789abcdef0123456789abcdef@127.0.0.1:%d/42", tlsPort),
		"SSL_CERT_FILE=" + certPath}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sentry-cli send-event: %v\n%s\nrelay log:\n%s", err, out, p.logs())
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	got, err := up.WaitFor(wctx, 1)
	if err != nil {
		t.Fatalf("the event sent over HTTPS did not reach the upstream: %v", err)
	}
	if len(got[0].Items) == 0 || !strings.Contains(string(got[0].Body), "A test event over HTTPS") {
		t.Errorf("upstream got %q", got[0].Body)
	}
}
