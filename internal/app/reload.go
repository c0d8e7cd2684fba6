package app

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/project"
	"github.com/relayhq/relay/worker"
)

// Reloads by outcome: applied, or refused because the new config.yml does
// not load or validate (the running config stays in force).
var (
	reloadsApplied = metrics.NewCounter(`relay_config_reloads_total{result="applied"}`)
	reloadsRefused = metrics.NewCounter(`relay_config_reloads_total{result="refused"}`)
)

// reloader applies what can change in a running relay when it gets SIGHUP:
//
//   - the project files are read at once (they are also re-read every
//     cache.file_interval); each file is judged on its own, as always;
//   - config.yml is read again with the environment and the flags the relay
//     started with (config.Reload). A config that does not load or validate
//     — a scrub rule that does not compile included — is refused with one
//     log line naming its problems, and the config in force stays;
//   - logging.level is applied to the relay's logger (config.SetLevel);
//   - the scrub section's relay-wide rules replace the worker's scrubber
//     atomically (worker.ScrubStage.SetScrubber): an envelope is scrubbed
//     wholly by the old or wholly by the new rules;
//   - every other changed key is named in one log line: it takes effect at
//     the next start.
//
// Nothing is restarted and no listener or connection is touched.
type reloader struct {
	log     *slog.Logger
	started *config.Config // what the process started with: restart-only keys compare to it
	cfg     *config.Config // in force; only Run's goroutine touches it after start
	files   *project.StaticSource
	scrub   *worker.ScrubStage // nil in a process without a worker
	hup     chan os.Signal
}

// newReloader starts catching SIGHUP at once, so that a SIGHUP sent while
// the relay starts is applied when Run begins rather than killing the
// process (the default action). stop undoes it.
func newReloader(cfg *config.Config, log *slog.Logger) *reloader {
	r := &reloader{log: log, started: cfg, cfg: cfg, hup: make(chan os.Signal, 1)}
	signal.Notify(r.hup, syscall.SIGHUP)
	return r
}

func (r *reloader) stop() { signal.Stop(r.hup) }

// attach finds the worker's scrub stage among its stages.
func (r *reloader) attach(stages []worker.Stage) {
	for _, s := range stages {
		if st, ok := s.(*worker.ScrubStage); ok {
			r.scrub = st
		}
	}
}

// Run applies a reload per SIGHUP until ctx ends.
func (r *reloader) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.hup:
			r.reload()
		}
	}
}

func (r *reloader) reload() {
	if r.files != nil {
		r.files.Rescan()
	}
	next, err := r.cfg.Reload()
	if err != nil {
		reloadsRefused.Inc()
		r.log.Error("SIGHUP: config reload refused, the running config stays in force",
			"file", r.cfg.File(), "problems", strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	var applied []string
	changed := config.ChangedKeys(r.cfg, next)
	scrubChanged := false
	for _, k := range changed {
		if strings.HasPrefix(k, "scrub.") {
			scrubChanged = true
		}
	}
	if scrubChanged && r.scrub != nil {
		s, err := next.CompileScrubber() // Validate compiled it: this cannot fail
		if err != nil {
			reloadsRefused.Inc()
			r.log.Error("SIGHUP: config reload refused, the running config stays in force",
				"file", r.cfg.File(), "problems", err.Error())
			return
		}
		r.scrub.SetScrubber(s)
	}
	for _, k := range changed {
		if config.Reloadable(k) && (r.scrub != nil || !strings.HasPrefix(k, "scrub.")) {
			applied = append(applied, k) // a process without a worker scrubs nothing
		}
	}
	if next.Logging.Level != r.cfg.Logging.Level && !config.SetLevel(r.log, next.Logging) {
		r.log.Warn("SIGHUP: logging.level cannot change for this logger; it takes effect at the next start")
	}
	r.cfg = next
	reloadsApplied.Inc()
	r.log.Info("SIGHUP: config reloaded", "file", r.cfg.File(), "applied", applied, "project_files", "rescanned")

	var restart []string
	for _, k := range config.ChangedKeys(r.started, next) {
		if !config.Reloadable(k) {
			restart = append(restart, k)
		}
	}
	if len(restart) > 0 {
		r.log.Warn("SIGHUP: these keys changed but take effect only at the next start", "keys", restart)
	}
}
