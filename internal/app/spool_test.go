package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/spool"
)

// spool.max_dead_count and spool.max_dead_size reach the spool.
func TestOpenSpoolAppliesTheDeadLetterCaps(t *testing.T) {
	for _, tc := range []struct {
		name, yml string
	}{
		{"count", "spool:\n  max_dead_count: 2\n"},
		{"size", "spool:\n  max_dead_size: 2500B\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(tc.yml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.LoadWithEnv(dir, func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			sp, err := openSpool(cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			// closeSpool, not sp.Close: it also takes the spool's gauges
			// off /metrics, which TestSpoolGaugesFollowTheOpenSpool counts.
			defer closeSpool(sp, log)
			data := make([]byte, 1000)
			for i := 0; i < 2; i++ {
				if err := sp.Bury(context.Background(), data, "test"); err != nil {
					t.Fatalf("bury %d: %v", i, err)
				}
			}
			if err := sp.Bury(context.Background(), data, "test"); !errors.Is(err, spool.ErrDeadFull) {
				t.Fatalf("third burial: %v, want ErrDeadFull", err)
			}
		})
	}
}
