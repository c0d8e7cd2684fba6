package envelope

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// DSN is a parsed Sentry DSN: {scheme}://{public_key}[:{secret_key}]@{host}[:{port}]/{path}{project_id}.
type DSN struct {
	Scheme    string // "http" or "https"
	PublicKey string
	SecretKey string // "" when absent (modern DSNs have none)
	Host      string // host[:port] as written
	Path      string // path prefix before the project id, "/" or e.g. "/sentry/"
	ProjectID uint64
}

// ParseDSN parses a DSN as sentry-types' Dsn::from_str does: scheme http or https, a public key
// (URL user), a host, and a numeric project id as the last path segment (u64).
func ParseDSN(s string) (DSN, error) {
	u, err := url.Parse(s)
	if err != nil {
		return DSN{}, fmt.Errorf("invalid dsn: %w", errors.Unwrap(err))
	}
	var d DSN
	switch u.Scheme {
	case "http", "https":
		d.Scheme = u.Scheme
	default:
		return DSN{}, fmt.Errorf("invalid dsn: unsupported scheme %q", u.Scheme)
	}
	if u.User == nil || u.User.Username() == "" {
		return DSN{}, errors.New("invalid dsn: no public key (username)")
	}
	d.PublicKey = u.User.Username()
	d.SecretKey, _ = u.User.Password()
	if u.Hostname() == "" {
		return DSN{}, errors.New("invalid dsn: no host")
	}
	if p := u.Port(); p != "" {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return DSN{}, fmt.Errorf("invalid dsn: bad port %q", p)
		}
	}
	d.Host = u.Host
	path := u.Path
	cut := strings.LastIndexByte(path, '/')
	if cut < 0 {
		return DSN{}, errors.New("invalid dsn: no project id")
	}
	d.Path, path = path[:cut+1], path[cut+1:]
	if path == "" {
		return DSN{}, errors.New("invalid dsn: no project id")
	}
	if d.ProjectID, err = strconv.ParseUint(path, 10, 64); err != nil {
		return DSN{}, fmt.Errorf("invalid dsn: invalid project id %q", path)
	}
	return d, nil
}

// String formats the DSN back into its canonical form.
func (d DSN) String() string {
	var b strings.Builder
	b.WriteString(d.Scheme)
	b.WriteString("://")
	b.WriteString(d.PublicKey)
	if d.SecretKey != "" {
		b.WriteByte(':')
		b.WriteString(d.SecretKey)
	}
	b.WriteByte('@')
	b.WriteString(d.Host)
	if d.Path == "" {
		b.WriteByte('/')
	} else {
		b.WriteString(d.Path)
	}
	b.WriteString(strconv.FormatUint(d.ProjectID, 10))
	return b.String()
}

// EnvelopeURL is where an SDK using this DSN posts envelopes:
// {scheme}://{host}{path}api/{project_id}/envelope/.
func (d DSN) EnvelopeURL() string {
	path := d.Path
	if path == "" {
		path = "/"
	}
	return d.Scheme + "://" + d.Host + path + "api/" + strconv.FormatUint(d.ProjectID, 10) + "/envelope/"
}

// The rules for where an envelope may be sent. Ingest refuses a request that
// breaks them and the upstream client refuses to send one: both call these
// functions, so nothing ingest accepted can be refused later by the worker
// (which would bury an acknowledged envelope in the dead letters, a place any
// client could otherwise fill at will).
var (
	// ErrProjectID: the project id cannot be sent upstream.
	ErrProjectID = errors.New("invalid value for project id")
	// ErrPublicKey: the public key cannot be sent upstream.
	ErrPublicKey = errors.New("invalid project key")
)

// PublicKeySize is the length of a project's public key (Relay's ProjectKey).
const PublicKeySize = 32

// CheckProjectID reports whether an envelope can be sent to project id: any
// u64 but 0, which Sentry never assigns and the relay reserves for "no
// project" (Relay's ProjectId would parse it; the upstream could only refuse).
func CheckProjectID(id uint64) error {
	if id == 0 {
		return fmt.Errorf("%w: 0", ErrProjectID)
	}
	return nil
}

// CheckPublicKey reports whether key (without its ".flags" suffix) is a public
// key the relay can forward: exactly PublicKeySize ASCII characters as Relay's
// ProjectKey::parse requires (hex is not checked, as in Relay), and none of
// the characters the X-Sentry-Auth grammar would not carry unchanged —
// control characters and DEL (not a header value), space and tab (trimmed
// by the parser), ',' and '=' (pair and value separators), '.' (the flags
// separator). The error names the defect, never the key.
func CheckPublicKey(key string) error {
	if len(key) != PublicKeySize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrPublicKey, len(key), PublicKeySize)
	}
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case c <= ' ' || c >= 0x7f:
			return fmt.Errorf("%w: byte %d is 0x%02x, not a visible ASCII character", ErrPublicKey, i, c)
		case c == ',' || c == '=' || c == '.':
			return fmt.Errorf("%w: byte %d is %q, which X-Sentry-Auth cannot carry", ErrPublicKey, i, c)
		}
	}
	return nil
}
