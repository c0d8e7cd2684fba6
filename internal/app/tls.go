package app

// TLS: the HTTPS listener beside the plain one (relay.tls_port) and the
// upstream's trust roots (http.ca_file). Identities and bundles are read
// once, before anything starts, so a wrong password or an unreadable file
// stops `relay run` with an error naming the file instead of a listener
// that fails every handshake.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/relayhq/relay/internal/config"
)

// serverTLS builds the HTTPS listener's configuration; nil when
// relay.tls_port is not set. TLS 1.2 is the floor (Relay's too); HTTP/2 is
// offered by ALPN.
func serverTLS(cfg *config.Config) (*tls.Config, error) {
	r := cfg.Relay
	if r.TLSPort == 0 {
		return nil, nil
	}
	var (
		cert tls.Certificate
		err  error
	)
	if r.TLSIdentityPath != "" {
		cert, err = loadPKCS12(r.TLSIdentityPath, r.TLSIdentityPassword)
	} else {
		cert, err = tls.LoadX509KeyPair(r.TLSCertPath, r.TLSKeyPath)
		if err != nil {
			err = fmt.Errorf("tls: relay.tls_cert_path %s, relay.tls_key_path %s: %w", r.TLSCertPath, r.TLSKeyPath, err)
		}
	}
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// Named here, not left to ServeTLS: the plain listener's Serve and
		// ServeTLS share the http.Server's one-time HTTP/2 setup, and Serve
		// sets HTTP/2 up only when TLSConfig offers "h2". Without it, a
		// Serve that ran first leaves "h2" advertised by ALPN but no HTTP/2
		// server behind it: every HTTP/2 client's connection is dropped.
		NextProtos: []string{"h2", "http/1.1"},
	}, nil
}

// loadPKCS12 reads a PKCS #12 archive (what `openssl pkcs12 -export`
// writes, legacy or AES-based) into a certificate with its chain.
func loadPKCS12(path, password string) (tls.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: relay.tls_identity_path: %w", err)
	}
	key, leaf, chain, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			return tls.Certificate{}, fmt.Errorf("tls: relay.tls_identity_path %s: wrong relay.tls_identity_password: %w", path, err)
		}
		return tls.Certificate{}, fmt.Errorf("tls: relay.tls_identity_path %s: not a usable PKCS #12 identity: %w", path, err)
	}
	cert := tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, nil
}

// listenTLS opens the HTTPS socket. The caller serves it with the plain
// listener's http.Server (ServeTLS), so one Shutdown stops both.
func listenTLS(cfg *config.Config) (net.Listener, error) {
	addr := net.JoinHostPort(cfg.Relay.Host, strconv.Itoa(cfg.Relay.TLSPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ingest: listen on %s (relay.tls_port): %w", addr, err)
	}
	return ln, nil
}

// serveTLS serves srv's handler over TLS on ln until srv shuts down.
func serveTLS(srv *http.Server, ln net.Listener) error {
	if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("ingest: serve tls: %w", err)
	}
	return nil
}

// upstreamRoots is the system's trust roots plus http.ca_file; nil when no
// ca_file is set (the transport then uses the system roots itself).
func upstreamRoots(cfg *config.Config) (*x509.CertPool, error) {
	if cfg.HTTP.CAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(cfg.HTTP.CAFile)
	if err != nil {
		return nil, fmt.Errorf("http.ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool() // no system roots on this machine: the bundle alone
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("http.ca_file %s: no PEM certificate in it", cfg.HTTP.CAFile)
	}
	return pool, nil
}
