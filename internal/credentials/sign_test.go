package credentials

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// A signature made by Sentry Relay itself (getsentry/relay py/tests/test_auth.py, produced by
// relay-auth's test_generate_strings_for_test_auth_py): the register-challenge body and its
// X-Sentry-Relay-Signature, with the relay's public key.
const (
	relayKey     = "dXq9IiKDLgma0J8dLVITOdkpaU8mPZPJj18t4HCKTfs"
	relayRequest = `{"relay_id":"29308cac-9783-40e9-98ac-b5503dffe3a4","public_key":"dXq9IiKDLgma0J8dLVITOdkpaU8mPZPJj18t4HCKTfs","version":"20.8.0"}`
	relaySig     = "VgFn-7B5JmbSPiM5bikxkn7DjImV8LkfW3UVQcXnK8nLumvLaS7ML0KTY7a7LlU_3grGtSNZlEUbBudOp__RDA.eyJ0IjoiMjAyMC0wOS0wOFQxMzozMzozNS45OTM5MDRaIn0"
)

var relaySignedAt = time.Date(2020, 9, 8, 13, 33, 35, 993904000, time.UTC)

func TestVerifyRelaySignature(t *testing.T) {
	pub, err := ParsePublicKey(relayKey)
	if err != nil {
		t.Fatal(err)
	}
	at, err := Verify(pub, []byte(relayRequest), relaySig, 0, time.Time{})
	if err != nil {
		t.Fatalf("Verify of Relay's own signature: %v", err)
	}
	if !at.Equal(relaySignedAt) {
		t.Fatalf("signed at %v, want %v", at, relaySignedAt)
	}
	// Within and beyond the max age.
	if _, err := Verify(pub, []byte(relayRequest), relaySig, time.Minute, relaySignedAt.Add(30*time.Second)); err != nil {
		t.Fatalf("within max age: %v", err)
	}
	if _, err := Verify(pub, []byte(relayRequest), relaySig, time.Minute, relaySignedAt.Add(2*time.Minute)); !errors.Is(err, ErrSignatureExpired) {
		t.Fatalf("beyond max age: %v", err)
	}
	// Any change to body or signature fails.
	for name, c := range map[string]struct{ body, sig string }{
		"body":        {relayRequest + " ", relaySig},
		"signature":   {relayRequest, "A" + relaySig[1:]},
		"header":      {relayRequest, relaySig[:len(relaySig)-2] + "Q0"},
		"no header":   {relayRequest, relaySig[:strings.IndexByte(relaySig, '.')]},
		"broken b64":  {relayRequest, relaySig + "__broken"},
		"empty":       {relayRequest, ""},
		"only header": {relayRequest, "." + relaySig[strings.IndexByte(relaySig, '.')+1:]},
	} {
		if _, err := Verify(pub, []byte(c.body), c.sig, 0, time.Time{}); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s tampered: Verify = %v, want ErrBadSignature", name, err)
		}
	}
}

// TestSignKnownAnswer builds the expected signature from the spec (relay-protocol.md §7.2)
// with crypto/ed25519 directly, independent of Sign, and checks the parts Relay's own
// signature above pins down.
func TestSignKnownAnswer(t *testing.T) {
	c, err := Parse(relaySeed, relayPublic, testID)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(relayRequest)
	got := c.Sign(body, relaySignedAt)

	sigPart, headerPart, ok := strings.Cut(got, ".")
	if !ok {
		t.Fatalf("no '.' in %q", got)
	}
	// The header part is byte-for-byte what Relay wrote for the same instant.
	if want := relaySig[strings.IndexByte(relaySig, '.')+1:]; headerPart != want {
		t.Fatalf("header part %q, want Relay's %q", headerPart, want)
	}
	header, _ := base64.RawURLEncoding.DecodeString(headerPart)
	if string(header) != `{"t":"2020-09-08T13:33:35.993904Z"}` {
		t.Fatalf("header %s", header)
	}
	// The signature part is Ed25519 over header ‖ 0x00 ‖ body (deterministic for a key).
	msg := append(append(append([]byte{}, header...), 0), body...)
	want := base64.RawURLEncoding.EncodeToString(ed25519.Sign(ed25519.NewKeyFromSeed(mustB64(t, relaySeed)), msg))
	if sigPart != want {
		t.Fatalf("signature part\n got %s\nwant %s", sigPart, want)
	}
	// Golden value, so an accidental change of format shows up in review.
	const golden = "W1hUWcf8lx28OJhXR8Oyb_Q8z8G-vJzBy125eGkipayx8BKo0_JACg5o-WccnQnplMrGQarAwbgOylNsBL6pBA.eyJ0IjoiMjAyMC0wOS0wOFQxMzozMzozNS45OTM5MDRaIn0"
	if got != golden {
		t.Fatalf("Sign = %s\nwant   %s", got, golden)
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSignVerifyRoundTrip(t *testing.T) {
	c, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, body := range [][]byte{nil, []byte("{}"), []byte("Hello World!"), make([]byte, 1<<16)} {
		sig := c.Sign(body, now)
		at, err := c.Verify(body, sig, 5*time.Minute, now.Add(time.Second))
		if err != nil || !at.Equal(now) {
			t.Fatalf("round trip (%d bytes): %v, %v", len(body), at, err)
		}
		other, _ := Generate()
		if _, err := other.Verify(body, sig, 0, now); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("verified with another key: %v", err)
		}
	}
	// Without a time the header is {} and a max age cannot be met.
	sig := c.Sign([]byte("x"), time.Time{})
	if !strings.HasSuffix(sig, ".e30") { // base64url("{}")
		t.Fatalf("timeless signature %q", sig)
	}
	if at, err := c.Verify([]byte("x"), sig, 0, now); err != nil || !at.IsZero() {
		t.Fatalf("timeless verify: %v %v", at, err)
	}
	if _, err := c.Verify([]byte("x"), sig, time.Minute, now); !errors.Is(err, ErrSignatureExpired) {
		t.Fatalf("timeless with max age: %v", err)
	}
}

func TestFormatTimestamp(t *testing.T) {
	base := time.Date(2020, 9, 8, 13, 33, 35, 0, time.UTC)
	for _, tt := range []struct {
		ns   int
		want string
	}{
		{0, "2020-09-08T13:33:35Z"},
		{500_000_000, "2020-09-08T13:33:35.500Z"},
		{993_904_000, "2020-09-08T13:33:35.993904Z"},
		{1, "2020-09-08T13:33:35.000000001Z"},
	} {
		if got := formatTimestamp(base.Add(time.Duration(tt.ns))); got != tt.want {
			t.Errorf("formatTimestamp(+%dns) = %s, want %s", tt.ns, got, tt.want)
		}
	}
	// Any zone is written as UTC.
	if got := formatTimestamp(base.In(time.FixedZone("X", 3600))); got != "2020-09-08T13:33:35Z" {
		t.Errorf("non-UTC: %s", got)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte(relayRequest), relaySig)
	f.Add([]byte(""), "a.b")
	f.Add([]byte("x"), ".e30")
	pub, _ := ParsePublicKey(relayKey)
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		at, err := Verify(pub, body, sig, time.Hour, relaySignedAt)
		if err == nil && at.IsZero() {
			t.Fatal("accepted a signature without a time under a max age")
		}
	})
}
