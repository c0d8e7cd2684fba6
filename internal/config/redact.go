package config

import (
	"net/url"
	"strings"
)

// Redacted stands in for a secret in what Redacted returns.
const Redacted = "REDACTED"

// Redacted returns a copy of c whose secrets are replaced by Redacted, for
// printing ("relay config show"): a config pasted into a ticket or a log
// must not carry a password. The secrets are relay.tls_identity_password,
// jetstream.password, jetstream.token, and the password (or the token: a
// user name alone) in jetstream.url and relay.upstream. Keys that are not
// set stay empty, so the output still says which kind of authentication is
// configured. File paths (credentials_file, nkey_seed_file, tls_key_file)
// are not secrets and are kept.
func (c *Config) Redacted() *Config {
	r := *c
	redact(&r.Relay.TLSIdentityPassword)
	redact(&r.JetStream.Password)
	redact(&r.JetStream.Token)
	r.JetStream.URL = redactURLs(r.JetStream.URL)
	r.Relay.Upstream = redactURLs(r.Relay.Upstream)
	return &r
}

func redact(s *string) {
	if *s != "" {
		*s = Redacted
	}
}

// redactURLs redacts the user information of each URL in a comma-separated
// list (jetstream.url names a cluster that way). With a password it is the
// password; without one it is the user part, which NATS reads as a token.
// A URL that does not parse is redacted whole when it holds an '@': it may
// still carry credentials.
func redactURLs(list string) string {
	if !strings.Contains(list, "@") {
		return list
	}
	parts := strings.Split(list, ",")
	for i, p := range parts {
		trimmed := strings.TrimSpace(p)
		if !strings.Contains(trimmed, "@") {
			continue
		}
		u, err := url.Parse(trimmed)
		if err != nil || u.User == nil {
			parts[i] = Redacted
			continue
		}
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), Redacted)
		} else {
			u.User = url.User(Redacted)
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
