package app

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/stream"
)

// streamConfig is the stream layer's configuration from the jetstream
// section, with the TLS files read (an error names the key).
func streamConfig(cfg *config.Config) (stream.Config, error) {
	j := cfg.JetStream
	sc := stream.Config{
		URL:             j.URL,
		StoreDir:        j.StoreDir,
		Stream:          j.Stream,
		Replicas:        j.Replicas,
		MaxBytes:        j.MaxBytes.Bytes(),
		Sync:            j.Sync,
		AckWait:         j.AckWait,
		Listen:          j.Listen,
		CredentialsFile: j.CredentialsFile,
		User:            j.User,
		Password:        j.Password,
		Token:           j.Token,
		NKeySeedFile:    j.NKeySeedFile,
	}
	t, err := natsTLS(j)
	if err != nil {
		return sc, err
	}
	sc.TLS = t
	return sc, nil
}

// natsTLS builds the client TLS configuration for the NATS connection from
// jetstream.tls_ca_file (trusted besides the system's roots) and
// jetstream.tls_cert_file/tls_key_file (a client certificate for servers that
// verify clients); nil when none is set.
func natsTLS(j config.JetStream) (*tls.Config, error) {
	if j.TLSCAFile == "" && j.TLSCertFile == "" {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if j.TLSCAFile != "" {
		pem, err := os.ReadFile(j.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("jetstream.tls_ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool() // no system roots on this machine: the file alone
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("jetstream.tls_ca_file %s: no PEM certificate in it", j.TLSCAFile)
		}
		t.RootCAs = pool
	}
	if j.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(j.TLSCertFile, j.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("jetstream.tls_cert_file %s, jetstream.tls_key_file %s: %w", j.TLSCertFile, j.TLSKeyFile, err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}
