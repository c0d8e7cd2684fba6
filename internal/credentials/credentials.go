// Package credentials holds the relay's identity for managed mode: an Ed25519 key pair and a
// relay id (UUID), stored in <config dir>/credentials.json exactly as Sentry Relay stores them,
// so the file can move between the two:
//
//	{"secret_key":"<base64url, no padding>","public_key":"<base64url, no padding>","id":"<uuid>"}
//
// The secret key is written as the 32-byte Ed25519 seed; the 64-byte seed‖public form that
// Relay also accepts is read too. The relay signs its upstream requests with Sign (the format
// of Relay's X-Sentry-Relay-Signature header); Verify checks such a signature.
package credentials

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/uuid"
)

// FileName is the credentials file inside the config directory.
const FileName = "credentials.json"

// ErrExist is returned (wrapped) by Save when credentials exist and overwrite is false.
var ErrExist = errors.New("credentials already exist")

// Credentials identify this relay to its upstream.
type Credentials struct {
	// SecretKey is the full Go private key (seed ‖ public key); only its seed is stored.
	SecretKey ed25519.PrivateKey
	// PublicKey is the key the Sentry organisation trusts (Settings → Relays).
	PublicKey ed25519.PublicKey
	// ID is the relay's id; several relays may share a key pair but not an id.
	ID uuid.UUID
}

var b64 = base64.RawURLEncoding

// Generate makes new credentials: a fresh key pair and a random (v4) relay id.
func Generate() (*Credentials, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("credentials: generate key: %w", err)
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return nil, fmt.Errorf("credentials: generate id: %w", err)
	}
	return &Credentials{SecretKey: priv, PublicKey: pub, ID: id}, nil
}

// Parse builds credentials from their text forms (as in credentials.json or on the command
// line) and checks that the public key belongs to the secret key. publicKey may be "" to
// derive it from the secret key.
func Parse(secretKey, publicKey, id string) (*Credentials, error) {
	sk, err := ParseSecretKey(secretKey)
	if err != nil {
		return nil, err
	}
	derived := sk.Public().(ed25519.PublicKey)
	if publicKey != "" {
		pk, err := ParsePublicKey(publicKey)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(pk, derived) {
			return nil, errors.New("public key does not belong to the secret key")
		}
	}
	rid, err := ParseID(id)
	if err != nil {
		return nil, err
	}
	return &Credentials{SecretKey: sk, PublicKey: derived, ID: rid}, nil
}

// ParseSecretKey reads a base64url (no padding) secret key: a 32-byte seed, or the 64-byte
// seed ‖ public key form, whose public half must match the seed.
func ParseSecretKey(s string) (ed25519.PrivateKey, error) {
	raw, err := b64.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("invalid secret key: not base64url without padding")
	}
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		sk := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
		if !bytes.Equal(sk[ed25519.SeedSize:], raw[ed25519.SeedSize:]) {
			return nil, fmt.Errorf("invalid secret key: its public half does not match its seed")
		}
		return sk, nil
	}
	return nil, fmt.Errorf("invalid secret key: %d bytes, expected 32 (or 64)", len(raw))
}

// ParsePublicKey reads a base64url (no padding) 32-byte public key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	raw, err := b64.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("invalid public key: not base64url without padding")
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("invalid public key: %d bytes, expected 32", len(raw))
	}
	return ed25519.PublicKey(raw), nil
}

// ParseID reads a relay id (any UUID; generated ids are version 4).
func ParseID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, fmt.Errorf("invalid relay id %q: expected a UUID such as 2b1d6b47-cd5e-4b6b-9a34-3b0e1c2a8f11", s)
	}
	return id, nil
}

// SecretKeyString is the secret key as stored: the base64url seed.
func (c *Credentials) SecretKeyString() string { return b64.EncodeToString(c.SecretKey.Seed()) }

// PublicKeyString is the public key as stored and as Sentry shows it.
func (c *Credentials) PublicKeyString() string { return b64.EncodeToString(c.PublicKey) }

// file is the JSON shape of credentials.json; field order is Relay's.
type file struct {
	SecretKey string `json:"secret_key"`
	PublicKey string `json:"public_key"`
	ID        string `json:"id"`
}

// MarshalJSON writes Relay's credentials.json object.
func (c *Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(file{c.SecretKeyString(), c.PublicKeyString(), c.ID.String()})
}

// UnmarshalJSON reads Relay's credentials.json object; all three fields are required.
func (c *Credentials) UnmarshalJSON(data []byte) error {
	var f file
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("not a credentials object: %w", err)
	}
	var missing []string
	for _, m := range []struct{ name, v string }{{"secret_key", f.SecretKey}, {"public_key", f.PublicKey}, {"id", f.ID}} {
		if m.v == "" {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %v", missing)
	}
	p, err := Parse(f.SecretKey, f.PublicKey, f.ID)
	if err != nil {
		return err
	}
	*c = *p
	return nil
}

// Path is <dir>/credentials.json.
func Path(dir string) string { return filepath.Join(dir, FileName) }

// Load reads <dir>/credentials.json. Absent credentials are not an error: it returns nil, nil.
func Load(dir string) (*Credentials, error) {
	path := Path(dir)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("credentials: read %s: %w", path, unwrapPathError(err))
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("credentials: %s: not valid JSON", path)
	}
	c := new(Credentials)
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("credentials: %s: %w", path, err)
	}
	return c, nil
}

// Save writes <dir>/credentials.json with mode 0600 (dir is created with 0700), atomically:
// a crash leaves either the old file or the new one. Without overwrite an existing file is
// left alone and the error wraps ErrExist.
func (c *Credentials) Save(dir string, overwrite bool) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("credentials: encode: %w", err)
	}
	data = append(data, '\n')
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("credentials: create %s: %w", dir, unwrapPathError(err))
	}
	path := Path(dir)
	tmp, err := os.CreateTemp(dir, ".credentials-*.json")
	if err != nil {
		return fmt.Errorf("credentials: write %s: %w", path, unwrapPathError(err))
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // no-op after a successful rename or link+remove
	// CreateTemp makes the file 0600 already; Chmod guards against an unusual umask/platform.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("credentials: write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("credentials: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("credentials: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("credentials: write %s: %w", path, err)
	}
	if overwrite {
		err = os.Rename(tmpName, path)
	} else {
		// link fails if path exists, so two concurrent `generate`s cannot both win.
		err = os.Link(tmpName, path)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("credentials: %s: %w", path, ErrExist)
		}
	}
	if err != nil {
		return fmt.Errorf("credentials: write %s: %w", path, unwrapPathError(err))
	}
	syncDir(dir)
	return nil
}

// Remove deletes <dir>/credentials.json. It reports whether there was one to delete.
func Remove(dir string) (bool, error) {
	err := os.Remove(Path(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("credentials: remove %s: %w", Path(dir), unwrapPathError(err))
	}
	syncDir(dir)
	return true, nil
}

// syncDir makes a rename/link/unlink in dir durable. Best effort: not every platform can
// fsync a directory, and the file itself is already synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return pe.Err
	case errors.As(err, &le):
		return le.Err
	}
	return err
}
