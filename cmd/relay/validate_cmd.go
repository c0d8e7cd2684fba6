package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/relayhq/relay/internal/app"
	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/credentials"
	"github.com/relayhq/relay/internal/project"
)

func newConfigValidateCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the config folder without starting the relay",
		Long: `Check everything "relay run" would read from the config folder, without starting anything:
config.yml (every key, with the environment variables applied, including the scrub rules, which
are compiled), credentials.json (and whether the mode needs it), the TLS and CA files the config
names, and the project files in projects/*.json (JSON shape, project id, scrubbing rules and
filter settings that compile, public keys no two files share).

Every problem is listed, each naming the file, the line where there is one, and the key. The
exit status is 0 when there is none, 1 otherwise.`,
		Example: `  relay config validate
  relay -c /etc/relay config validate`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var problems []string
			cfg, err := c.loadConfig()
			if err == nil {
				err = cfg.Validate()
			}
			if err != nil {
				problems = append(problems, errorLines(err)...)
			}
			creds, credErr := c.runCredentials(cmd, "", "", "")
			if credErr != nil {
				problems = append(problems, strings.TrimPrefix(credErr.Error(), "credentials: ")) // the path comes first
			}
			var projectFiles int
			if cfg != nil {
				if credErr != nil { // reported; do not also say that none are there
					creds = &credentials.Credentials{}
				}
				var ps []string
				ps, projectFiles = app.CheckDir(cfg, creds)
				problems = append(problems, ps...)
			} else {
				// config.yml does not load; the project files are still where they always are.
				var ps []string
				ps, projectFiles = project.CheckDir(filepath.Join(c.configDir, "projects"))
				problems = append(problems, ps...)
			}
			if len(problems) > 0 {
				noun := "problems"
				if len(problems) == 1 {
					noun = "problem"
				}
				return &config.Error{Problems: append([]string{fmt.Sprintf("config folder %s: %d %s", c.configDir, len(problems), noun)}, problems...)}
			}
			file := "config.yml read"
			if !cfg.FileExists() {
				file = "no config.yml, defaults"
			}
			cred := "no credentials"
			if creds != nil {
				cred = "credentials " + creds.ID.String()
			}
			c.printf("config folder %s is valid: %s, mode %s, %s, %d project files\n", cfg.Dir(), file, cfg.Relay.Mode, cred, projectFiles)
			return nil
		},
	}
}
