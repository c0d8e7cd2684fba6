package config

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Reload reads the file again, with the environment and the flags of the first load still
// applied over it; a file that no longer validates is an error and the old Config is intact.
func TestReload(t *testing.T) {
	dir := writeConfig(t, "relay:\n  mode: proxy\n  port: 3001\nlogging:\n  level: info\n")
	c, err := LoadWithEnv(dir, env("RELAY_HOST", "0.0.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Override("relay.port", "4000", "--port"); err != nil {
		t.Fatal(err)
	}
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, FileName), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	write("relay:\n  mode: proxy\n  port: 3002\nlogging:\n  level: debug\n")
	n, err := c.Reload()
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if n.Logging.Level != "debug" || n.Relay.Port != 4000 || n.Relay.Host != "0.0.0.0" {
		t.Fatalf("reloaded level %q port %d host %q; want debug, 4000 (the flag), 0.0.0.0 (the environment)",
			n.Logging.Level, n.Relay.Port, n.Relay.Host)
	}
	if got := ChangedKeys(c, n); !slices.Equal(got, []string{"logging.level"}) {
		t.Fatalf("ChangedKeys = %v, want [logging.level]", got)
	}
	// The reloaded config reloads again the same way (the flags are carried over).
	if n2, err := n.Reload(); err != nil || n2.Relay.Port != 4000 {
		t.Fatalf("second Reload: port %v, err %v", n2, err)
	}

	write("relay:\n  mode: nonsense\nlogging:\n  level: loud\n")
	_, err = c.Reload()
	if err == nil || !strings.Contains(err.Error(), "relay.mode") || !strings.Contains(err.Error(), "logging.level") {
		t.Fatalf("Reload of a bad file = %v; want both problems", err)
	}
	if c.Logging.Level != "info" || c.Relay.Mode != ModeProxy {
		t.Fatalf("the old config changed: %+v", c.Logging)
	}
	write("relay: [\n")
	if _, err := c.Reload(); err == nil {
		t.Fatal("Reload of a file that does not parse succeeded")
	}
}

func TestChangedKeys(t *testing.T) {
	dir := writeConfig(t, "scrub:\n  pii_config:\n    rules: {}\n  data_scrubbing:\n    sensitive_fields: [a]\n")
	a, err := LoadWithEnv(dir, env())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		content string
		want    []string
	}{
		{"scrub:\n  pii_config: {rules: {}}\n  data_scrubbing:\n    sensitive_fields: [a]\n", nil},
		{"scrub:\n  pii_config:\n    rules: {}\n  data_scrubbing:\n    sensitive_fields: [a, b]\n", []string{"scrub.data_scrubbing.sensitive_fields"}},
		{"relay:\n  port: 1\nhttp:\n  timeout: 4s\nscrub:\n  data_scrubbing:\n    sensitive_fields: [a]\n",
			[]string{"relay.port", "http.timeout", "scrub.pii_config"}},
		{"tunnel:\n  rate_limit:\n    per_second: 2\nscrub:\n  pii_config:\n    rules: {}\n  data_scrubbing:\n    sensitive_fields: [a]\n",
			[]string{"tunnel.rate_limit.per_second"}},
	} {
		if err := os.WriteFile(filepath.Join(dir, FileName), []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := LoadWithEnv(dir, env())
		if err != nil {
			t.Fatal(err)
		}
		if got := ChangedKeys(a, b); !slices.Equal(got, tc.want) {
			t.Errorf("%q: ChangedKeys = %v, want %v", tc.content, got, tc.want)
		}
	}
}

func TestReloadable(t *testing.T) {
	for key, want := range map[string]bool{
		"logging.level":                         true,
		"logging.format":                        false,
		"scrub.pii_config":                      true,
		"scrub.data_scrubbing.sensitive_fields": true,
		"relay.port":                            false,
		"scrubber":                              false,
	} {
		if got := Reloadable(key); got != want {
			t.Errorf("Reloadable(%q) = %v, want %v", key, got, want)
		}
	}
}

// SetLevel changes the level of the logger NewLogger made and of every logger derived from
// it, including to and from "off".
func TestSetLevel(t *testing.T) {
	var buf bytes.Buffer
	root := Logging{Level: "info", Format: "json"}.NewLogger(&buf)
	child := root.With("component", "x").WithGroup("g")
	child.Debug("hidden")
	if !SetLevel(root, Logging{Level: "debug"}) {
		t.Fatal("SetLevel on NewLogger's logger reported false")
	}
	child.Debug("shown")
	if !SetLevel(child, Logging{Level: "off"}) {
		t.Fatal("SetLevel on a derived logger reported false")
	}
	root.Error("hidden too")
	out := buf.String()
	if strings.Contains(out, "hidden") || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"msg":"shown"`) {
		t.Fatalf("log output:\n%s", out)
	}
	if SetLevel(slog.New(slog.DiscardHandler), Logging{Level: "debug"}) {
		t.Fatal("SetLevel on a foreign logger reported true")
	}
}
