package testfixture

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSDKDirHasIndexAndEnvelopes(t *testing.T) {
	dir := SDKDir(t)
	if _, err := os.Stat(filepath.Join(dir, "INDEX.md")); err != nil {
		t.Fatalf("INDEX.md: %v", err)
	}
	matches, err := filepath.Glob(filepath.Join(dir, "*.envelope"))
	if err != nil || len(matches) < 40 {
		t.Fatalf("expected the captured envelopes, found %d (%v)", len(matches), err)
	}
}
