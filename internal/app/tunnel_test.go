package app

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/project"
)

// The tunnel admits the DSNs listed in tunnel.allowed_dsns and the enabled
// keys of the project files, each for its own project only.
func TestTunnelAllowlistIncludesProjectKeys(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"7.json": `{"publicKeys":[{"publicKey":"77777777777777777777777777777777"},
			{"publicKey":"88888888888888888888888888888888","isEnabled":false}],"config":{}}`,
		"9.json": `{"disabled":true,"publicKeys":[{"publicKey":"99999999999999999999999999999999"}],"config":{}}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reg := project.NewRegistry(project.Options{Static: true})
	if err := project.NewStaticSource(dir, reg, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil))).Scan(); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Tunnel.AllowedDSNs = []string{"https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/42"}
	ts, err := newTunnelSetup(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key     string
		project uint64
		want    bool
	}{
		{"0123456789abcdef0123456789abcdef", 42, true},  // listed DSN
		{"0123456789abcdef0123456789abcdef", 43, false}, // listed key, other project
		{"77777777777777777777777777777777", 7, true},   // project file key
		{"77777777777777777777777777777777", 42, false}, // ... sent to another project
		{"88888888888888888888888888888888", 7, false},  // disabled key
		{"99999999999999999999999999999999", 9, false},  // disabled project
		{"ffffffffffffffffffffffffffffffff", 7, false},  // unknown
	} {
		got, err := ts.allow.AllowKey(context.Background(), c.key, c.project)
		if err != nil || got != c.want {
			t.Errorf("AllowKey(%s, %d) = %v, %v; want %v", c.key, c.project, got, err, c.want)
		}
	}
}
