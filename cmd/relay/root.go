package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/relayhq/relay/internal/app"
	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/credentials"
)

// relayVersion is the version the relay reports: in the start-up banner, in
// `relay --version` and (through internal/app) in every answer's Server
// header. app.Version is its only source, so one
// -ldflags "-X github.com/relayhq/relay/internal/app.Version=…" sets them all.
func relayVersion() string { return app.Version }

// cli is what the commands talk to: standard streams, the environment and the terminal test
// are fields so tests can run every command in-process.
type cli struct {
	in         io.Reader
	out        io.Writer
	errOut     io.Writer
	isTerminal func() bool                 // whether prompts may be shown (stdin is a terminal)
	lookupEnv  func(string) (string, bool) // os.LookupEnv outside tests
	runApp     func(context.Context, *config.Config, *credentials.Credentials, *slog.Logger) error

	configDir string // -c/--config
}

func newStdCLI() *cli {
	return &cli{
		in:         os.Stdin,
		out:        os.Stdout,
		errOut:     os.Stderr,
		isTerminal: func() bool { return term.IsTerminal(int(os.Stdin.Fd())) },
		lookupEnv:  os.LookupEnv,
	}
}

// extraCommands are added by files that depend on packages outside this folder (run.go on
// internal/app), so the rest of the command line builds without them.
var extraCommands []func(*cli) *cobra.Command

// usageError marks a mistake in how the command was called (exit status 2, like flag parsing
// errors everywhere) as opposed to a failure while doing it (exit status 1).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func newRootCmd(c *cli) *cobra.Command {
	root := &cobra.Command{
		Use:   "relay",
		Short: "A Sentry-compatible store-and-forward relay",
		Long: `relay receives events from Sentry SDKs, stores each one durably before answering the SDK,
and forwards it to Sentry (or another relay), retrying and spooling to disk while the upstream
is unreachable. Its command line, config.yml and credentials.json follow Sentry Relay's.

The config folder (-c/--config, default .relay in the working directory) holds config.yml,
credentials.json and, unless configured elsewhere, the relay's stored data. Without a
config.yml the defaults apply, so "relay run --mode proxy" works on an empty folder.

Configuration precedence, highest first: command-line flags, the environment variables
RELAY_MODE, RELAY_UPSTREAM_URL, RELAY_HOST, RELAY_PORT, RELAY_LOG_LEVEL and RELAY_LOG_FORMAT,
config.yml, the built-in defaults ("relay config show" prints the result).`,
		Version:           relayVersion(),
		SilenceUsage:      true,
		SilenceErrors:     true,
		Args:              subcommandArgs,
		RunE:              helpIfNoSubcommand,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetIn(c.in)
	root.SetOut(c.out)
	root.SetErr(c.errOut)
	root.SetVersionTemplate("relay {{.Version}}\n")
	root.PersistentFlags().StringVarP(&c.configDir, "config", "c", config.DefaultDir, "the config folder (config.yml, credentials.json, default data location)")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())}
	})

	root.AddCommand(newConfigCmd(c), newCredentialsCmd(c), newSpoolCmd(c), newCompletionsCmd(c))
	for _, add := range extraCommands {
		root.AddCommand(add(c))
	}
	return root
}

// subcommandArgs rejects arguments to a command that only groups subcommands: such an
// argument is a mistyped subcommand.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if sugg := cmd.SuggestionsFor(args[0]); len(sugg) > 0 {
		for i, s := range sugg {
			sugg[i] = fmt.Sprintf("%q", s)
		}
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(sugg, " or "))
	}
	return usageError{errors.New(msg)}
}

// noArgs rejects positional arguments to a command that takes none.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%q takes no arguments, got %q (see '%s --help')", cmd.CommandPath(), args[0], cmd.CommandPath())}
	}
	return nil
}

// helpIfNoSubcommand shows the help of a command that only groups subcommands.
func helpIfNoSubcommand(cmd *cobra.Command, _ []string) error {
	return cmd.Help()
}

// execute runs the command line and returns the process exit status. Errors are printed as
// "error: …" on stderr: one line, plus one indented line per further configuration problem.
func execute(ctx context.Context, args []string, c *cli) int {
	root := newRootCmd(c)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	lines := errorLines(err)
	fmt.Fprintf(c.errOut, "error: %s\n", lines[0])
	for _, l := range lines[1:] {
		fmt.Fprintf(c.errOut, "  %s\n", l)
	}
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// errorLines turns an error into the lines to print.
func errorLines(err error) []string {
	msg := strings.TrimSpace(err.Error())
	var lines []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		lines = []string{"failed"}
	}
	return lines
}

// loadConfig reads the config folder with the environment applied (not yet validated).
func (c *cli) loadConfig() (*config.Config, error) {
	return config.LoadWithEnv(c.configDir, c.lookupEnv)
}

func (c *cli) printf(format string, args ...any) {
	fmt.Fprintf(c.out, format, args...)
}
