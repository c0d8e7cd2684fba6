package app

import (
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/worker"
)

// The filter stage runs first when there is a project registry, and not at
// all without one; scrubbing follows when configured.
func TestWorkerStagesOrder(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	projects := worker.FilterSettingsFunc(func(string) (json.RawMessage, bool) { return nil, false })
	names := func(st []worker.Stage) []string {
		out := make([]string, len(st))
		for i, s := range st {
			out[i] = s.Name()
		}
		return out
	}
	scrubbing := config.Default()
	scrubbing.Scrub.DataScrubbing.ScrubData = true
	scrubbing.Scrub.DataScrubbing.ScrubDefaults = true
	noScrub := config.Default()
	noScrub.Scrub.DataScrubbing.ScrubData = false
	noScrub.Scrub.DataScrubbing.ScrubDefaults = false
	noScrub.Scrub.DataScrubbing.ScrubIPAddresses = false
	noScrub.Scrub.DataScrubbing.SensitiveFields = nil
	for _, c := range []struct {
		name     string
		cfg      *config.Config
		projects worker.FilterSettings
		want     []string
	}{
		{"registry and scrubbing", scrubbing, projects, []string{"filter", "scrub"}},
		{"registry only", noScrub, projects, []string{"filter"}},
		{"no registry", scrubbing, nil, []string{"scrub"}},
	} {
		st, err := workerStages(c.cfg, log, c.projects)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := names(st); !slices.Equal(got, c.want) {
			t.Errorf("%s: stages %v, want %v", c.name, got, c.want)
		}
	}
}
