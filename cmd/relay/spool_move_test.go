package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/spool"
)

// liveMessage is a relay message as the worker spools it, with event id
// derived from i.
func liveMessage(t *testing.T, i int, project uint64, at time.Time, pad int) []byte {
	t.Helper()
	id := fmt.Sprintf("%032x", i+1)
	payload := fmt.Sprintf(`{"message":"m%d%s"}`, i, strings.Repeat("x", pad))
	env := fmt.Sprintf("{\"event_id\":\"%s\"}\n{\"type\":\"event\",\"length\":%d}\n%s\n", id, len(payload), payload)
	m := stream.Message{ProjectID: project, PublicKey: "e12d836b15bb49d7bbf99e64295d995b", Client: "sentry.go/0.30.0",
		Version: 7, ReceivedAt: at, EventID: id, Envelope: []byte(env)}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// liveFixture is a config folder (proxy mode towards upstream) whose spool
// holds n relay messages, every third for project 43, the rest for 42,
// accepted one minute apart ending at newest.
func liveFixture(t *testing.T, n int, upstream string, newest time.Time, pad int) (dir, spoolDir string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), ".relay")
	spoolDir = filepath.Join(dir, "spool.db")
	if upstream == "" {
		upstream = "http://127.0.0.1:9/"
	}
	writeFile(t, filepath.Join(dir, "config.yml"), fmt.Sprintf(
		"relay:\n  mode: proxy\n  upstream: %s\nhttp:\n  retry_delay: 20ms\n  max_retry_interval: 200ms\n  outage_grace_period: 300ms\nlogging:\n  level: error\n", upstream))
	sp, err := spool.Open(spoolDir, spool.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	batch := make([][]byte, 0, 256)
	for i := range n {
		project := uint64(42)
		if i%3 == 2 {
			project = 43
		}
		batch = append(batch, liveMessage(t, i, project, newest.Add(-time.Duration(n-1-i)*time.Minute), pad))
		if len(batch) == cap(batch) || i == n-1 {
			if err := sp.PutBatch(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, spoolDir
}

// eventIDs returns the event ids of a spool's live records, in order.
func eventIDs(t *testing.T, spoolDir string) []string {
	t.Helper()
	sp, err := spool.Open(spoolDir, spool.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sp.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	var ids []string
	var after uint64
	for {
		recs, err := sp.OldestAfter(after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return ids
		}
		for _, r := range recs {
			var m stream.Message
			if err := m.UnmarshalBinary(r.Data); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, m.EventID)
		}
		after = recs[len(recs)-1].ID
	}
}

func TestSpoolStats(t *testing.T) {
	newest := time.Now().Add(-time.Hour).Truncate(time.Second)
	dir, spoolDir := liveFixture(t, 9, "", newest, 0)
	sp, err := spool.Open(spoolDir, spool.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Bury(context.Background(), []byte("x"), "test"); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	r := run(t, runOpts{}, "-c", dir, "spool", "stats")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("stats: %+v", r)
	}
	for _, want := range []string{
		"spool: " + spoolDir + "\n", "envelopes: 9 (",
		"oldest: " + newest.Add(-8*time.Minute).UTC().Format(time.RFC3339) + " (1h8m",
		"newest: " + newest.UTC().Format(time.RFC3339) + " (1h0m",
		"dead letters: 1 (",
		"PROJECT  ENVELOPES  BYTES\n42       6  ", "\n43       3  ",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stats lacks %q:\n%s", want, r.stdout)
		}
	}
	r = run(t, runOpts{}, "-c", dir, "spool", "stats", "--json")
	var st spoolStats
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
		t.Fatalf("stats --json: %+v: %v", r, err)
	}
	if st.Records != 9 || st.DeadLetters != 1 || len(st.Projects) != 2 || st.Projects[1].Records != 3 ||
		st.Oldest == nil || !st.Oldest.Equal(newest.Add(-8*time.Minute)) || st.Bytes == 0 || st.DiskBytes == 0 {
		t.Fatalf("stats --json = %+v", st)
	}

	empty := filepath.Join(t.TempDir(), ".relay")
	r = run(t, runOpts{}, "-c", empty, "spool", "stats")
	if r.code != 0 || !strings.Contains(r.stdout, "No spool at ") {
		t.Fatalf("stats without a spool: %+v", r)
	}
}

// Export on one relay, import on another: every envelope moves exactly
// once, and importing the same file again stores nothing.
func TestSpoolExportImport(t *testing.T) {
	srcDir, srcSpool := liveFixture(t, 600, "", time.Now(), 100)
	want := eventIDs(t, srcSpool)
	file := filepath.Join(t.TempDir(), "site-a.relayspool")

	oneErrorLine(t, run(t, runOpts{}, "-c", srcDir, "spool", "export"), 2, "takes one file")
	oneErrorLine(t, run(t, runOpts{}, "-c", srcDir, "spool", "export", filepath.Join(t.TempDir(), "no", "such", "dir", "f")), 1, "nothing was removed from the spool")
	if got := eventIDs(t, srcSpool); len(got) != len(want) {
		t.Fatalf("a failed export removed records: %d left of %d", len(got), len(want))
	}

	r := run(t, runOpts{}, "-c", srcDir, "spool", "export", file)
	if r.code != 0 || !strings.Contains(r.stdout, "Exported 600 envelopes") || !strings.Contains(r.stdout, "relay spool import "+file) {
		t.Fatalf("export: %+v", r)
	}
	if !strings.Contains(r.stdout, "600/600 written (100%)\n") {
		t.Fatalf("export printed no progress line:\n%s", r.stdout)
	}
	if got := eventIDs(t, srcSpool); len(got) != 0 {
		t.Fatalf("%d records still in the exported spool", len(got))
	}
	oneErrorLine(t, run(t, runOpts{}, "-c", srcDir, "spool", "export", file+"2"), 1, "nothing to export")

	dstDir := filepath.Join(t.TempDir(), ".relay") // a relay that never ran: no spool folder yet
	writeFile(t, filepath.Join(dstDir, "config.yml"), "relay:\n  mode: proxy\n")
	r = run(t, runOpts{}, "-c", dstDir, "spool", "import", file)
	if r.code != 0 || !strings.Contains(r.stdout, "Imported 600 envelopes") {
		t.Fatalf("import: %+v", r)
	}
	dstSpool := filepath.Join(dstDir, "spool.db")
	if got := eventIDs(t, dstSpool); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("imported records differ from the exported ones (%d vs %d)", len(got), len(want))
	}
	r = run(t, runOpts{}, "-c", dstDir, "spool", "import", file)
	if r.code != 0 || !strings.Contains(r.stdout, "Already imported: the 600 envelopes") {
		t.Fatalf("second import: %+v", r)
	}
	if got := eventIDs(t, dstSpool); len(got) != len(want) {
		t.Fatalf("a repeated import changed the spool: %d records, want %d", len(got), len(want))
	}

	// A damaged file stores nothing.
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	bad := filepath.Join(t.TempDir(), "bad.relayspool")
	writeFile(t, bad, string(b))
	other := filepath.Join(t.TempDir(), ".relay")
	writeFile(t, filepath.Join(other, "config.yml"), "relay:\n  mode: proxy\n")
	oneErrorLine(t, run(t, runOpts{}, "-c", other, "spool", "import", bad), 1, "nothing was stored")
	if got := eventIDs(t, filepath.Join(other, "spool.db")); len(got) != 0 {
		t.Fatalf("a damaged file stored %d records", len(got))
	}
}

func TestSpoolDrainCmd(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	dir, spoolDir := liveFixture(t, 50, up.URL(), time.Now(), 0)
	want := eventIDs(t, spoolDir)
	up.SetMode(fakesentry.Rejecting(400, "bad", 1))
	r := run(t, runOpts{}, "-c", dir, "spool", "drain")
	if r.code != 0 || !strings.Contains(r.stdout, "Drained: 49 envelopes sent, 1 moved to the dead letters, 0 left in the spool\n") {
		t.Fatalf("drain: %+v", r)
	}
	if !strings.Contains(r.stdout, "50/50 sent (100%), 1 moved to the dead letters\n") {
		t.Fatalf("drain printed no progress:\n%s", r.stdout)
	}
	got := up.EventIDs() // accepted ones: all but the one rejected
	missing := 0
	for _, id := range want {
		switch got[id] {
		case 0:
			missing++
		case 1:
		default:
			t.Errorf("event %s reached the upstream %d times", id, got[id])
		}
	}
	if missing != 1 || len(got) != 49 {
		t.Errorf("upstream accepted %d distinct events, %d missing; want 49 and the rejected one", len(got), missing)
	}
	if live, dead := spoolState(t, spoolDir); len(live) != 0 || len(dead) != 1 {
		t.Fatalf("after the drain: %d live, %d dead", len(live), len(dead))
	}
	r = run(t, runOpts{}, "-c", dir, "spool", "drain")
	if r.code != 0 || !strings.Contains(r.stdout, "Nothing to drain: the spool at") {
		t.Fatalf("drain of an empty spool: %+v", r)
	}

	// Upstream down: the drain stops after the grace period, keeping all.
	dir, spoolDir = liveFixture(t, 5, up.URL(), time.Now(), 0)
	up.Down()
	r = run(t, runOpts{}, "-c", dir, "spool", "drain")
	if r.code != 1 || !strings.Contains(r.stderr, "did not answer for longer than the outage grace period") ||
		!strings.Contains(r.stderr, "0 envelopes sent, 5 left in the spool") {
		t.Fatalf("drain with the upstream down: %+v", r)
	}
	if got := eventIDs(t, spoolDir); len(got) != 5 {
		t.Fatalf("%d records left, want 5", len(got))
	}
}

// Every command that moves records refuses while a relay holds the spool.
func TestSpoolMoveRefusesWhileRunning(t *testing.T) {
	dir, spoolDir := liveFixture(t, 3, "", time.Now(), 0)
	held, err := spool.Open(spoolDir, spool.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	file := filepath.Join(t.TempDir(), "f")
	for _, args := range [][]string{{"stats"}, {"drain"}, {"export", file}, {"import", file}} {
		r := run(t, runOpts{}, append([]string{"-c", dir, "spool"}, args...)...)
		oneErrorLine(t, r, 1, "is in use by a running relay")
		if !strings.Contains(r.stderr, "stop it first") {
			t.Errorf("%v: %q", args, r.stderr)
		}
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatal("a refused export wrote a file")
	}
}

func TestProgress(t *testing.T) {
	now := time.Unix(0, 0)
	var buf bytes.Buffer
	p := &progress{w: &buf, verb: "sent", total: 200, interval: time.Second, now: func() time.Time { return now }}
	p.update(10, "", false)
	p.update(20, "", false) // within the interval: not printed
	now = now.Add(time.Second)
	p.update(100, "1 buried", false)
	p.update(200, "", true)
	if got := buf.String(); got != "10/200 sent (5%)\n100/200 sent (50%), 1 buried\n200/200 sent (100%)\n" {
		t.Fatalf("plain progress:\n%q", got)
	}
	buf.Reset()
	p = &progress{w: &buf, tty: true, width: 40, verb: "sent", total: 4, interval: time.Second, now: func() time.Time { return now }}
	p.update(2, "", false)
	p.update(4, "", true)
	if got := buf.String(); got != "\r[###########...........] 2/4 sent (50%)\r[#####################] 4/4 sent (100%)\n" {
		t.Fatalf("terminal progress:\n%q", got)
	}
}

// An export killed (SIGKILL) part way, at whatever step it was: every
// envelope is then in the spool or in the finished file, exactly once, and
// the spool's next opening finishes what the export had committed to.
func TestSpoolExportKilled(t *testing.T) {
	bin := buildRelay(t, "")
	dir, spoolDir := liveFixture(t, 8000, "", time.Now(), 2000)
	want := eventIDs(t, spoolDir)
	file := filepath.Join(t.TempDir(), "site-a.relayspool")
	cmd := exec.Command(bin, "-c", dir, "spool", "export", file)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once the file is being written.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if fi, err := os.Stat(file + ".partial"); err == nil && fi.Size() > 1<<20 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	left := eventIDs(t, spoolDir) // opening the spool finishes a committed export
	var inFile []string
	if _, err := os.Stat(file); err == nil {
		if _, err := spool.VerifyTransfer(file, func(d []byte) error {
			var m stream.Message
			if err := m.UnmarshalBinary(d); err != nil {
				return err
			}
			inFile = append(inFile, m.EventID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("killed: %d records left in the spool, %d in the file", len(left), len(inFile))
	seen := map[string]int{}
	for _, id := range append(left, inFile...) {
		seen[id]++
	}
	for _, id := range want {
		if seen[id] != 1 {
			t.Errorf("event %s is %d times in the spool and the file", id, seen[id])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%d distinct events after the kill, want %d", len(seen), len(want))
	}
	// Run the export to the end.
	if len(inFile) == 0 {
		r := run(t, runOpts{}, "-c", dir, "spool", "export", file)
		if r.code != 0 {
			t.Fatalf("export after the kill: %+v", r)
		}
		if got := eventIDs(t, spoolDir); len(got) != 0 {
			t.Fatalf("%d records left after the second export", len(got))
		}
	}
}
