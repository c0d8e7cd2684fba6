package project

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The worker's filter stage reads a key's filterSettings through the
// registry: present for a known key, absent (no filtering) for a key the
// registry knows nothing usable about.
func TestRegistryFilterSettings(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"42.json": `{"publicKeys":[{"publicKey":"0123456789abcdef0123456789abcdef"}],
			"config":{"filterSettings":{"releases":{"releases":["1.0.*"]}}}}`,
		"43.json": `{"publicKeys":[{"publicKey":"fedcba9876543210fedcba9876543210"}],"config":{}}`,
		"44.json": `{"publicKeys":[{"publicKey":"00000000000000000000000000000044"}],"config":`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reg := NewRegistry(Options{})
	if err := NewStaticSource(dir, reg, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil))).Scan(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key    string
		want   string
		wantOK bool
	}{
		{"0123456789abcdef0123456789abcdef", `{"releases":{"releases":["1.0.*"]}}`, true},
		{"fedcba9876543210fedcba9876543210", "", true},
		{"00000000000000000000000000000044", "", false}, // does not parse
		{"ffffffffffffffffffffffffffffffff", "", false}, // unknown
	} {
		got, ok := reg.FilterSettings(c.key)
		if ok != c.wantOK || string(got) != c.want {
			t.Errorf("FilterSettings(%s) = %s, %v; want %s, %v", c.key, got, ok, c.want, c.wantOK)
		}
	}
}
