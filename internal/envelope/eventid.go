package envelope

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// NormalizeEventID returns id as 32 lowercase hex digits if it is a UUID in one of the forms
// Relay's parser (Rust uuid::Uuid::parse_str) accepts: 32 hex digits, hyphenated
// 8-4-4-4-12, braced {8-4-4-4-12} or urn:uuid:8-4-4-4-12, hex digits in either case.
func NormalizeEventID(id string) (string, bool) {
	switch len(id) {
	case 32:
		// fast path: SDKs send the simple form, usually already lowercase.
	case 36:
	case 38:
		if id[0] != '{' || id[37] != '}' {
			return "", false
		}
		id = id[1:37]
	case 45:
		if !strings.EqualFold(id[:9], "urn:uuid:") {
			return "", false
		}
		id = id[9:]
	default:
		return "", false
	}
	var out [32]byte
	n := 0
	if len(id) == 36 {
		for i := 0; i < 36; i++ {
			c := id[i]
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if c != '-' {
					return "", false
				}
				continue
			}
			lc, ok := lowerHex(c)
			if !ok {
				return "", false
			}
			out[n] = lc
			n++
		}
	} else {
		lower := true
		for i := 0; i < 32; i++ {
			lc, ok := lowerHex(id[i])
			if !ok {
				return "", false
			}
			lower = lower && lc == id[i]
			out[i] = lc
		}
		if lower {
			return id, true // no allocation for the common case
		}
	}
	return string(out[:]), true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		return c, true
	case c >= 'A' && c <= 'F':
		return c + ('a' - 'A'), true
	}
	return 0, false
}

// NewEventID returns a random (version 4) UUID as 32 lowercase hex digits, as Relay's
// EventId::new does for envelopes and store events that lack one.
func NewEventID() string {
	var u [16]byte
	// crypto/rand.Read never returns an error (it crashes the program if the OS source fails).
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return hex.EncodeToString(u[:])
}
