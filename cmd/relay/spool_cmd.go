package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/spool"
)

// The dead-letter commands work on the spool directory directly, never
// through a running relay: they take the spool's lock, so they refuse (and
// say why) while `relay run` holds it, and a relay started meanwhile waits
// for them rather than sharing the files.

// spoolCmdLockTimeout is how long the commands wait for the spool's lock: a
// relay holds it for as long as it runs, so waiting longer only delays the
// refusal.
const spoolCmdLockTimeout = 200 * time.Millisecond

// deadPageSize is how many dead letters the commands read at a time, so a
// listing of the full dead letters (100 MB by default) is not held at once.
const deadPageSize = 256

func newSpoolCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "spool",
		Short: "Inspect the spool and move its envelopes by hand",
		Long: `Inspect the spool: the on-disk store (spool.path, default <config folder>/spool.db) where the
relay keeps envelopes while the upstream is unreachable, and the dead letters it could never
forward. "stats" shows what waits; "drain" sends it upstream now; "export" and "import" move it
to another relay on a disk, exactly once. Like "dead", they refuse while a relay holds the spool.`,
		Args: subcommandArgs,
		RunE: helpIfNoSubcommand,
	}
	cmd.AddCommand(newDeadCmd(c), newSpoolStatsCmd(c), newSpoolDrainCmd(c), newSpoolExportCmd(c), newSpoolImportCmd(c))
	return cmd
}

func newDeadCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dead",
		Short: "List, show, re-send and purge dead letters",
		Long: `Dead letters are envelopes the relay accepted but will not forward on its own: the upstream
rejected them for good (a 4xx other than 429), they waited longer than spool.max_envelope_delay,
or they were found damaged on disk. They are kept, up to spool.max_dead_count and
spool.max_dead_size, until an operator deals with them; at that cap the relay stops taking new
envelopes (it answers 503).

These commands work on the spool folder directly. They refuse while a relay that uses the same
spool.path is running (it holds the spool's lock): stop it, run them, start it again. "retry"
moves dead letters back into the spool, which the next "relay run" sends upstream.`,
		Args: subcommandArgs,
		RunE: helpIfNoSubcommand,
	}
	cmd.AddCommand(newDeadListCmd(c), newDeadShowCmd(c), newDeadRetryCmd(c), newDeadPurgeCmd(c))
	return cmd
}

// openSpool opens the configured spool for an operator command. It returns
// nil (and no error) when there is no spool folder at all, without creating
// one. Damage found on the way is repaired and reported on stderr exactly as
// `relay run` would.
func (c *cli) openSpool() (*spool.Spool, string, error) {
	return c.openSpoolCreate(false)
}

// openSpoolCreate is openSpool; with create it makes a missing spool folder
// instead of returning nil.
func (c *cli) openSpoolCreate(create bool) (*spool.Spool, string, error) {
	cfg, err := c.loadConfig()
	if err != nil {
		return nil, "", err
	}
	if err := cfg.Validate(); err != nil {
		return nil, "", err
	}
	path := cfg.Spool.Path
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && !create {
		return nil, path, nil
	}
	sp, err := spool.Open(path, spool.Options{
		MaxDiskSize:    cfg.Spool.MaxDiskSize.Bytes(),
		MaxBatch:       cfg.Spool.MaxBatch,
		MaxBuried:      cfg.Spool.MaxDeadCount,
		MaxBuriedBytes: cfg.Spool.MaxDeadSize.Bytes(),
		LockTimeout:    spoolCmdLockTimeout,
		Logger:         slog.New(slog.NewTextHandler(c.errOut, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if errors.Is(err, spool.ErrLocked) {
		return nil, path, fmt.Errorf("the spool %s is in use by a running relay (%w); stop it first: these commands work on the spool's files directly", path, err)
	}
	if err != nil {
		return nil, path, err
	}
	return sp, path, nil
}

// closeSpool closes sp, keeping the command's own error first.
func closeSpool(sp *spool.Spool, err *error) {
	if cerr := sp.Close(); cerr != nil && *err == nil {
		*err = cerr
	}
}

// deadLetter is a dead letter as the commands show it: the spool record and,
// when its data decodes, the relay message it holds.
type deadLetter struct {
	rec    spool.Record
	msg    stream.Message
	decErr error // why rec.Data is not a relay message
}

func decodeDeadLetter(rec spool.Record) deadLetter {
	d := deadLetter{rec: rec}
	d.decErr = d.msg.UnmarshalBinary(rec.Data)
	return d
}

// deadJSON is one line of `list --json`.
type deadJSON struct {
	ID        uint64    `json:"id"`
	BuriedAt  time.Time `json:"buried_at"`
	Reason    string    `json:"reason"`
	EventID   string    `json:"event_id,omitempty"`
	ProjectID uint64    `json:"project_id,omitempty"`
	Size      int       `json:"size"`
	Error     string    `json:"error,omitempty"`
}

func (d deadLetter) json() deadJSON {
	j := deadJSON{ID: d.rec.ID, BuriedAt: d.rec.BuriedAt.UTC(), Reason: d.rec.Reason, Size: len(d.rec.Data)}
	if d.decErr != nil {
		j.Error = "not a relay message: " + d.decErr.Error()
		return j
	}
	j.EventID, j.ProjectID, j.Size = d.msg.EventID, d.msg.ProjectID, len(d.msg.Envelope)
	return j
}

// eachDead calls fn for every dead letter, oldest first, a page at a time.
func eachDead(sp *spool.Spool, fn func(spool.Record) error) error {
	var from uint64
	for {
		page, err := sp.BuriedFrom(from, deadPageSize)
		if err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < deadPageSize {
			return nil
		}
		from = page[len(page)-1].ID + 1
	}
}

func newDeadListCmd(c *cli) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the dead letters",
		Long: `List the dead letters, oldest first: id, when it was buried (UTC), project, event id, envelope
size in bytes and why. With --json, one JSON object per line instead (id, buried_at, reason,
event_id, project_id, size; error when the stored data is not a relay message).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			sp, path, err := c.openSpool()
			if err != nil {
				return err
			}
			if sp == nil {
				if !asJSON {
					c.printf("No dead letters (no spool at %s)\n", path)
				}
				return nil
			}
			defer closeSpool(sp, &err)
			if asJSON {
				enc := json.NewEncoder(c.out)
				return eachDead(sp, func(r spool.Record) error { return enc.Encode(decodeDeadLetter(r).json()) })
			}
			tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
			n := 0
			err = eachDead(sp, func(r spool.Record) error {
				if n == 0 {
					fmt.Fprintln(tw, "ID\tBURIED AT\tPROJECT\tEVENT ID\tSIZE\tREASON")
				}
				n++
				j := decodeDeadLetter(r).json()
				project, event := "-", orDash(j.EventID)
				if j.Error == "" {
					project = strconv.FormatUint(j.ProjectID, 10)
				}
				reason := j.Reason
				if j.Error != "" {
					reason += " (" + j.Error + ")"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", j.ID, j.BuriedAt.Format(time.RFC3339), project, event, j.Size, oneLine(reason))
				return nil
			})
			if err != nil {
				return err
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if n == 0 {
				c.printf("No dead letters in %s\n", path)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per dead letter and line")
	return cmd
}

// orDash shows an empty field as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a reason (which may quote an upstream's answer) on its line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// parseIDs parses dead-letter ids given as arguments.
func parseIDs(args []string) ([]uint64, error) {
	ids := make([]uint64, 0, len(args))
	for _, a := range args {
		id, err := strconv.ParseUint(a, 10, 64)
		if err != nil || id == 0 {
			return nil, usageError{fmt.Errorf("%q is not a dead letter id (a positive number, as \"relay spool dead list\" shows)", a)}
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func newDeadShowCmd(c *cli) *cobra.Command {
	var withPayload bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one dead letter",
		Long: `Show one dead letter: why and when it was buried, what the relay knew of the request, the
envelope header and each item's header. Item payloads can hold personal data and are printed
only with --payload (then the whole envelope, as it would be sent upstream).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("%q takes one dead letter id, got %d arguments (see '%s --help')", cmd.CommandPath(), len(args), cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			ids, err := parseIDs(args)
			if err != nil {
				return err
			}
			sp, path, err := c.openSpool()
			if err != nil {
				return err
			}
			if sp == nil {
				return fmt.Errorf("no dead letter %d (no spool at %s)", ids[0], path)
			}
			defer closeSpool(sp, &err)
			recs, err := sp.BuriedFrom(ids[0], 1)
			if err != nil {
				return err
			}
			if len(recs) == 0 || recs[0].ID != ids[0] {
				return fmt.Errorf("no dead letter %d in %s", ids[0], path)
			}
			return c.showDead(decodeDeadLetter(recs[0]), withPayload)
		},
	}
	cmd.Flags().BoolVar(&withPayload, "payload", false, "also print the item payloads (they can hold personal data)")
	return cmd
}

func (c *cli) showDead(d deadLetter, withPayload bool) error {
	c.printf("id: %d\n", d.rec.ID)
	c.printf("buried at: %s\n", d.rec.BuriedAt.UTC().Format(time.RFC3339Nano))
	c.printf("reason: %s\n", oneLine(d.rec.Reason))
	if d.decErr != nil {
		c.printf("data: %d bytes, not a relay message (%v); it cannot be sent again\n", len(d.rec.Data), d.decErr)
		return nil
	}
	m := d.msg
	c.printf("project: %d\n", m.ProjectID)
	c.printf("event id: %s\n", orDash(m.EventID))
	c.printf("public key: %s\n", orDash(m.PublicKey))
	c.printf("received at: %s\n", m.ReceivedAt.UTC().Format(time.RFC3339Nano))
	c.printf("client: %s\n", orDash(m.Client))
	c.printf("user agent: %s\n", orDash(m.UserAgent))
	c.printf("origin: %s\n", orDash(m.Origin))
	c.printf("remote addr: %s\n", orDash(m.RemoteAddr))
	c.printf("size: %d bytes\n", len(m.Envelope))
	hdr, items, err := envelopeHeaders(m.Envelope)
	if err != nil {
		c.printf("envelope: does not parse (%v)\n", err)
	} else {
		c.printf("envelope header: %s\n", hdr)
		for i, it := range items {
			c.printf("item %d: %s (%d bytes)\n", i+1, it.header, it.size)
		}
	}
	if withPayload {
		c.printf("envelope:\n")
		if _, err := c.out.Write(m.Envelope); err != nil {
			return err
		}
		if !bytes.HasSuffix(m.Envelope, []byte("\n")) {
			c.printf("\n")
		}
	}
	return nil
}

type itemHeader struct {
	header string // compact JSON
	size   int    // payload bytes
}

// envelopeHeaders returns an envelope's header and item headers as compact
// JSON, without the payloads. envelope.Parse validates the envelope and gives
// the payload sizes; the raw headers are read with encoding/json at the
// offsets the format puts them (header, "\n", then per item: header, "\n",
// payload, "\n").
func envelopeHeaders(body []byte) (string, []itemHeader, error) {
	env, err := envelope.Parse(body)
	if err != nil {
		return "", nil, err
	}
	pos := 0
	next := func() (string, error) {
		dec := json.NewDecoder(bytes.NewReader(body[pos:]))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", fmt.Errorf("header at byte %d: %w", pos, err)
		}
		pos += int(dec.InputOffset())
		if pos < len(body) && body[pos] == '\n' {
			pos++
		}
		var out bytes.Buffer
		if err := json.Compact(&out, raw); err != nil {
			return "", err
		}
		return out.String(), nil
	}
	hdr, err := next()
	if err != nil {
		return "", nil, err
	}
	items := make([]itemHeader, 0, len(env.Items))
	for _, it := range env.Items {
		h, err := next()
		if err != nil {
			return "", nil, err
		}
		items = append(items, itemHeader{header: h, size: len(it.Payload)})
		pos += len(it.Payload)
		if pos < len(body) && body[pos] == '\n' {
			pos++
		}
	}
	return hdr, items, nil
}

// selectDead returns the ids a retry or purge acts on: the ones given, or
// with all every dead letter's.
func selectDead(sp *spool.Spool, args []string, all bool) ([]uint64, error) {
	if !all {
		return parseIDs(args)
	}
	var ids []uint64
	err := eachDead(sp, func(r spool.Record) error {
		ids = append(ids, r.ID)
		return nil
	})
	return ids, err
}

func idsOrAll(verb string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		all, _ := cmd.Flags().GetBool("all")
		switch {
		case all && len(args) > 0:
			return usageError{fmt.Errorf("give dead letter ids or --all, not both (see '%s --help')", cmd.CommandPath())}
		case !all && len(args) == 0:
			return usageError{fmt.Errorf("which dead letters to %s? give their ids or --all (see '%s --help')", verb, cmd.CommandPath())}
		}
		_, err := parseIDs(args)
		return err
	}
}

func newDeadRetryCmd(c *cli) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "retry (ID... | --all)",
		Short: "Move dead letters back into the spool, to be sent again",
		Long: `Move dead letters back into the spool's live records; the next "relay run" sends them upstream
(fix what made the upstream reject them first). Each batch is stored in the spool before it is
deleted from the dead letters, so an interruption can leave an envelope in both (it is then sent
once and stays a dead letter), never in neither. Dead letters whose data is damaged, or is not
a relay message, are refused. The spool's max_disk_size applies.`,
		Example: `  relay spool dead retry 12 13
  relay spool dead retry --all`,
		Args: idsOrAll("retry"),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			sp, path, err := c.openSpool()
			if err != nil {
				return err
			}
			if sp == nil {
				return fmt.Errorf("no dead letters (no spool at %s)", path)
			}
			defer closeSpool(sp, &err)
			ids, err := selectDead(sp, args, all)
			if err != nil {
				return err
			}
			// Check everything first, so that a bad id moves nothing.
			for _, id := range ids {
				recs, err := sp.BuriedFrom(id, 1)
				if err != nil {
					return err
				}
				if len(recs) == 0 || recs[0].ID != id {
					return fmt.Errorf("no dead letter %d in %s; nothing was moved", id, path)
				}
				if d := decodeDeadLetter(recs[0]); d.decErr != nil {
					return fmt.Errorf("dead letter %d is not a relay message (%v) and cannot be sent again; nothing was moved", id, d.decErr)
				}
			}
			moved := 0
			for len(ids) > 0 {
				n := min(len(ids), deadPageSize)
				if err := sp.Unbury(cmd.Context(), ids[:n]...); err != nil {
					if moved > 0 {
						return fmt.Errorf("%w (%d dead letters had been moved back before)", err, moved)
					}
					return err
				}
				moved += n
				ids = ids[n:]
			}
			c.printf("Moved %d dead letters back into the spool; the next \"relay run\" sends them upstream\n", moved)
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "retry every dead letter")
	return cmd
}

func newDeadPurgeCmd(c *cli) *cobra.Command {
	var all, yes bool
	cmd := &cobra.Command{
		Use:   "purge (ID... | --all)",
		Short: "Delete dead letters for good",
		Long: `Delete dead letters for good. On a terminal it asks for confirmation unless --yes is given;
without a terminal --yes is required.`,
		Example: `  relay spool dead purge 12 13
  relay spool dead purge --all --yes`,
		Args: idsOrAll("purge"),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			if !yes && !c.isTerminal() {
				return usageError{errors.New("not purging dead letters without confirmation: pass --yes")}
			}
			sp, path, err := c.openSpool()
			if err != nil {
				return err
			}
			if sp == nil {
				return fmt.Errorf("no dead letters (no spool at %s)", path)
			}
			defer closeSpool(sp, &err)
			ids, err := selectDead(sp, args, all)
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				c.printf("No dead letters in %s\n", path)
				return nil
			}
			for _, id := range ids {
				recs, err := sp.BuriedFrom(id, 1)
				if err != nil {
					return err
				}
				if len(recs) == 0 || recs[0].ID != id {
					return fmt.Errorf("no dead letter %d in %s; nothing was purged", id, path)
				}
			}
			if !yes {
				ok, err := newPrompter(c.in, c.out).confirm(fmt.Sprintf("Delete %d dead letters for good?", len(ids)), false)
				if err != nil {
					return err
				}
				if !ok {
					c.printf("Nothing was purged\n")
					return nil
				}
			}
			for rest := ids; len(rest) > 0; {
				n := min(len(rest), deadPageSize)
				if err := sp.DeleteBuried(rest[:n]...); err != nil {
					return err
				}
				rest = rest[n:]
			}
			c.printf("Purged %d dead letters\n", len(ids))
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "purge every dead letter")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
