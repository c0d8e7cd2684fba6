package config

import (
	"strings"
	"testing"
)

func TestRedactURLs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"nats://n1:4222,nats://n2:4222", "nats://n1:4222,nats://n2:4222"},
		{"nats://alice:s3cret@n1:4222", "nats://alice:REDACTED@n1:4222"},
		{"nats://t0ken@n1:4222", "nats://REDACTED@n1:4222"},
		{"nats://n1:4222, nats://bob:pw@n2:4222", "nats://n1:4222,nats://bob:REDACTED@n2:4222"},
		{"https://key:pw@sentry.example.com/", "https://key:REDACTED@sentry.example.com/"},
		{"nats://a:b@%zz", Redacted}, // does not parse: redacted whole
	} {
		if got := redactURLs(tc.in); got != tc.want {
			t.Errorf("redactURLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactedLeavesTheConfigAlone(t *testing.T) {
	c := Default()
	c.Relay.TLSIdentityPassword = "p12-pass"
	c.JetStream.URL = "nats://alice:url-pass@n1:4222"
	c.JetStream.User, c.JetStream.Password = "alice", "yaml-pass"
	c.JetStream.Token = "yaml-token"
	r := c.Redacted()
	out, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"p12-pass", "url-pass", "yaml-pass", "yaml-token"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("redacted config shows %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(string(out), "user: alice\n") || !strings.Contains(string(out), "password: REDACTED\n") {
		t.Errorf("redacted config lost the user or the marker of a set password:\n%s", out)
	}
	if c.JetStream.Password != "yaml-pass" || c.JetStream.URL != "nats://alice:url-pass@n1:4222" || c.Relay.TLSIdentityPassword != "p12-pass" {
		t.Fatal("Redacted changed the config it copied")
	}
	if empty := Default().Redacted(); empty.JetStream.Password != "" || empty.JetStream.Token != "" {
		t.Fatal("an unset secret was filled in")
	}
}
