package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/relayhq/relay/internal/status"
)

func init() {
	extraCommands = append(extraCommands, newStatusCmd, newHealthcheckCmd)
}

// relayURL is the address of the running relay a command talks to: --url
// (a URL or host:port) when given, else relay.host:relay.port from the
// config folder with the environment applied (RELAY_HOST, RELAY_PORT), as
// `relay run` on that folder listens. A wildcard host is reached on the
// loopback interface.
func (c *cli) relayURL(flagURL string) (string, error) {
	if flagURL != "" {
		return flagURL, nil
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return "", err
	}
	if cfg.Relay.Port == 0 {
		return "", usageError{fmt.Errorf("%s: relay.port is 0 (the relay picks a free port at start): give the address with --url", cfg.File())}
	}
	host := cfg.Relay.Host
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(cfg.Relay.Port)), nil
}

// probeClient is the HTTP client of status and healthcheck: bounded by
// timeout, no keep-alive (one request, then the process exits).
func probeClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}
}

func newStatusCmd(c *cli) *cobra.Command {
	var (
		flagURL string
		timeout time.Duration
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what a running relay is doing",
		Long: `Ask the running relay for its status and print it: mode, registration (managed mode),
the upstream's state, the stream's depth, the spool's size and oldest envelope, and how many
envelopes per second were accepted, forwarded and spooled over the last minute.

The relay is found at relay.host:relay.port of the config folder (-c/--config, with
RELAY_HOST and RELAY_PORT applied), or at --url. It reads ` + status.JSONPath + `, which the
status page at ` + status.PagePath + ` shows in a browser. Exits 1 when no relay answers.`,
		Example: `  relay status
  relay -c /etc/relay status
  relay status --url http://10.0.0.5:3000 --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			base, err := c.relayURL(flagURL)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			r, err := status.Fetch(ctx, probeClient(timeout), base)
			if err != nil {
				return withURLHint(err, flagURL)
			}
			if asJSON {
				enc := json.NewEncoder(c.out)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			printStatus(c, base, r)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&flagURL, "url", "", "the relay's address (http://host:port or host:port) instead of the config's")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the relay's answer")
	f.BoolVar(&asJSON, "json", false, "print the relay's report as JSON")
	return cmd
}

// printStatus prints the report as aligned lines, one fact each.
func printStatus(c *cli, base string, r *status.Report) {
	roles := []string{}
	if r.Ingest {
		roles = append(roles, "ingest")
	}
	if r.Worker {
		roles = append(roles, "worker")
	}
	now := r.Time
	c.printf("relay %s at %s: %s mode (%s), up %s\n", r.Version, base, r.Mode, strings.Join(roles, " + "), span(now.Sub(r.StartedAt)))
	line := func(k, format string, args ...any) { c.printf("  %-13s "+format+"\n", append([]any{k}, args...)...) }
	if reg := r.Registration; reg != nil {
		if reg.Reason != "" {
			line("registration", "%s: %s", reg.State, reg.Reason)
		} else {
			line("registration", "%s", reg.State)
		}
	}
	up := r.Upstream.State
	if r.Upstream.Denied {
		up += " (denied: 401/403/404 for every key)"
	}
	if r.Upstream.Since != nil {
		up += fmt.Sprintf(", failing since %s (%s)", r.Upstream.Since.Local().Format(time.DateTime), span(now.Sub(*r.Upstream.Since)))
	}
	line("upstream", "%s  %s", up, r.Upstream.URL)
	if s := r.Stream; s.Error != "" {
		line("stream", "unknown: %s", s.Error)
	} else {
		line("stream", "%d messages (%s), %d not yet delivered, %d being forwarded", s.Messages, size(int64(s.Bytes)), s.Pending, s.AckPending)
	}
	if sp := r.Spool; sp != nil {
		oldest := "empty"
		if sp.Oldest != nil {
			oldest = fmt.Sprintf("oldest received %s ago", span(time.Duration(sp.OldestAgeSeconds*float64(time.Second))))
		} else if sp.Records > 0 {
			oldest = "oldest unknown"
		}
		line("spool", "%d records (%s, %s on disk), %s; %d dead letters", sp.Records, size(sp.Bytes), size(sp.DiskBytes), oldest, sp.DeadLetters)
		if sp.Error != "" {
			line("", "%s", sp.Error)
		}
	} else {
		line("spool", "none in this process (no worker)")
	}
	if w := time.Duration(r.Rates.WindowSeconds * float64(time.Second)); w >= time.Second {
		line("per second", "%.2f accepted, %.2f forwarded, %.2f spooled (over the last %s)",
			r.Rates.Accepted, r.Rates.Forwarded, r.Rates.Spooled, span(w))
	} else {
		line("per second", "not measured yet (the relay samples every few seconds)")
	}
	line("since start", "%d accepted, %d forwarded, %d spooled", r.Totals.Accepted, r.Totals.Forwarded, r.Totals.Spooled)
}

// span prints a duration to the second, the way an operator reads it.
func span(d time.Duration) string {
	if d < time.Second {
		return "0s"
	}
	return d.Truncate(time.Second).String()
}

func size(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	v, exp := float64(b)/unit, 0
	for v >= unit && exp < 3 {
		v /= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGT"[exp])
}

func newHealthcheckCmd(c *cli) *cobra.Command {
	var (
		mode    string
		flagURL string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Check whether a running relay is live or ready (for container probes)",
		Long: `Ask the running relay whether it is live (the process serves requests) or ready (it
stores what it accepts, and in managed mode is registered): Sentry Relay's health endpoints
/api/relay/healthcheck/live/ and /api/relay/healthcheck/ready/.

Exits 0 when healthy, 1 when not (or when nothing answers), printing one line why. The relay
is found as by "relay status": the config folder's relay.host:relay.port, or --url (--addr
is the same, in Sentry Relay's spelling).`,
		Example: `  relay healthcheck --mode ready
  relay -c /etc/relay healthcheck --mode live --timeout 2s`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if mode != status.HealthLive && mode != status.HealthReady {
				return usageError{fmt.Errorf("--mode %q: want %s or %s (see '%s --help')", mode, status.HealthLive, status.HealthReady, cmd.CommandPath())}
			}
			base, err := c.relayURL(flagURL)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			client := probeClient(timeout)
			err = status.Health(ctx, client, base, mode)
			if err == nil {
				c.printf("%s: relay at %s is %s\n", mode, base, mode)
				return nil
			}
			if !errors.Is(err, status.ErrUnhealthy) {
				return withURLHint(err, flagURL)
			}
			return fmt.Errorf("not %s: %w%s", mode, err, notReadyWhy(ctx, client, base, mode))
		},
	}
	f := cmd.Flags()
	f.StringVar(&mode, "mode", "", "what to check: live or ready (required)")
	f.StringVar(&flagURL, "url", "", "the relay's address (http://host:port or host:port) instead of the config's")
	f.StringVar(&flagURL, "addr", "", "the same as --url")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the relay's answer")
	return cmd
}

// withURLHint adds, to a failure to reach a relay found through the config
// folder, how to point at one started elsewhere: `relay run --port 3999`
// serves on a port the folder does not name.
func withURLHint(err error, flagURL string) error {
	if flagURL != "" || errors.Is(err, status.ErrUnhealthy) {
		return err
	}
	return fmt.Errorf("%w (the address comes from the config folder's relay.host and relay.port; for a relay started with other flags or elsewhere, pass --url)", err)
}

// notReadyWhy adds what the status report says about a relay that is not
// ready (its registration, or a stream that does not answer); "" when the
// report has nothing to add or cannot be had in time.
func notReadyWhy(ctx context.Context, client *http.Client, base, mode string) string {
	if mode != status.HealthReady {
		return ""
	}
	r, err := status.Fetch(ctx, client, base)
	if err != nil {
		return ""
	}
	var why []string
	if reg := r.Registration; reg != nil && reg.State != "registered" && reg.State != "renewing" {
		why = append(why, fmt.Sprintf("registration %s: %s", reg.State, reg.Reason))
	}
	if r.Stream.Error != "" {
		why = append(why, "stream: "+r.Stream.Error)
	}
	if len(why) == 0 {
		return ""
	}
	return " (" + strings.Join(why, "; ") + ")"
}
