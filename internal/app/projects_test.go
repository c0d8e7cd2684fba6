package app

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/config"
)

// A projects directory that cannot be read stops the relay before it
// listens, naming the directory (a missing one is a valid start, tested in
// e2e), in static mode as in managed mode (where project files apply as in
// proxy mode).
func TestRunProjectsStartup(t *testing.T) {
	for _, tt := range []struct {
		name, mode string
		setup      func(t *testing.T, dir string)
		want       string
	}{
		{"projects is a file", "static", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "projects"), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "projects: project files: read "},
		{"projects is a file, proxy", "proxy", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "projects"), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "projects: project files: read "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			yml := "relay:\n  mode: " + tt.mode + "\n  port: 0\n"
			if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(yml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			err = Run(context.Background(), cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want an error containing %q", err, tt.want)
			}
			if _, statErr := os.Stat(filepath.Join(dir, "jetstream")); statErr == nil {
				t.Error("the stream was opened before the project files were checked")
			}
		})
	}
}
