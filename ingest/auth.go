package ingest

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/relayhq/relay/internal/envelope"
)

// Authentication of SDK requests (protocol doc §2.1). Sentry Relay
// (extractors/request_meta.rs::auth_from_parts) is the behavioural reference:
// exactly one source may carry the key; a second source is an error even when
// it names the same key.

// protocolVersion is the newest Sentry protocol version the relay speaks;
// anything newer is refused with 400 (Relay's PROTOCOL_VERSION).
const protocolVersion = 7

// authSource says where the request's key came from.
type authSource uint8

const (
	authNone          authSource = iota // nothing in the request: envelope endpoint falls back to the envelope header dsn
	authXSentryAuth                     // X-Sentry-Auth: Sentry k=v, …
	authAuthorization                   // Authorization: Sentry k=v, …
	authBasic                           // Authorization: Basic base64(key:secret)
	authQuery                           // ?sentry_key=…&sentry_version=…
	authEnvelope                        // "dsn" in the envelope header (browser tunnel)
)

// authInfo is what the request says about its sender. Strings alias the
// request's header or query values (no copies on the hot path).
type authInfo struct {
	source  authSource
	key     string // public key as sent, possibly with ".flags"
	client  string // sentry_client, "" when absent
	version int    // sentry_version, protocolVersion when absent
}

// Errors of the auth header grammar (sentry-types' ParseAuthError). All of them
// are answered 401 "bad x-sentry-auth header", like Relay does.
var (
	errAuthNotSentry  = errors.New("non sentry auth")
	errAuthVersion    = errors.New("invalid value for version")
	errAuthMissingKey = errors.New("missing public key in auth header")
)

// extractAuth finds the request's credentials per §2.1, in Relay's order:
// X-Sentry-Auth, Authorization: Sentry, Authorization: Basic, query string.
// It returns source authNone (and no error) when the request carries none;
// the caller decides whether that is allowed (envelope endpoint: tunnel).
func extractAuth(r *http.Request) (authInfo, *apiError) {
	var a authInfo

	if h := sentryAuthHeader(r.Header, "X-Sentry-Auth"); h != "" {
		parsed, err := parseAuthHeader(h)
		if err != nil {
			return a, errBadAuthHeader(err)
		}
		a = parsed
		a.source = authXSentryAuth
	}

	authz := firstHeader(r.Header, "Authorization")
	if h := sentryAuthPrefixed(authz); h != "" {
		if a.source != authNone {
			return a, errMultipleAuth
		}
		parsed, err := parseAuthHeader(h)
		if err != nil {
			return a, errBadAuthHeader(err)
		}
		a = parsed
		a.source = authAuthorization
	}

	// Basic auth that does not decode is ignored (not an error), as in Relay.
	if key, ok := basicAuthKey(authz); ok {
		if a.source != authNone {
			return a, errMultipleAuth
		}
		a = authInfo{source: authBasic, key: key, version: protocolVersion}
	}

	// The query string counts only when it mentions "sentry_" at all, so
	// unrelated query parameters never turn into an auth error.
	if q := r.URL.RawQuery; strings.Contains(q, "sentry_") {
		if a.source != authNone {
			return a, errMultipleAuth
		}
		parsed, err := parseAuthQuery(q)
		if err != nil {
			return a, errBadAuthHeader(err)
		}
		a = parsed
		a.source = authQuery
	}
	return a, nil
}

// firstHeader returns the first value of a canonical header key without the
// allocation-free-but-slower canonicalisation of Header.Get, or "" when the
// value has bytes an HTTP header value may not carry as text (Relay's
// HeaderValue::to_str fails on them and treats the header as absent).
func firstHeader(h http.Header, canonicalKey string) string {
	v := h[canonicalKey]
	if len(v) == 0 {
		return ""
	}
	s := v[0]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 0x20 && c != '\t') || c >= 0x7f {
			return ""
		}
	}
	return s
}

// sentryAuthHeader returns the header's value if it is Sentry auth.
func sentryAuthHeader(h http.Header, canonicalKey string) string {
	return sentryAuthPrefixed(firstHeader(h, canonicalKey))
}

// sentryAuthPrefixed returns s when it starts with "sentry " in any case;
// anything else (including an empty value) is not Sentry auth and ignored.
func sentryAuthPrefixed(s string) string {
	if len(s) >= 7 && asciiEqualFold(s[:7], "sentry ") {
		return s
	}
	return ""
}

// parseAuthHeader parses `Sentry k=v, k=v` (sentry-types auth.rs grammar): the
// scheme word, one space, comma-separated pairs split at '=', keys and values
// trimmed, pairs without '=' and unknown keys ignored. A value ends at the
// next '=' (so `a=b=c` gives a=b), as in the reference parser.
func parseAuthHeader(s string) (authInfo, error) {
	prefix, items, _ := strings.Cut(s, " ")
	if !asciiEqualFold(prefix, "sentry") {
		return authInfo{}, errAuthNotSentry
	}
	a := authInfo{version: protocolVersion}
	for items != "" {
		var item string
		item, items, _ = strings.Cut(items, ",")
		k, rest, ok := strings.Cut(item, "=")
		if !ok {
			continue
		}
		v, _, _ := strings.Cut(rest, "=")
		if err := a.set(strings.TrimSpace(k), strings.TrimSpace(v)); err != nil {
			return authInfo{}, err
		}
	}
	if a.key == "" {
		return authInfo{}, errAuthMissingKey
	}
	return a, nil
}

// parseAuthQuery parses the form-urlencoded query string for the sentry_*
// keys. Values are not trimmed (form decoding does not trim).
func parseAuthQuery(q string) (authInfo, error) {
	a := authInfo{version: protocolVersion}
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if err := a.set(formDecode(k), formDecode(v)); err != nil {
			return authInfo{}, err
		}
	}
	if a.key == "" {
		return authInfo{}, errAuthMissingKey
	}
	return a, nil
}

// set applies one key=value pair; later pairs override earlier ones.
func (a *authInfo) set(k, v string) error {
	switch k {
	case "sentry_key":
		a.key = v
	case "sentry_client":
		a.client = v
	case "sentry_version":
		n, ok := parseVersion(v)
		if !ok {
			return errAuthVersion
		}
		a.version = n
	}
	// sentry_secret and sentry_timestamp are deprecated and ignored.
	return nil
}

// parseVersion reads the protocol version: only the part before the first '.'
// counts ("7.0" is 7) and it must fit a u16, as in the reference parser.
func parseVersion(v string) (int, bool) {
	v, _, _ = strings.Cut(v, ".")
	v = strings.TrimPrefix(v, "+") // Rust's integer parser accepts a leading '+'
	if v == "" || v[0] == '+' || v[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil {
		return 0, false
	}
	return int(n), true
}

// basicAuthKey decodes `Authorization: Basic base64(key:secret)`. Anything that
// is not strict standard base64 of UTF-8 text with a ':' and a non-empty key
// is not Basic auth.
func basicAuthKey(authz string) (string, bool) {
	if len(authz) < 6 || !asciiEqualFold(authz[:6], "basic ") {
		return "", false
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(authz[6:])
	if err != nil || !utf8.Valid(raw) {
		return "", false
	}
	key, _, ok := strings.Cut(string(raw), ":")
	if !ok || key == "" {
		return "", false
	}
	return key, true
}

// formDecode decodes one application/x-www-form-urlencoded component the way
// the WHATWG form parser does: '+' is a space, a valid %XX escape is a byte,
// and a malformed escape stays as it is (never an error). It allocates only
// when there is something to decode.
func formDecode(s string) string {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// validatePublicKey checks the key as sent (Relay's
// ProjectKey::parse_with_flags): the part before the first '.' is the key and
// must pass envelope.CheckPublicKey, the rule the upstream client applies
// before sending; the rest are flags (e.g. "no-cache"), which this relay does
// not use. It returns the key without flags: that is what is forwarded.
func validatePublicKey(k string) (string, error) {
	key, _, _ := strings.Cut(k, ".")
	if err := envelope.CheckPublicKey(key); err != nil {
		return "", err
	}
	return key, nil
}

// parseProjectID parses the {project_id} path segment as a u64 (Rust's parser
// accepts a leading '+') that envelope.CheckProjectID accepts.
func parseProjectID(s string) (uint64, bool) {
	s = strings.TrimPrefix(s, "+")
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && envelope.CheckProjectID(n) == nil
}

// asciiEqualFold compares case-insensitively in ASCII only, like Rust's
// eq_ignore_ascii_case in the reference: strings.EqualFold would also fold
// Unicode ("ſentry" equals "sentry" there), which Relay does not accept.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
