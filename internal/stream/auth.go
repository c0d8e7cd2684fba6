package stream

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
)

// validateAuth checks that at most one way to authenticate is given, and
// that the authentication settings are not given for the embedded server
// (which needs none: nothing but this process reaches it).
func (cfg *Config) validateAuth() error {
	var kinds []string
	if cfg.CredentialsFile != "" {
		kinds = append(kinds, "credentials file")
	}
	if cfg.User != "" || cfg.Password != "" {
		kinds = append(kinds, "user/password")
		if cfg.User == "" || cfg.Password == "" {
			return errors.New("user and password go together")
		}
	}
	if cfg.Token != "" {
		kinds = append(kinds, "token")
	}
	if cfg.NKeySeedFile != "" {
		kinds = append(kinds, "nkey seed file")
	}
	if len(kinds) > 1 {
		return fmt.Errorf("authentication: %s given together; choose one", strings.Join(kinds, " and "))
	}
	if cfg.URL == "" && (len(kinds) > 0 || cfg.TLS != nil) {
		return errors.New("authentication and TLS apply to an external server only (set url)")
	}
	return nil
}

// authOptions are the nats options for Config's authentication and TLS.
// The files are read here, at connect time; an error names the file, never
// a secret.
func (cfg *Config) authOptions() ([]nats.Option, error) {
	if err := cfg.validateAuth(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case cfg.CredentialsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredentialsFile))
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nkey seed file %s: %w", cfg.NKeySeedFile, err)
		}
		opts = append(opts, o)
	}
	if cfg.TLS != nil {
		opts = append(opts, nats.Secure(cfg.TLS.Clone()))
	}
	return opts, nil
}
