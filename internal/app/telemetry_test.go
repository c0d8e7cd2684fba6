package app

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/internal/config"
)

func exposition() string {
	var b bytes.Buffer
	metrics.WritePrometheus(&b, false)
	return b.String()
}

// The spool's gauges are on /metrics while the spool is open and gone once
// closeSpool closed it: a closed spool is not reported, and the next one
// opened (a restart of Run in the same process) is the only one reported.
func TestSpoolGaugesFollowTheOpenSpool(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte("relay:\n  mode: proxy\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadWithEnv(dir, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// A test of this package that leaves a spool open on purpose (Run
	// giving up on a stuck disk at the shutdown deadline exits without
	// closing it) leaves its gauges registered: count from what is there.
	count := func() int { return strings.Count(exposition(), "\nrelay_spool_records ") }
	base := count()
	for round := range 2 {
		sp, err := openSpool(cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		if n := count(); n != base+1 {
			t.Fatalf("round %d: relay_spool_records appears %d times with the spool open, want %d", round, n, base+1)
		}
		closeSpool(sp, log)
		if n := count(); n != base {
			t.Fatalf("round %d: relay_spool_records appears %d times after closeSpool, want %d", round, n, base)
		}
	}
}
