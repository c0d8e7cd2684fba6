package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/credentials"
)

func newConfigCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Manage the relay config",
		Long: `Basic config management: create a config folder with "relay config init" and print the
configuration the relay would run with using "relay config show"; check a folder without
starting the relay with "relay config validate".`,
		Args: subcommandArgs,
		RunE: helpIfNoSubcommand,
	}
	cmd.AddCommand(newConfigInitCmd(c), newConfigShowCmd(c), newConfigValidateCmd(c))
	return cmd
}

// modeChoices are the answers to "How should this relay operate?", in Relay's order.
var modeChoices = []struct {
	label string
	mode  config.Mode
}{
	{"Managed through upstream", config.ModeManaged},
	{"Statically configured", config.ModeStatic},
	{"Proxy for all events", config.ModeProxy},
}

func newConfigInitCmd(c *cli) *cobra.Command {
	var (
		mode, upstream, host string
		port                 int
		yes                  bool
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Initialize a new relay config",
		Long: `Create the config folder (mode 0700) with a minimal config.yml (mode 0600) holding the relay
section: mode, upstream, listen host and port. Every other key keeps its default.

On a terminal, and without flags, it asks as Sentry Relay does: a default config or a custom
one, and for a custom one the mode, the upstream, the listen interface and the port. Without a
terminal, or with any of --mode, --upstream, --host, --port or --yes, it writes the file
without asking, from the defaults and the flags.

An existing config.yml is never replaced. In managed mode (the default, as in Relay) it also
generates credentials (credentials.json) unless they exist: the relay's identity, whose public
key an organisation adds under Settings → Relays in Sentry.`,
		Example: `  relay config init
  relay config init --mode proxy --upstream https://sentry.example.com/ --port 3000
  relay -c /etc/relay config init --yes`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			overrides := []struct{ flag, key, value string }{
				{"mode", "relay.mode", mode},
				{"upstream", "relay.upstream", upstream},
				{"host", "relay.host", host},
				{"port", "relay.port", strconv.Itoa(port)},
			}
			var given []string
			for _, o := range overrides {
				if f.Changed(o.flag) {
					given = append(given, "--"+o.flag)
				}
			}
			interactive := c.isTerminal() && len(given) == 0 && !yes

			abs, err := filepath.Abs(c.configDir)
			if err != nil {
				return fmt.Errorf("config folder %s: %w", c.configDir, err)
			}
			c.printf("Initializing relay in %s\n", abs)
			file := filepath.Join(c.configDir, config.FileName)
			_, statErr := os.Stat(file)
			exists := statErr == nil
			if statErr != nil && !errors.Is(statErr, fs.ErrNotExist) {
				return fmt.Errorf("%s: %w", file, unwrapPathErr(statErr))
			}
			if exists && len(given) > 0 {
				return usageError{fmt.Errorf("%s already exists; edit it (or remove it first) instead of passing %s", file, strings.Join(given, ", "))}
			}

			did := false
			if !exists {
				cfg := config.Default()
				if interactive {
					ok, err := askConfig(c, cfg)
					if err != nil {
						return err
					}
					if !ok {
						c.printf("Aborted.\n")
						return nil
					}
				} else {
					for _, o := range overrides {
						if f.Changed(o.flag) {
							if err := cfg.Override(o.key, o.value, "--"+o.flag); err != nil {
								return usageError{err}
							}
						}
					}
				}
				if err := cfg.Validate(); err != nil {
					return usageError{err} // only the flags (or answers) changed the defaults
				}
				if err := cfg.SaveMinimal(c.configDir); err != nil {
					return err
				}
				c.printf("Wrote %s\n", file)
				did = true
			}

			// Decide about credentials from what the file now says (not the environment), as
			// Relay does.
			cfg, err := config.LoadWithEnv(c.configDir, noEnv)
			if err != nil {
				return err
			}
			if cfg.Relay.Mode == config.ModeManaged {
				creds, err := credentials.Load(c.configDir)
				if err != nil {
					return err
				}
				if creds == nil {
					if creds, err = credentials.Generate(); err != nil {
						return err
					}
					if err := creds.Save(c.configDir, false); err != nil {
						return err
					}
					c.printf("Generated new credentials\n")
					c.dumpCredentials(creds)
					did = true
				}
			}
			if did {
				c.printf("All done!\n")
			} else {
				c.printf("Nothing to do.\n")
			}
			switch cfg.Relay.Mode {
			case config.ModeManaged:
				c.printf("Next: add the public key (\"relay credentials show\" prints it) in Sentry under Settings → Relays, then start the relay with \"relay run\".\n")
			case config.ModeStatic:
				c.printf("Note: static mode accepts only the projects with a file in %s (<project id>.json).\n", cfg.ProjectsDir())
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&mode, "mode", "", "the relay mode to write: managed, proxy or static")
	f.StringVarP(&upstream, "upstream", "u", "", "the upstream URL to write (default https://sentry.io/)")
	f.StringVarP(&host, "host", "H", "", "the interface to listen on (default 127.0.0.1)")
	f.IntVarP(&port, "port", "P", 0, "the port to listen on (default 3000)")
	f.BoolVarP(&yes, "yes", "y", false, "do not ask; write the defaults (and any other flags)")
	return cmd
}

func noEnv(string) (string, bool) { return "", false }

// askConfig runs Relay's interactive questions. It returns false when the user aborts.
func askConfig(c *cli, cfg *config.Config) (bool, error) {
	p := newPrompter(c.in, c.out)
	choice, err := p.choose("Do you want to create a new config?", []string{
		"Yes, create default config",
		"Yes, create custom config",
		"No, abort",
	}, 0)
	if err != nil {
		return false, err
	}
	switch choice {
	case 0:
		return true, nil
	case 2:
		return false, nil
	}
	labels := make([]string, len(modeChoices))
	for i, m := range modeChoices {
		labels[i] = m.label
	}
	m, err := p.choose("How should this relay operate?", labels, 0)
	if err != nil {
		return false, err
	}
	cfg.Relay.Mode = modeChoices[m].mode

	// Each answer is checked by the same rules as the config file.
	ask := func(name, key, def string) error {
		ans, err := p.value(name, def, func(s string) error { return checkValue(key, s) })
		if err != nil {
			return err
		}
		return cfg.Override(key, ans, "answer")
	}
	if err := ask("upstream", "relay.upstream", cfg.Relay.Upstream); err != nil {
		return false, err
	}
	if err := ask("listen interface", "relay.host", cfg.Relay.Host); err != nil {
		return false, err
	}
	if err := ask("listen port", "relay.port", strconv.Itoa(cfg.Relay.Port)); err != nil {
		return false, err
	}
	return true, nil
}

// checkValue reports what Validate would say about value for key (nil if nothing), without the
// "where: key:" prefix, for explaining a bad answer to a prompt.
func checkValue(key, value string) error {
	const src = "answer"
	probe := config.Default()
	if err := probe.Override(key, value, src); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), src+": "+key+": "))
	}
	err := probe.Validate()
	if err == nil {
		return nil
	}
	prefix := src + ": " + key + ": "
	for _, line := range strings.Split(err.Error(), "\n") {
		if msg, ok := strings.CutPrefix(line, prefix); ok {
			return errors.New(msg)
		}
	}
	return nil
}

func newConfigShowCmd(c *cli) *cobra.Command {
	var format string
	var showSecrets bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the effective config",
		Long: `Print the configuration the relay would run with, as YAML: every key, including those not in
config.yml but filled in from defaults, with the environment variables applied. The output is
itself a valid config.yml.

Secrets are printed as REDACTED (relay.tls_identity_password, jetstream.password,
jetstream.token, and a password or token in jetstream.url or relay.upstream), so the output can be
pasted into a ticket; --show-secrets prints them as they are.

If the configuration has problems, they are reported after it and the command fails.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "yaml" {
				return usageError{fmt.Errorf("--format: %q is not supported (only yaml)", format)}
			}
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			shown := cfg
			if !showSecrets {
				shown = cfg.Redacted()
			}
			out, err := shown.Marshal()
			if err != nil {
				return err
			}
			if _, err := c.out.Write(out); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			return cfg.Validate()
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "yaml", "the output format (yaml)")
	cmd.Flags().BoolVar(&showSecrets, "show-secrets", false, "print passwords and tokens instead of REDACTED")
	return cmd
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
