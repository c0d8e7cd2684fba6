package envelope

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// KeyRef names a DSN public key in logs without writing the key: "sha256:"
// and the first 12 hex digits of the SHA-256 of the key. An operator finds
// the key it names with
//
//	printf %s KEY | sha256sum | cut -c1-12
//
// The key is not a password, but it is what lets anyone send events into the
// project, and logs travel further than configs; so no log line carries it.
func KeyRef(publicKey string) string {
	if publicKey == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(publicKey))
	return "sha256:" + hex.EncodeToString(sum[:6])
}

// RedactKey replaces every occurrence of publicKey in s (an error text from
// the upstream may quote it) with KeyRef(publicKey).
func RedactKey(s, publicKey string) string {
	if publicKey == "" || !strings.Contains(s, publicKey) {
		return s
	}
	return strings.ReplaceAll(s, publicKey, KeyRef(publicKey))
}
