package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/relayhq/relay/internal/app"
	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/credentials"
)

func init() {
	extraCommands = append(extraCommands, newRunCmd)
}

// runFlags maps the run command's flags to config keys, in Relay's spelling.
var runFlags = []struct {
	name, short, key, usage string
}{
	{"mode", "", "relay.mode", "the relay mode: managed, proxy or static"},
	{"upstream", "u", "relay.upstream", "the upstream server URL, e.g. https://sentry.io/"},
	{"host", "H", "relay.host", "the interface to listen on, e.g. 0.0.0.0"},
	{"port", "P", "relay.port", "the port to listen on (0 picks a free one)"},
	{"shutdown-timeout", "", "limits.shutdown_timeout", "how long a graceful shutdown may take (seconds or a duration such as 30s)"},
}

func newRunCmd(c *cli) *cobra.Command {
	values := make([]string, len(runFlags))
	var secretKey, publicKey, id, role string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the relay",
		Long: `Run the relay in the foreground until SIGTERM or SIGINT, then shut down gracefully within
limits.shutdown_timeout. It listens on relay.host:relay.port, stores every accepted envelope in
JetStream (an embedded server unless jetstream.url is set) before answering the SDK, and
forwards it to relay.upstream.

Flags override the environment, which overrides config.yml, which overrides the defaults. The
credentials come from --secret-key/--public-key/--id, else RELAY_SECRET_KEY/RELAY_PUBLIC_KEY/
RELAY_ID, else credentials.json.

Modes: managed (the default, as in Sentry Relay) registers with the upstream using the
credentials, and forwards nothing until the upstream accepts its public key (Settings → Relays
in Sentry); it is ready only once registered (unless auth.ready: always). proxy forwards every
well-formed envelope and needs no registration. In both, project files in <config dir>/projects/,
when present, apply to their keys. static accepts only the projects that have a file there
(<project id>.json, Relay's format), re-read every cache.file_interval.

SIGHUP reloads without a restart and without dropping a connection: the project files are read
at once, and config.yml again (with the same environment and flags); its scrub rules and
logging.level take effect. A config.yml that does not validate is refused in one log line and
the running config stays; other changed keys are named in one log line and take effect at the
next start.

Roles: --role all (the default) runs ingest and the workers in one process; --role ingest only
serves the SDK endpoints and stores what it accepts; --role worker only forwards what the
stream holds, and serves the health checks and /metrics on relay.host:relay.port. Run several
of each against one stream on a NATS cluster (jetstream.url). The flag wins over the
ingest.enabled and worker.enabled keys; without it they decide.`,
		Example: `  relay run --mode proxy
  relay run --mode proxy --upstream https://sentry.example.com/ -H 0.0.0.0 -P 3000
  relay -c /etc/relay run --mode static
  RELAY_MODE=proxy relay -c /etc/relay run
  relay -c /etc/relay run --role worker`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			for i, fl := range runFlags {
				if cmd.Flags().Changed(fl.name) {
					if err := cfg.Override(fl.key, values[i], "--"+fl.name); err != nil {
						return usageError{err}
					}
				}
			}
			if cmd.Flags().Changed("role") {
				if err := cfg.SetRole(role, "--role"); err != nil {
					return usageError{err}
				}
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			creds, err := c.runCredentials(cmd, secretKey, publicKey, id)
			if err != nil {
				return err
			}

			log := cfg.Logging.NewLogger(c.errOut)
			applyMemoryLimit(log, os.Getenv)
			fileState := "read"
			if !cfg.FileExists() {
				fileState = "absent, using defaults"
			}
			attrs := []any{
				"config_folder", cfg.Dir(),
				"config_file", fileState,
				"mode", string(cfg.Relay.Mode),
				"role", cfg.Role(),
				"version", relayVersion(),
			}
			if creds != nil {
				attrs = append(attrs, "relay_id", creds.ID.String(), "public_key", creds.PublicKeyString())
			}
			log.Info("launching relay", attrs...)

			if err := app.CheckCredentials(cfg, creds); err != nil {
				return err
			}

			// The first SIGTERM/SIGINT starts the graceful shutdown; after it the default
			// behaviour is back, so a second one stops the process at once.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() {
				<-ctx.Done()
				stop()
			}()
			runApp := c.runApp
			if runApp == nil {
				runApp = app.Run
			}
			return runApp(ctx, cfg, creds, log)
		},
	}
	f := cmd.Flags()
	for i, fl := range runFlags {
		f.StringVarP(&values[i], fl.name, fl.short, "", fl.usage)
	}
	f.StringVar(&role, "role", config.RoleAll, roleUsage)
	f.StringVarP(&secretKey, "secret-key", "s", "", "the relay's secret key (with --id; overrides credentials.json)")
	f.StringVarP(&publicKey, "public-key", "p", "", "the relay's public key (checked against --secret-key)")
	f.StringVarP(&id, "id", "i", "", "the relay id (with --secret-key)")
	return cmd
}

// runCredentials picks the credentials: flags, then RELAY_SECRET_KEY/RELAY_PUBLIC_KEY/RELAY_ID,
// then credentials.json (nil if there are none). A secret key and an id must come together;
// the public key may be left out (it is derived from the secret key).
func (c *cli) runCredentials(cmd *cobra.Command, secretKey, publicKey, id string) (*credentials.Credentials, error) {
	f := cmd.Flags()
	if f.Changed("secret-key") || f.Changed("public-key") || f.Changed("id") {
		if !f.Changed("secret-key") || !f.Changed("id") {
			return nil, usageError{errors.New("--secret-key and --id go together (--public-key is optional)")}
		}
		creds, err := credentials.Parse(secretKey, publicKey, id)
		if err != nil {
			return nil, usageError{fmt.Errorf("--secret-key/--public-key/--id: %w", err)}
		}
		return creds, nil
	}
	envSecret, _ := c.lookupEnv("RELAY_SECRET_KEY")
	envPublic, _ := c.lookupEnv("RELAY_PUBLIC_KEY")
	envID, _ := c.lookupEnv("RELAY_ID")
	if envSecret != "" || envPublic != "" || envID != "" {
		if envSecret == "" || envID == "" {
			return nil, errors.New("RELAY_SECRET_KEY and RELAY_ID go together (RELAY_PUBLIC_KEY is optional)")
		}
		creds, err := credentials.Parse(envSecret, envPublic, envID)
		if err != nil {
			return nil, fmt.Errorf("RELAY_SECRET_KEY/RELAY_PUBLIC_KEY/RELAY_ID: %w", err)
		}
		return creds, nil
	}
	return credentials.Load(c.configDir)
}

const roleUsage = "what this process runs: ingest, worker or all (overrides ingest.enabled and worker.enabled)"
