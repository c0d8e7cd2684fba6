package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/spool"
)

const deadEventID = "9ec79c33ec9942ab8353589fcb2e04dc"

// deadMessage is a relay message as the worker buries it; its event payload
// holds a marker that must not be printed without --payload.
func deadMessage(t *testing.T, project uint64, marker string) []byte {
	t.Helper()
	payload := fmt.Sprintf(`{"message":"%s","user":{"email":"someone@example.com"}}`, marker)
	env := fmt.Sprintf("{\"event_id\":\"%s\",\"sent_at\":\"2026-12-05T10:00:00Z\"}\n{\"type\":\"event\",\"length\":%d}\n%s\n{\"type\":\"attachment\",\"filename\":\"a.txt\"}\nhello\n",
		deadEventID, len(payload), payload)
	m := stream.Message{
		ProjectID:  project,
		PublicKey:  "e12d836b15bb49d7bbf99e64295d995b",
		Client:     "sentry.python/2.0.0",
		Version:    7,
		RemoteAddr: "192.0.2.7",
		ReceivedAt: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC),
		EventID:    deadEventID,
		Envelope:   []byte(env),
	}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deadFixture is a config folder whose spool holds dead letters 1-3 (relay
// messages for projects 41-43) and 4 (data that is not a relay message).
func deadFixture(t *testing.T) (dir, spoolDir string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), ".relay")
	spoolDir = filepath.Join(dir, "spool.db")
	sp, err := spool.Open(spoolDir, spool.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := uint64(1); i <= 3; i++ {
		if err := sp.Bury(ctx, deadMessage(t, 40+i, fmt.Sprintf("pii-%d", i)), fmt.Sprintf("upstream_rejected: status 400\n(try %d)", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Bury(ctx, []byte("\xffnot a message"), "spool_record_undecodable"); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, spoolDir
}

// spoolState opens the spool and returns its live records and dead letter ids.
func spoolState(t *testing.T, spoolDir string) (live []spool.Record, dead []uint64) {
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
	live, err = sp.Oldest(1000)
	if err != nil {
		t.Fatal(err)
	}
	buried, err := sp.Buried(1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range buried {
		dead = append(dead, r.ID)
	}
	return live, dead
}

func TestSpoolDeadList(t *testing.T) {
	dir, _ := deadFixture(t)
	r := run(t, runOpts{}, "-c", dir, "spool", "dead", "list")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("list: %+v", r)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "REASON") {
		t.Fatalf("list output:\n%s", r.stdout)
	}
	for line, want := range map[int][]string{
		1: {"1 ", " 41 ", deadEventID, "upstream_rejected: status 400 (try 1)"},
		3: {"3 ", " 43 ", deadEventID},
		4: {"4 ", "spool_record_undecodable (not a relay message:"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[line], w) {
				t.Errorf("list line %q lacks %q", lines[line], w)
			}
		}
	}
	if strings.Contains(r.stdout, "pii-") {
		t.Fatal("list printed a payload")
	}

	r = run(t, runOpts{}, "-c", dir, "spool", "dead", "list", "--json")
	if r.code != 0 {
		t.Fatalf("list --json: %+v", r)
	}
	var got []deadJSON
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var j deadJSON
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		got = append(got, j)
	}
	if len(got) != 4 || got[1].ID != 2 || got[1].ProjectID != 42 || got[1].EventID != deadEventID ||
		got[1].Size == 0 || got[1].BuriedAt.IsZero() || got[3].Error == "" || got[0].Error != "" {
		t.Fatalf("list --json = %+v", got)
	}

	// No spool at all: nothing to list, and nothing created.
	empty := filepath.Join(t.TempDir(), ".relay")
	r = run(t, runOpts{}, "-c", empty, "spool", "dead", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "No dead letters (no spool at ") {
		t.Fatalf("list without a spool: %+v", r)
	}
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Fatal("list created the config folder")
	}
}

func TestSpoolDeadShow(t *testing.T) {
	dir, _ := deadFixture(t)
	r := run(t, runOpts{}, "-c", dir, "spool", "dead", "show", "2")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("show: %+v", r)
	}
	for _, want := range []string{
		"id: 2\n", "buried at: ", "reason: upstream_rejected: status 400 (try 2)\n", "project: 42\n",
		"event id: " + deadEventID + "\n", "client: sentry.python/2.0.0\n",
		`envelope header: {"event_id":"` + deadEventID + `","sent_at":"2026-12-05T10:00:00Z"}` + "\n",
		`item 1: {"type":"event","length":`, `item 2: {"type":"attachment","filename":"a.txt"} (5 bytes)` + "\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "pii-2") || strings.Contains(r.stdout, "someone@example.com") {
		t.Fatalf("show printed the payload without --payload:\n%s", r.stdout)
	}
	r = run(t, runOpts{}, "-c", dir, "spool", "dead", "show", "2", "--payload")
	if r.code != 0 || !strings.Contains(r.stdout, `{"message":"pii-2"`) || !strings.Contains(r.stdout, "\nhello\n") {
		t.Fatalf("show --payload: %+v", r)
	}
	r = run(t, runOpts{}, "-c", dir, "spool", "dead", "show", "4")
	if r.code != 0 || !strings.Contains(r.stdout, "not a relay message") {
		t.Fatalf("show of undecodable data: %+v", r)
	}

	oneErrorLine(t, run(t, runOpts{}, "-c", dir, "spool", "dead", "show", "9"), 1, "no dead letter 9 in ")
	oneErrorLine(t, run(t, runOpts{}, "-c", dir, "spool", "dead", "show"), 2, "takes one dead letter id")
	oneErrorLine(t, run(t, runOpts{}, "-c", dir, "spool", "dead", "show", "x"), 2, `"x" is not a dead letter id`)
}

func TestSpoolDeadRetry(t *testing.T) {
	dir, spoolDir := deadFixture(t)
	c := func(args ...string) result {
		return run(t, runOpts{}, append([]string{"-c", dir, "spool", "dead"}, args...)...)
	}

	oneErrorLine(t, c("retry"), 2, "which dead letters to retry? give their ids or --all")
	oneErrorLine(t, c("retry", "1", "--all"), 2, "give dead letter ids or --all, not both")
	oneErrorLine(t, c("retry", "1", "9"), 1, "no dead letter 9 in ")
	oneErrorLine(t, c("retry", "4"), 1, "dead letter 4 is not a relay message")
	if live, dead := spoolState(t, spoolDir); len(live) != 0 || len(dead) != 4 {
		t.Fatalf("a refused retry moved something: %d live, dead %v", len(live), dead)
	}

	r := c("retry", "3", "1")
	if r.code != 0 || r.stdout != "Moved 2 dead letters back into the spool; the next \"relay run\" sends them upstream\n" {
		t.Fatalf("retry: %+v", r)
	}
	live, dead := spoolState(t, spoolDir)
	if len(live) != 2 || fmt.Sprint(dead) != "[2 4]" {
		t.Fatalf("after retry: %d live, dead %v", len(live), dead)
	}
	// They are the envelopes, intact, oldest first: the drain decodes them.
	for i, want := range []uint64{41, 43} {
		var m stream.Message
		if err := m.UnmarshalBinary(live[i].Data); err != nil || m.ProjectID != want || !strings.Contains(string(m.Envelope), fmt.Sprintf("pii-%d", want-40)) {
			t.Fatalf("live record %d: project %d, %v", i, m.ProjectID, err)
		}
	}
}

func TestSpoolDeadPurge(t *testing.T) {
	dir, spoolDir := deadFixture(t)
	c := func(o runOpts, args ...string) result {
		return run(t, o, append([]string{"-c", dir, "spool", "dead"}, args...)...)
	}
	oneErrorLine(t, c(runOpts{}, "purge"), 2, "which dead letters to purge?")
	oneErrorLine(t, c(runOpts{}, "purge", "1"), 2, "not purging dead letters without confirmation: pass --yes")
	oneErrorLine(t, c(runOpts{}, "purge", "1", "9", "--yes"), 1, "no dead letter 9 in ")

	r := c(runOpts{terminal: true, stdin: "n\n"}, "purge", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "? Delete 1 dead letters for good? [y/N]: ") || !strings.Contains(r.stdout, "Nothing was purged") {
		t.Fatalf("purge declined: %+v", r)
	}
	if _, dead := spoolState(t, spoolDir); len(dead) != 4 {
		t.Fatalf("a declined purge deleted: dead %v", dead)
	}
	r = c(runOpts{terminal: true, stdin: "y\n"}, "purge", "1", "4")
	if r.code != 0 || !strings.Contains(r.stdout, "Purged 2 dead letters\n") {
		t.Fatalf("purge confirmed: %+v", r)
	}
	if _, dead := spoolState(t, spoolDir); fmt.Sprint(dead) != "[2 3]" {
		t.Fatalf("after purge 1 4: dead %v", dead)
	}
	r = c(runOpts{}, "purge", "--all", "--yes")
	if r.code != 0 || r.stdout != "Purged 2 dead letters\n" {
		t.Fatalf("purge --all: %+v", r)
	}
	if live, dead := spoolState(t, spoolDir); len(live) != 0 || len(dead) != 0 {
		t.Fatalf("after purge --all: %d live, dead %v", len(live), dead)
	}
	r = c(runOpts{}, "list")
	if r.code != 0 || !strings.Contains(r.stdout, "No dead letters in ") {
		t.Fatalf("list after purge: %+v", r)
	}
}

// While a relay holds the spool every command refuses, saying why, and
// changes nothing.
func TestSpoolDeadRefusesWhileTheSpoolIsInUse(t *testing.T) {
	dir, spoolDir := deadFixture(t)
	held, err := spool.Open(spoolDir, spool.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"list"}, {"list", "--json"}, {"show", "1"}, {"retry", "1"}, {"retry", "--all"}, {"purge", "--all", "--yes"},
	} {
		r := run(t, runOpts{}, append([]string{"-c", dir, "spool", "dead"}, args...)...)
		oneErrorLine(t, r, 1, "the spool "+spoolDir+" is in use by a running relay")
		if !strings.Contains(r.stderr, "stop it first") {
			t.Errorf("%v: %q does not say what to do", args, r.stderr)
		}
	}
	if st := held.Stats(); st.Buried != 4 || st.Records != 0 {
		t.Fatalf("refused commands changed the spool: %+v", st)
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	if r := run(t, runOpts{}, "-c", dir, "spool", "dead", "retry", "1"); r.code != 0 {
		t.Fatalf("retry once the spool is free: %+v", r)
	}
}

func TestSpoolDeadHelp(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"spool"}, "Available Commands:"},
		{[]string{"spool", "dead", "--help"}, "They refuse while a relay that uses the same\nspool.path is running"},
		{[]string{"spool", "dead", "list", "--help"}, "--json"},
		{[]string{"spool", "dead", "show", "--help"}, "only with --payload"},
		{[]string{"spool", "dead", "retry", "--help"}, "never in neither"},
		{[]string{"spool", "dead", "purge", "--help"}, "--yes is required"},
	} {
		r := run(t, runOpts{}, tt.args...)
		if r.code != 0 || !strings.Contains(r.stdout, tt.want) {
			t.Errorf("%v: exit %d, output lacks %q:\n%s", tt.args, r.code, tt.want, r.stdout)
		}
	}
	oneErrorLine(t, run(t, runOpts{}, "spool", "ded"), 2, `unknown command "ded" for "relay spool" (did you mean "dead"?)`)
}
