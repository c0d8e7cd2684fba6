package project

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A project's quotas with limit 0 are limits the relay enforces itself
// (Relay's static quotas): per scope and scope id, only for known
// categories, lasting RejectAllSecs; counting quotas are left to Sentry.
func TestQuotaLimits(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef"
	now := time.Unix(1_700_000_000, 0)
	for _, c := range []struct {
		name   string
		quotas string
		want   string // the limits in X-Sentry-Rate-Limits form; "" for none
	}{
		{"no quotas", `null`, ""},
		{"reject all errors", `[{"id":"q","categories":["error"],"scope":"project","limit":0,"reasonCode":"not_now"}]`, "60:error:project:not_now"},
		{"every category", `[{"id":"q","scope":"organization","limit":0}]`, "60::organization"},
		{"counting quota: Sentry's", `[{"id":"q","categories":["error"],"scope":"project","limit":100,"window":60}]`, ""},
		{"no limit: unlimited", `[{"id":"q","categories":["error"],"scope":"project"}]`, ""},
		{"other project's id", `[{"id":"q","categories":["error"],"scope":"project","scopeId":"43","limit":0}]`, ""},
		{"this project's id", `[{"id":"q","categories":["transaction"],"scope":"project","scopeId":"42","limit":0}]`, "60:transaction:project"},
		{"this key's numeric id", `[{"id":"q","categories":["error"],"scope":"key","scopeId":"7","limit":0}]`, "60:error:key"},
		{"another key", `[{"id":"q","categories":["error"],"scope":"key","scopeId":"8","limit":0}]`, ""},
		{"only unknown categories", `[{"id":"q","categories":["no_such_thing"],"scope":"project","limit":0}]`, ""},
		{"unknown scope", `[{"id":"q","scope":"global","limit":0}]`, ""},
		{"a broken entry is skipped", `[{"limit":"zero"},{"id":"q","categories":["error"],"scope":"project","limit":0}]`, "60:error:project"},
		{"reason code cannot break the header", `[{"id":"q","categories":["error"],"scope":"project","limit":0,"reasonCode":"a:b,c"}]`, "60:error:project:abc"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			doc := `{"organizationId":3,"publicKeys":[{"publicKey":"` + key + `","numericId":7}],"config":{"quotas":` + c.quotas + `}}`
			if err := os.WriteFile(filepath.Join(dir, "42.json"), []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			reg := NewRegistry(Options{})
			if err := NewStaticSource(dir, reg, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil))).Scan(); err != nil {
				t.Fatal(err)
			}
			got := reg.QuotaLimits(key, now)
			if f := got.Format(now); f != c.want {
				t.Errorf("limits %q, want %q", f, c.want)
			}
			if again := reg.QuotaLimits(key, now); again.Format(now) != got.Format(now) {
				t.Errorf("cached answer differs: %q", again.Format(now))
			}
		})
	}
	if got := NewRegistry(Options{}).QuotaLimits(key, now); got.Len() != 0 {
		t.Errorf("unknown key: %d limits", got.Len())
	}
}
