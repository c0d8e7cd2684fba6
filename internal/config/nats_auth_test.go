package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateNATSAuth(t *testing.T) {
	const ext = "jetstream:\n  url: nats://n1:4222,nats://n2:4222\n"
	for _, tt := range []struct {
		name, content string
		want          []string // substrings of the problems, in order; nil = valid
	}{
		{"user and password", ext + "  user: relay\n  password: s3cret\n", nil},
		{"token", ext + "  token: t0k\n", nil},
		{"credentials file", ext + "  credentials_file: relay.creds\n", nil},
		{"nkey seed", ext + "  nkey_seed_file: relay.nk\n", nil},
		{"mutual tls", ext + "  tls_ca_file: ca.pem\n  tls_cert_file: c.pem\n  tls_key_file: k.pem\n  token: t\n", nil},
		{"embedded", "jetstream:\n  token: t\n  tls_ca_file: ca.pem\n", []string{
			"jetstream.token: set, but jetstream.url is empty",
			"jetstream.tls_ca_file: set, but jetstream.url is empty",
		}},
		{"two kinds", ext + "  token: t\n  credentials_file: x.creds\n", []string{
			"jetstream.credentials_file: set together with jetstream.token: choose one way",
		}},
		{"user alone", ext + "  user: relay\n", []string{"jetstream.user: jetstream.user and jetstream.password go together"}},
		{"cert alone", ext + "  tls_cert_file: c.pem\n", []string{"jetstream.tls_cert_file: jetstream.tls_cert_file and jetstream.tls_key_file go together"}},
		{"url credentials too", "jetstream:\n  url: nats://u:p@n1:4222\n  token: t\n", []string{"jetstream.url: carries credentials"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.content)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("problem %d:\n got %s\nwant …%s…", i, lines[i], w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "u:p@") {
				t.Errorf("a secret in the error: %v", err)
			}
		})
	}
}

// Relative file paths are in the config directory, like the relay's other files.
func TestNATSAuthPathsRelativeToConfigDir(t *testing.T) {
	c := mustLoad(t, "jetstream:\n  url: nats://n1:4222\n  credentials_file: relay.creds\n  tls_ca_file: /etc/ca.pem\n")
	if want := filepath.Join(c.Dir(), "relay.creds"); c.JetStream.CredentialsFile != want {
		t.Errorf("credentials_file = %q, want %q", c.JetStream.CredentialsFile, want)
	}
	if c.JetStream.TLSCAFile != "/etc/ca.pem" {
		t.Errorf("tls_ca_file = %q", c.JetStream.TLSCAFile)
	}
}
