package config

import "strings"

// validateNATSAuth checks the jetstream connection settings: they need an external server,
// name at most one way to authenticate, and come in the pairs NATS needs. Files are read
// when the relay connects (an error there names the key), not here, so a config can be
// checked on a machine that does not hold the secrets.
func (v *validator) validateNATSAuth(j *JetStream) {
	set := map[string]bool{
		"jetstream.credentials_file": j.CredentialsFile != "",
		"jetstream.user":             j.User != "",
		"jetstream.password":         j.Password != "",
		"jetstream.token":            j.Token != "",
		"jetstream.nkey_seed_file":   j.NKeySeedFile != "",
		"jetstream.tls_ca_file":      j.TLSCAFile != "",
		"jetstream.tls_cert_file":    j.TLSCertFile != "",
		"jetstream.tls_key_file":     j.TLSKeyFile != "",
	}
	if j.Embedded() {
		for _, key := range []string{"jetstream.credentials_file", "jetstream.user", "jetstream.password", "jetstream.token",
			"jetstream.nkey_seed_file", "jetstream.tls_ca_file", "jetstream.tls_cert_file", "jetstream.tls_key_file"} {
			if set[key] {
				v.add(key, "set, but jetstream.url is empty: it applies to an external NATS server only (the embedded one needs no authentication)")
			}
		}
		return
	}
	var kinds []string
	if set["jetstream.credentials_file"] {
		kinds = append(kinds, "jetstream.credentials_file")
	}
	if set["jetstream.user"] || set["jetstream.password"] {
		kinds = append(kinds, "jetstream.user/password")
	}
	if set["jetstream.token"] {
		kinds = append(kinds, "jetstream.token")
	}
	if set["jetstream.nkey_seed_file"] {
		kinds = append(kinds, "jetstream.nkey_seed_file")
	}
	if len(kinds) > 1 {
		v.add(kinds[0], "set together with %s: choose one way to authenticate to NATS", strings.Join(kinds[1:], " and "))
	}
	if set["jetstream.user"] != set["jetstream.password"] {
		v.add("jetstream.user", "jetstream.user and jetstream.password go together: both are needed")
	}
	if set["jetstream.tls_cert_file"] != set["jetstream.tls_key_file"] {
		v.add("jetstream.tls_cert_file", "jetstream.tls_cert_file and jetstream.tls_key_file go together (the client certificate and its key)")
	}
	if strings.Contains(j.URL, "@") && len(kinds) > 0 {
		v.add("jetstream.url", "carries credentials (user@ or token@) and %s is set too: choose one", kinds[0])
	}
}
