// Package testfixture locates the repository's recorded test material for
// tests in any package.
//
// testdata/sdk is a copy of the requests recorded from the official Sentry
// clients (the project's shared fixtures; testdata/sdk/INDEX.md lists them).
// It lives in the repository so that a lone clone passes its own tests: no
// test reads anything beside the checkout. One copy here, rather than one in
// every package that replays it, keeps the packages' views identical.
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

// SDKDir returns the directory of the recorded client traffic
// (internal/testfixture/testdata/sdk).
func SDKDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(Root(t), "internal", "testfixture", "testdata", "sdk")
	if _, err := os.Stat(filepath.Join(dir, "INDEX.md")); err != nil {
		t.Fatalf("testfixture: recorded SDK traffic not found: %v", err)
	}
	return dir
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
