package credentials

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A key pair from Sentry Relay's own tests (relay-auth, test_keys): the 64-byte secret form,
// its 32-byte seed form and the public key, as Relay writes them.
const (
	relaySecret64 = "OvXFVm1tIUi8xDTuyHX1SSqdMc8nCt2qU9IUaH5p7oUk5pHZsdnfXNiMWiMLtSE86J3N9Peo5CBP1YQHDUkApQ"
	relaySeed     = "OvXFVm1tIUi8xDTuyHX1SSqdMc8nCt2qU9IUaH5p7oU"
	relayPublic   = "JOaR2bHZ31zYjFojC7UhPOidzfT3qOQgT9WEBw1JAKU"
	testID        = "29308cac-9783-40e9-98ac-b5503dffe3a4"
)

func TestParseRelayKeys(t *testing.T) {
	for _, secret := range []string{relaySecret64, relaySeed} {
		c, err := Parse(secret, relayPublic, testID)
		if err != nil {
			t.Fatalf("Parse(%s…): %v", secret[:8], err)
		}
		if c.SecretKeyString() != relaySeed {
			t.Errorf("secret written as %q, want the seed %q", c.SecretKeyString(), relaySeed)
		}
		if c.PublicKeyString() != relayPublic {
			t.Errorf("public key %q, want %q", c.PublicKeyString(), relayPublic)
		}
		if c.ID.String() != testID {
			t.Errorf("id %q", c.ID)
		}
	}
	// The public key may be left out: it is derived.
	c, err := Parse(relaySeed, "", testID)
	if err != nil || c.PublicKeyString() != relayPublic {
		t.Fatalf("derived public key %v, %v", c, err)
	}
}

func TestParseErrors(t *testing.T) {
	other, _ := Generate()
	tampered := []byte(relaySecret64)
	tampered[len(tampered)-1] = 'B'
	tests := []struct {
		name, secret, public, id, want string
	}{
		{"bad encoding", "bad data", relayPublic, testID, "invalid secret key: not base64url"},
		{"padded", relaySeed + "=", relayPublic, testID, "invalid secret key: not base64url"},
		{"short secret", "OvXF", relayPublic, testID, "invalid secret key: 3 bytes, expected 32 (or 64)"},
		{"keypair halves differ", string(tampered), "", testID, "public half does not match"},
		{"bad public", relaySeed, "OvXF", testID, "invalid public key: 3 bytes, expected 32"},
		{"public not base64", relaySeed, "!!", testID, "invalid public key: not base64url"},
		{"mismatched pair", relaySeed, other.PublicKeyString(), testID, "public key does not belong to the secret key"},
		{"bad id", relaySeed, relayPublic, "relay-1", `invalid relay id "relay-1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.secret, tt.public, tt.id)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestGenerate(t *testing.T) {
	a, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate()
	if a.ID == b.ID || bytes.Equal(a.PublicKey, b.PublicKey) {
		t.Fatal("two generated credentials are equal")
	}
	if a.ID.Version() != 4 {
		t.Errorf("id version %d, want 4", a.ID.Version())
	}
	if !bytes.Equal(a.SecretKey.Public().(ed25519.PublicKey), a.PublicKey) {
		t.Error("public key does not match the secret key")
	}
	if len(a.SecretKeyString()) != 43 || len(a.PublicKeyString()) != 43 {
		t.Errorf("encoded lengths %d/%d, want 43 (32 bytes base64url without padding)", len(a.SecretKeyString()), len(a.PublicKeyString()))
	}
}

func TestJSON(t *testing.T) {
	c, err := Parse(relaySeed, relayPublic, testID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"secret_key":"` + relaySeed + `","public_key":"` + relayPublic + `","id":"` + testID + `"}`
	if string(got) != want {
		t.Fatalf("JSON\n got %s\nwant %s", got, want)
	}
	// Relay's 64-byte secret form is read too.
	var back Credentials
	in := `{"secret_key":"` + relaySecret64 + `","public_key":"` + relayPublic + `","id":"` + testID + `"}`
	if err := json.Unmarshal([]byte(in), &back); err != nil {
		t.Fatal(err)
	}
	if !back.SecretKey.Equal(c.SecretKey) || back.ID != c.ID {
		t.Fatal("64-byte form read differently")
	}

	for _, bad := range []struct{ in, want string }{
		{`{"secret_key":"` + relaySeed + `","id":"` + testID + `"}`, "missing [public_key]"},
		{`{}`, "missing [secret_key public_key id]"},
		{`[]`, "not a credentials object"},
		{`{"secret_key":"` + relaySeed + `","public_key":"` + relayPublic + `","id":"` + testID + `","extra":1}`, `unknown field "extra"`},
	} {
		var c Credentials
		if err := json.Unmarshal([]byte(bad.in), &c); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Unmarshal(%s) = %v, want %q", bad.in, err, bad.want)
		}
	}
}

func TestSaveLoadRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".relay")

	c, err := Load(dir)
	if c != nil || err != nil {
		t.Fatalf("Load of absent credentials = %v, %v; want nil, nil", c, err)
	}
	if existed, err := Remove(dir); existed || err != nil {
		t.Fatalf("Remove of absent credentials = %v, %v", existed, err)
	}

	c1, _ := Generate()
	if err := c1.Save(dir, false); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(Path(dir))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("credentials.json mode %v, want 0600", st.Mode().Perm())
	}
	if dst, _ := os.Stat(dir); dst.Mode().Perm() != 0o700 {
		t.Errorf("created dir mode %v, want 0700", dst.Mode().Perm())
	}
	data, _ := os.ReadFile(Path(dir))
	var raw map[string]string
	if err := json.Unmarshal(data, &raw); err != nil || len(raw) != 3 || raw["public_key"] != c1.PublicKeyString() {
		t.Fatalf("file content %s (%v)", data, err)
	}

	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !got.SecretKey.Equal(c1.SecretKey) || !got.PublicKey.Equal(c1.PublicKey) || got.ID != c1.ID {
		t.Fatal("loaded credentials differ from the saved ones")
	}

	// No overwrite without asking.
	c2, _ := Generate()
	if err := c2.Save(dir, false); !errors.Is(err, ErrExist) {
		t.Fatalf("Save over existing = %v, want ErrExist", err)
	}
	if got, _ := Load(dir); got.ID != c1.ID {
		t.Fatal("existing credentials were replaced")
	}
	if err := c2.Save(dir, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := Load(dir); got.ID != c2.ID {
		t.Fatal("overwrite did not replace")
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("dir holds %d entries, want only credentials.json", len(entries))
	}

	if existed, err := Remove(dir); !existed || err != nil {
		t.Fatalf("Remove = %v, %v", existed, err)
	}
	if c, err := Load(dir); c != nil || err != nil {
		t.Fatalf("Load after Remove = %v, %v", c, err)
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(Path(dir), []byte(`{"secret_key":"x","public_key":"y","id":"z"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), Path(dir)+": invalid secret key") {
		t.Fatalf("Load = %v", err)
	}
}
