package app

import (
	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/credentials"
	"github.com/relayhq/relay/internal/project"
)

// CheckDir finds, without starting anything, every problem `relay run` would
// meet in cfg's folder beyond config.yml itself (which config.Validate
// checks): scrub rules that are accepted but do nothing (config.ScrubLint),
// credentials the mode needs, the files relay.tls_* and
// http.ca_file name, and the project files (project.CheckDir). creds are the
// credentials the relay would run with (nil: none). It returns the problems,
// one line each, and how many project files it read.
func CheckDir(cfg *config.Config, creds *credentials.Credentials) (problems []string, projectFiles int) {
	problems = append(problems, cfg.ScrubLint()...)
	if err := CheckCredentials(cfg, creds); err != nil {
		problems = append(problems, credentials.Path(cfg.Dir())+": "+err.Error())
	}
	if _, err := serverTLS(cfg); err != nil {
		problems = append(problems, cfg.File()+": "+err.Error())
	}
	if _, err := upstreamRoots(cfg); err != nil {
		problems = append(problems, cfg.File()+": "+err.Error())
	}
	ps, n := project.CheckDir(cfg.ProjectsDir())
	return append(problems, ps...), n
}
