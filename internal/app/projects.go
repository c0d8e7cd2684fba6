package app

import (
	"fmt"
	"log/slog"

	"github.com/relayhq/relay/ingest"
	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/project"
	"github.com/relayhq/relay/scrub"
	"github.com/relayhq/relay/worker"
)

// The project registry is ingest's gate and the worker's source of project
// scrubbing.
var (
	_ ingest.ProjectGate    = (*project.Registry)(nil)
	_ worker.ScrubberSource = (*project.Registry)(nil)
)

// openProjects builds the registry for the relay's mode and reads the static
// project files once, so the first request already meets them: in static
// mode only keys with a file are accepted, in proxy mode files apply to
// their keys and every other key is forwarded as before. A missing or empty
// projects directory is a valid start; one that cannot be read is an error.
func openProjects(cfg *config.Config, log *slog.Logger) (*project.Registry, *project.StaticSource, error) {
	reg := project.NewRegistry(project.Options{
		Static:             cfg.Relay.Mode == config.ModeStatic,
		OverrideProjectIDs: cfg.Relay.OverrideProjectIDs,
		MaxRecordingSize:   cfg.Limits.MaxReplayUncompressedSize.Bytes(),
	})
	dir := cfg.ProjectsDir()
	src := project.NewStaticSource(dir, reg, cfg.Cache.FileInterval, log.With("component", "projects"))
	if err := src.Scan(); err != nil {
		return nil, nil, fmt.Errorf("projects: %w", err)
	}
	log.Info("project files read", "dir", dir, "keys", reg.Len(), "every", cfg.Cache.FileInterval,
		"unknown_keys", map[bool]string{true: "refused", false: "forwarded"}[cfg.Relay.Mode == config.ModeStatic])
	return reg, src, nil
}

// ProjectScrubber returns the scrubber the worker uses for envelopes of
// publicKey — its project file's own settings — and the file they come
// from; nil and "" when the relay-wide settings apply to the key. `relay
// scrub --key` uses it, so what it shows is what the worker forwards.
func ProjectScrubber(cfg *config.Config, publicKey string) (*scrub.Scrubber, string, error) {
	reg := project.NewRegistry(project.Options{MaxRecordingSize: cfg.Limits.MaxReplayUncompressedSize.Bytes()})
	quiet := slog.New(slog.DiscardHandler) // a broken file surfaces as ScrubberFor's error
	if err := project.NewStaticSource(cfg.ProjectsDir(), reg, cfg.Cache.FileInterval, quiet).Scan(); err != nil {
		return nil, "", fmt.Errorf("projects: %w", err)
	}
	s, err := reg.ScrubberFor(publicKey)
	if err != nil || s == nil {
		return nil, "", err
	}
	_, e := reg.Lookup(publicKey)
	return s, e.Source, nil
}
