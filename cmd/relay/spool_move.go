package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/relayhq/relay/internal/app"
	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/spool"
	"github.com/relayhq/relay/worker"
)

// The commands that move a spool's records by hand — stats, drain, export,
// import — work on the spool folder directly, like `relay spool dead`: they
// take the spool's lock, so they refuse while a relay holds it.

// spoolStats is what `relay spool stats` reports (its --json form).
type spoolStats struct {
	Path        string         `json:"path"`
	Records     int64          `json:"records"`
	Bytes       int64          `json:"bytes"`
	DiskBytes   int64          `json:"disk_bytes"`
	Segments    int            `json:"segments"`
	Oldest      *time.Time     `json:"oldest,omitempty"` // when ingest accepted the oldest envelope
	Newest      *time.Time     `json:"newest,omitempty"`
	Undecodable int64          `json:"undecodable,omitempty"` // records that are not relay messages
	Projects    []projectStats `json:"projects"`
	DeadLetters int64          `json:"dead_letters"`
	DeadBytes   int64          `json:"dead_bytes"`
}

type projectStats struct {
	Project uint64 `json:"project"`
	Records int64  `json:"records"`
	Bytes   int64  `json:"bytes"`
}

// collectStats reads every live record once (a page at a time) for the ages
// and the per-project counts.
func collectStats(sp *spool.Spool, path string) (spoolStats, error) {
	st := sp.Stats()
	out := spoolStats{Path: path, Records: st.Records, Bytes: st.Bytes, DiskBytes: st.DiskBytes,
		Segments: st.Segments, DeadLetters: st.Buried, DeadBytes: st.BuriedBytes, Projects: []projectStats{}}
	byProject := map[uint64]*projectStats{}
	var after uint64
	for {
		recs, err := sp.OldestAfter(after, deadPageSize)
		if err != nil {
			return out, err
		}
		for _, r := range recs {
			var m stream.Message
			if err := m.UnmarshalBinary(r.Data); err != nil {
				out.Undecodable++
				continue
			}
			p := byProject[m.ProjectID]
			if p == nil {
				p = &projectStats{Project: m.ProjectID}
				byProject[m.ProjectID] = p
			}
			p.Records++
			p.Bytes += int64(len(r.Data))
			if t := m.ReceivedAt; !t.IsZero() {
				if out.Oldest == nil || t.Before(*out.Oldest) {
					out.Oldest = &t
				}
				if out.Newest == nil || t.After(*out.Newest) {
					out.Newest = &t
				}
			}
		}
		if len(recs) < deadPageSize {
			break
		}
		after = recs[len(recs)-1].ID
	}
	for _, p := range byProject {
		out.Projects = append(out.Projects, *p)
	}
	sort.Slice(out.Projects, func(i, j int) bool { return out.Projects[i].Project < out.Projects[j].Project })
	return out, nil
}

func newSpoolStatsCmd(c *cli) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Show what the spool holds",
		Long: `Show what the spool holds: envelopes and their bytes, the files on disk, when the oldest and
the newest envelope were accepted (and how long ago), envelopes per project, and the dead
letters. It reads every envelope once, so it takes a moment on a large spool. With --json,
one JSON object instead.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			sp, path, err := c.openSpool()
			if err != nil {
				return err
			}
			if sp == nil {
				if asJSON {
					return json.NewEncoder(c.out).Encode(spoolStats{Path: path, Projects: []projectStats{}})
				}
				c.printf("No spool at %s: nothing is waiting\n", path)
				return nil
			}
			defer closeSpool(sp, &err)
			st, err := collectStats(sp, path)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(c.out).Encode(st)
			}
			c.printStats(st, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func (c *cli) printStats(st spoolStats, now time.Time) {
	c.printf("spool: %s\n", st.Path)
	c.printf("envelopes: %d (%s)\n", st.Records, config.ByteSize(st.Bytes))
	c.printf("on disk: %s (%d segment files and the dead letters)\n", config.ByteSize(st.DiskBytes), st.Segments)
	age := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), now.Sub(*t).Round(time.Second))
	}
	c.printf("oldest: %s\n", age(st.Oldest))
	c.printf("newest: %s\n", age(st.Newest))
	if st.Undecodable > 0 {
		c.printf("not relay messages: %d (a relay moves them to the dead letters)\n", st.Undecodable)
	}
	c.printf("dead letters: %d (%s); see \"relay spool dead list\"\n", st.DeadLetters, config.ByteSize(st.DeadBytes))
	if len(st.Projects) > 0 {
		tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PROJECT\tENVELOPES\tBYTES")
		for _, p := range st.Projects {
			fmt.Fprintf(tw, "%d\t%d\t%d\n", p.Project, p.Records, p.Bytes)
		}
		_ = tw.Flush()
	}
}

// progress shows how far a long command got: a bar redrawn in place on a
// terminal, else a plain line at most every interval (and the last one).
type progress struct {
	w        io.Writer
	tty      bool
	width    int
	verb     string // "sent", "written", "stored"
	total    int64
	interval time.Duration
	now      func() time.Time
	last     time.Time
	drawn    bool
}

func (c *cli) newProgress(verb string, total int64) *progress {
	tty, width := false, 80
	if f, ok := c.out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tty = true
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 20 {
			width = w
		}
	}
	return &progress{w: c.out, tty: tty, width: width, verb: verb, total: total, interval: time.Second, now: time.Now}
}

// update shows done of total; extra is appended (e.g. "3 buried").
func (p *progress) update(done int64, extra string, final bool) {
	now := p.now()
	if !final && !p.tty && p.drawn && now.Sub(p.last) < p.interval {
		return
	}
	if !final && p.tty && p.drawn && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last, p.drawn = now, true
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(done) / float64(p.total)
	}
	text := fmt.Sprintf("%d/%d %s (%.0f%%)", done, p.total, p.verb, pct)
	if extra != "" {
		text += ", " + extra
	}
	if !p.tty {
		fmt.Fprintln(p.w, text)
		return
	}
	barWidth := max(p.width-len(text)-4, 10)
	fill := int(float64(barWidth) * min(pct, 100) / 100)
	fmt.Fprintf(p.w, "\r[%s%s] %s", strings.Repeat("#", fill), strings.Repeat(".", barWidth-fill), text)
	if final {
		fmt.Fprintln(p.w)
	}
}

func newSpoolDrainCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "drain",
		Short: "Send what the spool holds to the upstream now",
		Long: `Send every envelope the spool holds to relay.upstream now, oldest first, and delete each one
only after the upstream accepted it. The upstream's answers are treated as a running relay
treats them: a 429 is waited out, an envelope rejected for good (400, 413, ...) goes to the
dead letters, and failures are retried until they last longer than http.outage_grace_period —
then the drain stops and what is left stays in the spool. Run it where the relay is stopped
(or on a machine that has the spool's folder); it signs its requests with the relay's
credentials but does not register. A progress bar on a terminal, progress lines otherwise.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			creds, err := c.runCredentials(cmd, "", "", "")
			if err != nil {
				return err
			}
			sp, path, err := c.openSpool()
			if err != nil {
				return err
			}
			if sp == nil {
				c.printf("Nothing to drain (no spool at %s)\n", path)
				return nil
			}
			defer closeSpool(sp, &err)
			total := sp.Stats().Records
			if total == 0 {
				c.printf("Nothing to drain: the spool at %s is empty\n", path)
				return nil
			}
			c.printf("Draining %d envelopes from %s to %s\n", total, path, cfg.Relay.Upstream)
			bar := c.newProgress("sent", total)
			show := func(p worker.DrainProgress, final bool) {
				extra := ""
				if p.Buried > 0 {
					extra = fmt.Sprintf("%d moved to the dead letters", p.Buried)
				}
				bar.update(p.Sent+p.Buried, extra, final)
			}
			log := cfg.Logging.NewLogger(c.errOut)
			done, err := app.DrainSpool(cmd.Context(), cfg, creds, sp, log, func(p worker.DrainProgress) { show(p, false) })
			show(done, true)
			left := sp.Stats().Records
			if err != nil {
				return fmt.Errorf("%w; %d envelopes sent, %d left in the spool", err, done.Sent, left)
			}
			c.printf("Drained: %d envelopes sent, %d moved to the dead letters, %d left in the spool\n", done.Sent, done.Buried, left)
			return nil
		},
	}
}

func newSpoolExportCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "export FILE",
		Short: "Move the spool's envelopes into a file, to send them from another relay",
		Long: `Move every envelope the spool holds into FILE (which must not exist), to carry it to another
relay that sends it on with "relay spool import FILE". The file has a version, a checksum per
envelope and an end marker, and is written to FILE.partial, fsynced, then renamed. Envelopes
leave the spool only once the file is complete: an export cut short leaves them in the spool
(run it again), and one cut short after that point is finished the next time the spool is
opened — by a command or by "relay run" — so that every envelope is in the spool or in the
file, exactly once. Dead letters stay (move them back first with "relay spool dead retry").`,
		Example: `  relay spool export /mnt/usb/site-a.relayspool`,
		Args:    oneFileArg,
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			sp, path, err := c.openSpool()
			if err != nil {
				return err
			}
			if sp == nil {
				return fmt.Errorf("nothing to export: no spool at %s", path)
			}
			defer closeSpool(sp, &err)
			total := sp.Stats().Records
			bar := c.newProgress("written", total)
			res, err := sp.Export(cmd.Context(), args[0], func(n uint64) { bar.update(int64(n), "", false) })
			if errors.Is(err, spool.ErrNothingToExport) {
				return fmt.Errorf("nothing to export: the spool at %s holds no envelopes", path)
			}
			if err != nil {
				return err
			}
			bar.update(int64(res.Records), "", true)
			c.printf("Exported %d envelopes (%s) to %s (file id %s); they are no longer in %s.\n"+
				"On the relay that sends them on: relay spool import %s\n",
				res.Records, config.ByteSize(res.Bytes), res.Path, res.ID, path, res.Path)
			return nil
		},
	}
}

func newSpoolImportCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE",
		Short: "Store the envelopes of an exported file in this relay's spool",
		Long: `Store the envelopes of FILE (written by "relay spool export") in this relay's spool; the next
"relay run" (or "relay spool drain") sends them upstream, oldest first. The whole file is
checked first — every envelope's checksum and the end marker — and a damaged or incomplete
file stores nothing. The spool records the file's id with the envelopes it stores, so an
import cut short goes on where it stopped when run again, and a file imported before is not
imported twice. spool.max_disk_size applies: when the spool is full the import stops and can
be run again once there is room.`,
		Example: `  relay spool import /mnt/usb/site-a.relayspool`,
		Args:    oneFileArg,
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			sp, path, err := c.openSpoolCreate(true)
			if err != nil {
				return err
			}
			defer closeSpool(sp, &err)
			info, err := spool.StatTransfer(args[0])
			if err != nil {
				return fmt.Errorf("nothing was stored: %w", err)
			}
			bar := c.newProgress("stored", int64(info.Records))
			check := func(data []byte) error {
				var m stream.Message
				if err := m.UnmarshalBinary(data); err != nil {
					return fmt.Errorf("not a relay message: %w", err)
				}
				return nil
			}
			res, err := sp.Import(cmd.Context(), args[0], check, func(n uint64) { bar.update(int64(n), "", false) })
			if err != nil {
				return err
			}
			if res.AlreadyImported() {
				c.printf("Already imported: the %d envelopes of %s (file id %s) were stored in %s before; nothing was stored\n",
					res.Info.Records, args[0], res.Info.ID, path)
				return nil
			}
			bar.update(int64(res.Before+res.Stored), "", true)
			msg := fmt.Sprintf("Imported %d envelopes (%s) from %s (file id %s) into %s", res.Stored, config.ByteSize(res.Info.Bytes), args[0], res.Info.ID, path)
			if res.Before > 0 {
				msg += fmt.Sprintf("; %d had been stored by an earlier import of the same file", res.Before)
			}
			c.printf("%s; the next \"relay run\" sends them upstream\n", msg)
			return nil
		},
	}
}

func oneFileArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 || args[0] == "" {
		return usageError{fmt.Errorf("%q takes one file, got %d arguments (see '%s --help')", cmd.CommandPath(), len(args), cmd.CommandPath())}
	}
	return nil
}
