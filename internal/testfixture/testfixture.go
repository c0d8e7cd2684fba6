// Package testfixture locates the shared test material (../shared beside the
// repository) for tests in any package.
package testfixture

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Root returns the repository root: the nearest parent directory holding go.mod.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testfixture: getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testfixture: no go.mod above the test's directory")
		}
		dir = parent
	}
}

// SharedDir returns ../shared beside the repository. Tests that need it fail
// (never skip) when it is missing: CI always has it.
func SharedDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(Root(t)), "shared")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("testfixture: shared material not found at %s: %v", dir, err)
	}
	return dir
}

// SDKDir returns ../shared/fixtures/sdk, the captured traffic of the real clients.
func SDKDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(SharedDir(t), "fixtures", "sdk")
}

// SDKFile reads one captured fixture by name.
func SDKFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(SDKDir(t), name))
	if err != nil {
		t.Fatalf("testfixture: %v", err)
	}
	return b
}

// JSONPath returns the value at path in a document decoded by encoding/json
// into any: object keys, or array indexes as decimal strings. ok is false
// when the path is absent.
func JSONPath(doc any, path ...string) (v any, ok bool) {
	v = doc
	for _, k := range path {
		switch c := v.(type) {
		case map[string]any:
			if v, ok = c[k]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}
