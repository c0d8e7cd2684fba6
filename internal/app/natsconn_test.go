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
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/stream"
)

// runNATS starts an in-process nats-server with JetStream on a free
// 127.0.0.1 port, configured by opts, and returns its address.
func runNATS(t *testing.T, opts *server.Options) string {
	t.Helper()
	opts.ServerName = "ext"
	opts.JetStream = true
	opts.StoreDir = t.TempDir()
	opts.Host = "127.0.0.1"
	opts.Port = server.RANDOM_PORT
	opts.NoSigs = true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s.Addr().String()
}

// natsPKI is a CA, a server certificate for 127.0.0.1 and a client
// certificate it signed, as PEM files in dir.
type natsPKI struct {
	ca                  *x509.CertPool
	server              tls.Certificate
	caFile, cert, key   string
	otherCert, otherKey string // a client certificate from another CA
}

func newNATSPKI(t *testing.T, dir string) natsPKI {
	t.Helper()
	mk := func(cn string, isCA bool, ext x509.ExtKeyUsage, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: isCA,
		}
		if isCA {
			tmpl.KeyUsage |= x509.KeyUsageCertSign
		} else {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{ext}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, key
	}
	write := func(name string, c *x509.Certificate, k *ecdsa.PrivateKey) (string, string) {
		cp := filepath.Join(dir, name+".pem")
		if err := os.WriteFile(cp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		if k == nil {
			return cp, ""
		}
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		kp := filepath.Join(dir, name+"-key.pem")
		if err := os.WriteFile(kp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return cp, kp
	}
	ca, caKey := mk("nats test CA", true, 0, nil, nil)
	srv, srvKey := mk("127.0.0.1", false, x509.ExtKeyUsageServerAuth, ca, caKey)
	cli, cliKey := mk("relay", false, x509.ExtKeyUsageClientAuth, ca, caKey)
	other, otherKey := mk("other CA", true, 0, nil, nil)
	stranger, strangerKey := mk("stranger", false, x509.ExtKeyUsageClientAuth, other, otherKey)

	var p natsPKI
	p.ca = x509.NewCertPool()
	p.ca.AddCert(ca)
	p.caFile, _ = write("ca", ca, nil)
	sc, sk := write("server", srv, srvKey)
	var err error
	if p.server, err = tls.LoadX509KeyPair(sc, sk); err != nil {
		t.Fatal(err)
	}
	p.cert, p.key = write("client", cli, cliKey)
	p.otherCert, p.otherKey = write("stranger", stranger, strangerKey)
	return p
}

// operatorMode sets opts up for decentralised JWT authentication (what a
// .creds file is for) and returns the creds file of a user of a
// JetStream-enabled account.
func operatorMode(t *testing.T, opts *server.Options, dir string) string {
	t.Helper()
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	if _, err := oc.Encode(okp); err != nil {
		t.Fatal(err)
	}
	sysKP, _ := nkeys.CreateAccount()
	sysPub, _ := sysKP.PublicKey()
	sysJWT, err := jwt.NewAccountClaims(sysPub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ac := jwt.NewAccountClaims(apub)
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	ajwt, err := ac.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	res := &server.MemAccResolver{}
	if err := res.Store(apub, ajwt); err != nil {
		t.Fatal(err)
	}
	if err := res.Store(sysPub, sysJWT); err != nil {
		t.Fatal(err)
	}
	opts.TrustedOperators = []*jwt.OperatorClaims{oc}
	opts.AccountResolver = res
	opts.SystemAccount = sysPub

	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	ujwt, err := jwt.NewUserClaims(upub).Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, seed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "relay.creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The relay connects to an external NATS server with each way of
// authenticating and with mutual TLS, creates its stream there, and stores
// a message; with a wrong secret it fails to start, and the error carries
// no secret.
func TestStreamConnectsWithEachNATSAuth(t *testing.T) {
	for _, tt := range []struct {
		name string
		// setup configures the server and returns the jetstream keys that
		// authenticate and the ones that do not.
		setup func(t *testing.T, o *server.Options, dir string) (good, bad string)
		url   string // "nats" or "tls"
	}{
		{"user and password", func(t *testing.T, o *server.Options, dir string) (string, string) {
			o.Username, o.Password = "relay", "pw-s3cret"
			return "  user: relay\n  password: pw-s3cret\n", "  user: relay\n  password: wrong-s3cret\n"
		}, "nats"},
		{"token", func(t *testing.T, o *server.Options, dir string) (string, string) {
			o.Authorization = "tok-s3cret"
			return "  token: tok-s3cret\n", "  token: wrong-s3cret\n"
		}, "nats"},
		{"nkey seed file", func(t *testing.T, o *server.Options, dir string) (string, string) {
			kp, _ := nkeys.CreateUser()
			pub, _ := kp.PublicKey()
			seed, _ := kp.Seed()
			o.Nkeys = []*server.NkeyUser{{Nkey: pub}}
			if err := os.WriteFile(filepath.Join(dir, "relay.nk"), seed, 0o600); err != nil {
				t.Fatal(err)
			}
			other, _ := nkeys.CreateUser()
			oseed, _ := other.Seed()
			if err := os.WriteFile(filepath.Join(dir, "other.nk"), oseed, 0o600); err != nil {
				t.Fatal(err)
			}
			return "  nkey_seed_file: relay.nk\n", "  nkey_seed_file: other.nk\n"
		}, "nats"},
		{"credentials file", func(t *testing.T, o *server.Options, dir string) (string, string) {
			operatorMode(t, o, dir)
			var other server.Options
			otherDir := t.TempDir()
			creds := operatorMode(t, &other, otherDir) // a user of an operator the server does not trust
			if err := os.Rename(creds, filepath.Join(dir, "other.creds")); err != nil {
				t.Fatal(err)
			}
			return "  credentials_file: relay.creds\n", "  credentials_file: other.creds\n"
		}, "nats"},
		{"mutual tls", func(t *testing.T, o *server.Options, dir string) (string, string) {
			p := newNATSPKI(t, dir)
			o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.ca, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
			o.TLS, o.TLSVerify = true, true
			return fmt.Sprintf("  tls_ca_file: ca.pem\n  tls_cert_file: %s\n  tls_key_file: %s\n", filepath.Base(p.cert), filepath.Base(p.key)),
				fmt.Sprintf("  tls_ca_file: ca.pem\n  tls_cert_file: %s\n  tls_key_file: %s\n", filepath.Base(p.otherCert), filepath.Base(p.otherKey))
		}, "tls"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := &server.Options{}
			good, bad := tt.setup(t, opts, dir)
			addr := runNATS(t, opts)
			open := func(keys string) (*stream.Conn, string, error) {
				yml := fmt.Sprintf("relay:\n  mode: proxy\njetstream:\n  url: %s://%s\n  ack_wait: 10s\n%s", tt.url, addr, keys)
				if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(yml), 0o600); err != nil {
					t.Fatal(err)
				}
				cfg, err := config.Load(dir)
				if err != nil {
					t.Fatal(err)
				}
				if err := cfg.Validate(); err != nil {
					t.Fatal(err)
				}
				sc, err := streamConfig(cfg)
				if err != nil {
					return nil, "", err
				}
				sc.StartTimeout = 5 * time.Second
				var logs strings.Builder
				st, err := stream.Open(context.Background(), sc, slog.New(slog.NewTextHandler(&logs, nil)))
				return st, logs.String(), err
			}
			st, logs, err := open(good)
			if err != nil {
				t.Fatalf("open with the right credentials: %v\n%s", err, logs)
			}
			m := &stream.Message{ProjectID: 42, PublicKey: "k", Version: 7, ReceivedAt: time.Now(), EventID: "e1", Envelope: []byte("{}\n")}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := st.Publish(ctx, m, "e1"); err != nil {
				t.Fatalf("publish: %v", err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			for _, secret := range []string{"s3cret", "SU"} { // SU…: an NKey user seed
				if strings.Contains(logs, secret) {
					t.Errorf("a secret (%s…) in the logs:\n%s", secret, logs)
				}
			}

			_, logs, err = open(bad)
			if err == nil {
				t.Fatal("opened with wrong credentials")
			}
			if strings.Contains(err.Error()+logs, "s3cret") {
				t.Errorf("a secret in the error or logs: %v\n%s", err, logs)
			}
			t.Logf("refused as it should be: %v", err)
		})
	}
}
