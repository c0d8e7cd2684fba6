package credentials

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Signature errors returned (wrapped) by Verify.
var (
	ErrBadSignature     = errors.New("invalid signature")
	ErrSignatureExpired = errors.New("signature is too old")
)

// Sign returns the X-Sentry-Relay-Signature value for data signed at t, in Sentry Relay's
// format (relay-auth sign_with_header):
//
//	base64url(ed25519(header ‖ 0x00 ‖ data)) "." base64url(header)
//
// where header is the JSON {"t":"<RFC 3339 UTC time>"}, or {} when t is zero. data must be the
// exact, uncompressed body bytes that are sent.
func (c *Credentials) Sign(data []byte, t time.Time) string {
	header := signatureHeader(t)
	msg := make([]byte, 0, len(header)+1+len(data))
	msg = append(msg, header...)
	msg = append(msg, 0)
	msg = append(msg, data...)
	sig := ed25519.Sign(c.SecretKey, msg)
	return b64.EncodeToString(sig) + "." + b64.EncodeToString(header)
}

// signatureHeader writes {"t":"…"} with the timestamp as Relay's serde (chrono) writes a UTC
// time: whole seconds, or 3, 6 or 9 fractional digits, whichever is exact, then "Z".
func signatureHeader(t time.Time) []byte {
	if t.IsZero() {
		return []byte("{}")
	}
	return []byte(`{"t":"` + formatTimestamp(t) + `"}`)
}

func formatTimestamp(t time.Time) string {
	t = t.UTC()
	s := t.Format("2006-01-02T15:04:05")
	switch ns := t.Nanosecond(); {
	case ns == 0:
	case ns%1_000_000 == 0:
		s += fmt.Sprintf(".%03d", ns/1_000_000)
	case ns%1_000 == 0:
		s += fmt.Sprintf(".%06d", ns/1_000)
	default:
		s += fmt.Sprintf(".%09d", ns)
	}
	return s + "Z"
}

// Verify checks a signature made by Sign (or by Sentry Relay) over data with the public key.
// It returns the signing time from the header (zero if the header has none). With maxAge > 0
// the signature must also be no older than maxAge at now, as Relay's auth.signature_max_age;
// a signature without a time then fails too.
func Verify(pub ed25519.PublicKey, data []byte, signature string, maxAge time.Duration, now time.Time) (time.Time, error) {
	if len(pub) != ed25519.PublicKeySize {
		return time.Time{}, fmt.Errorf("%w: bad public key", ErrBadSignature)
	}
	sigPart, headerPart, ok := strings.Cut(signature, ".")
	if !ok {
		return time.Time{}, fmt.Errorf("%w: no header part", ErrBadSignature)
	}
	sig, err := b64.DecodeString(sigPart)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return time.Time{}, fmt.Errorf("%w: malformed signature", ErrBadSignature)
	}
	header, err := b64.DecodeString(headerPart)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: malformed header", ErrBadSignature)
	}
	msg := make([]byte, 0, len(header)+1+len(data))
	msg = append(msg, header...)
	msg = append(msg, 0)
	msg = append(msg, data...)
	if !ed25519.Verify(pub, msg, sig) {
		return time.Time{}, ErrBadSignature
	}
	var h struct {
		T *time.Time `json:"t"`
	}
	dec := json.NewDecoder(bytes.NewReader(header))
	if err := dec.Decode(&h); err != nil {
		return time.Time{}, fmt.Errorf("%w: header is not JSON with a time: %v", ErrBadSignature, err)
	}
	var signedAt time.Time
	if h.T != nil {
		signedAt = *h.T
	}
	if maxAge > 0 {
		if signedAt.IsZero() {
			return time.Time{}, fmt.Errorf("%w: no time in the signature", ErrSignatureExpired)
		}
		if now.Sub(signedAt) > maxAge {
			return signedAt, fmt.Errorf("%w: signed %s, max age %s", ErrSignatureExpired, signedAt.UTC().Format(time.RFC3339), maxAge)
		}
	}
	return signedAt, nil
}

// Verify checks a signature against these credentials' public key (see the package Verify).
func (c *Credentials) Verify(data []byte, signature string, maxAge time.Duration, now time.Time) (time.Time, error) {
	return Verify(c.PublicKey, data, signature, maxAge, now)
}
