package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/relayhq/relay/internal/app"
	"github.com/relayhq/relay/scrub"
)

func init() {
	extraCommands = append(extraCommands, newScrubCmd)
}

// scrubItemTypes are the item types `relay scrub --type` accepts: those the worker scrubs as
// JSON.
var scrubItemTypes = []string{"event", "transaction", "feedback", "replay_event", "log", "span", "trace_metric"}

func newScrubCmd(c *cli) *cobra.Command {
	var itemType, key string
	var compact bool
	cmd := &cobra.Command{
		Use:   "scrub [FILE|-]",
		Short: "Scrub an event with the configured PII rules and print the result",
		Long: `Read an event (JSON) from FILE, or from standard input when FILE is "-" or absent, apply the
scrub section of config.yml (data_scrubbing and pii_config) exactly as the running relay does
before forwarding, and print the scrubbed event with its "_meta", which records what was
removed or replaced and by which rule. Use it to try a rule before deploying it.

--type scrubs the payload as another envelope item type (transaction, log, span, …), whose
fields Sentry treats differently.

--key scrubs as the relay does for envelopes of that DSN key: with its project file's
piiConfig and datascrubbingSettings (<config dir>/projects/<id>.json) when it has them, which
then replace the scrub section.`,
		Example: `  relay scrub event.json
  relay -c /etc/relay scrub - < event.json
  relay scrub --type log logs.json
  relay scrub --key 0123456789abcdef0123456789abcdef event.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("\"relay scrub\" takes one FILE (or -), got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			known := false
			for _, t := range scrubItemTypes {
				known = known || t == itemType
			}
			if !known {
				return usageError{fmt.Errorf("--type: %q is not one of %v", itemType, scrubItemTypes)}
			}
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			s, err := app.Scrubber(cfg)
			if err != nil {
				return err
			}
			source := cfg.File()
			if key != "" {
				ps, file, err := app.ProjectScrubber(cfg, key)
				if err != nil {
					return fmt.Errorf("--key: %w", err)
				}
				if ps != nil {
					s, source = ps, file
					fmt.Fprintf(c.errOut, "note: scrubbing with the project settings of %s\n", file)
				}
			}
			name, in := "standard input", c.in
			if len(args) == 1 && args[0] != "-" {
				name = args[0]
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("read %s: %w", args[0], unwrapPathErr(err))
				}
				defer f.Close()
				in = f
			}
			payload, err := io.ReadAll(in)
			if err != nil {
				return fmt.Errorf("read %s: %w", name, err)
			}
			if !json.Valid(payload) {
				return fmt.Errorf("%s is not valid JSON", name)
			}
			if s.Noop() {
				fmt.Fprintf(c.errOut, "note: %s configures no scrubbing; the input is printed unchanged\n", source)
			}
			out, _, err := s.ScrubItem(scrub.Item{Type: itemType}, payload)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			var buf bytes.Buffer
			if compact {
				err = json.Compact(&buf, out)
			} else {
				err = json.Indent(&buf, out, "", "  ")
			}
			if err != nil {
				return fmt.Errorf("scrub produced invalid JSON: %w", err)
			}
			buf.WriteByte('\n')
			if _, err := c.out.Write(buf.Bytes()); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&itemType, "type", "t", "event", "the envelope item type of the payload")
	cmd.Flags().BoolVar(&compact, "compact", false, "print the result on one line")
	cmd.Flags().StringVarP(&key, "key", "k", "", "scrub with the project settings of this DSN public key, as the relay does for its envelopes")
	return cmd
}
