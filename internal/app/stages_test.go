package app

import (
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/project"
	"github.com/relayhq/relay/worker"
)

// The filter stage runs first, so that nothing is scrubbed only to be
// dropped; both stages are there whatever the config says, because project
// files can bring filter and scrubbing settings while the relay runs.
func TestWorkerStagesOrder(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
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
	for _, c := range []struct {
		name string
		cfg  *config.Config
	}{
		{"relay-wide scrubbing", scrubbing},
		{"defaults", config.Default()},
	} {
		st, err := workerStages(c.cfg, project.NewRegistry(project.Options{}), log)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got, want := names(st), []string{"filter", "scrub"}; !slices.Equal(got, want) {
			t.Errorf("%s: stages %v, want %v", c.name, got, want)
		}
	}
}
