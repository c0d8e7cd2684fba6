package project

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func writeFile(t testing.TB, dir, name, content string) {
	t.Helper()
	// Write and rename, as an operator's deploy tool would: a scan never
	// sees half a file.
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// runningSource starts a static source on dir whose ticks the test drives.
// scan() returns once a full scan has run after the call.
func runningSource(t *testing.T, dir string, opts Options) (*Registry, func()) {
	t.Helper()
	reg := NewRegistry(opts)
	src := NewStaticSource(dir, reg, time.Hour, discardLog())
	if err := src.Scan(); err != nil {
		t.Fatal(err)
	}
	ticks := make(chan time.Time)
	src.ticks = ticks
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = src.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	// The second send is taken only after the first tick's scan returned.
	return reg, func() { ticks <- time.Now(); ticks <- time.Now() }
}

func TestStaticFilesWhileRunning(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "projects") // does not exist yet: a valid start
	reg, scan := runningSource(t, dir, Options{Static: true})
	if r, _ := reg.Admit(keyA, 42, true, ""); r != ReasonProjectID {
		t.Fatalf("empty start: Admit = %q, want %q", r, ReasonProjectID)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}

	// Added.
	writeFile(t, dir, "42.json", `{"publicKeys":[{"publicKey":"`+keyA+`","isEnabled":true}],"config":{"allowedDomains":["*"]}}`)
	scan()
	if r, id := reg.Admit(keyA, 42, true, ""); r != "" || id != 42 {
		t.Fatalf("after adding 42.json: Admit = %q, %d; want accepted, 42", r, id)
	}

	// Changed: allowedDomains narrowed, a second key added.
	writeFile(t, dir, "42.json", `{"publicKeys":[{"publicKey":"`+keyA+`"},{"publicKey":"`+keyB+`"}],"config":{"allowedDomains":["example.com"]}}`)
	scan()
	if r, _ := reg.Admit(keyA, 42, true, "https://evil.net"); r != ReasonCors {
		t.Errorf("after narrowing allowedDomains: Admit = %q, want %q", r, ReasonCors)
	}
	if r, _ := reg.Admit(keyB, 42, true, "https://example.com"); r != "" {
		t.Errorf("second key after the change: Admit = %q, want accepted", r)
	}

	// Broken: its keys are refused as ProjectState, not forgotten.
	writeFile(t, dir, "42.json", `{"publicKeys":[{"publicKey":"`+keyA+`"}],"config":`)
	scan()
	for _, k := range []string{keyA, keyB} {
		if r, _ := reg.Admit(k, 42, true, ""); r != ReasonProjectState {
			t.Errorf("after breaking 42.json: Admit(%s) = %q, want %q", k[:4], r, ReasonProjectState)
		}
	}

	// Fixed and disabled with {"disabled":true} plus its key.
	writeFile(t, dir, "42.json", `{"disabled":true,"publicKeys":[{"publicKey":"`+keyA+`"}]}`)
	scan()
	if r, _ := reg.Admit(keyA, 42, true, ""); r != ReasonProjectID {
		t.Errorf("disabled project: Admit = %q, want %q", r, ReasonProjectID)
	}

	// Removed: the key is unknown again.
	if err := os.Remove(filepath.Join(dir, "42.json")); err != nil {
		t.Fatal(err)
	}
	scan()
	if st, _ := reg.Lookup(keyA); st != Missing {
		t.Errorf("after removing 42.json: Lookup = %v, want missing", st)
	}
}

func TestStaticFileRules(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	// A symlinked file is read; the project id comes from the link's name.
	writeFile(t, other, "target.json", `{"publicKeys":[{"publicKey":"`+keyA+`"}]}`)
	if err := os.Symlink(filepath.Join(other, "target.json"), filepath.Join(dir, "7.json")); err != nil {
		t.Fatal(err)
	}
	// Not .json: skipped, even with a valid state inside.
	writeFile(t, dir, "8.json.bak", `{"publicKeys":[{"publicKey":"`+keyB+`"}]}`)
	// projectId in the file wins over the name; a name that is no number is
	// fine then.
	writeFile(t, dir, "shop.json", `{"projectId":9,"publicKeys":[{"publicKey":"`+keyC+`"}]}`)
	// No projectId and a name that is no number: skipped.
	writeFile(t, dir, "misc.json", `{"publicKeys":[{"publicKey":"`+keyX+`"}]}`)
	// A directory named like a project file: skipped.
	if err := os.Mkdir(filepath.Join(dir, "10.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry(Options{Static: true})
	if err := NewStaticSource(dir, reg, 0, discardLog()).Scan(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		key  string
		want Status
		id   uint64
	}{{keyA, Known, 7}, {keyB, Missing, 0}, {keyC, Known, 9}, {keyX, Missing, 0}} {
		st, e := reg.Lookup(tt.key)
		if st != tt.want || (e != nil && e.ProjectID != tt.id) {
			t.Errorf("Lookup(%s) = %v %+v; want %v, project %d", tt.key[:4], st, e, tt.want, tt.id)
		}
	}
	if reg.Len() != 2 {
		t.Errorf("registry holds %d keys, want 2", reg.Len())
	}
}

func TestStaticDuplicateKeyFirstFileWins(t *testing.T) {
	reg := regWith(t, Options{}, map[string]string{
		"1.json": `{"publicKeys":[{"publicKey":"` + keyA + `"}]}`,
		"2.json": `{"publicKeys":[{"publicKey":"` + keyA + `"}]}`,
	})
	if _, e := reg.Lookup(keyA); e == nil || e.ProjectID != 1 {
		t.Errorf("Lookup = %+v, want project 1", e)
	}
}

// An unchanged file is not parsed or compiled again: the registry keeps the
// same compiled scrubber across scans, and a file that breaks keeps serving
// envelopes already accepted with the rules it had.
func TestStaticScrubberCacheAndLastGood(t *testing.T) {
	dir := t.TempDir()
	good := `{"publicKeys":[{"publicKey":"` + keyA + `"}],"config":{"piiConfig":{"applications":{"$string":["@email:mask"]}}}}`
	writeFile(t, dir, "42.json", good)
	reg, scan := runningSource(t, dir, Options{})
	first, err := reg.ScrubberFor(keyA)
	if err != nil || first == nil {
		t.Fatalf("ScrubberFor = %v, %v", first, err)
	}
	scan()
	if again, _ := reg.ScrubberFor(keyA); again != first {
		t.Error("an unchanged file was compiled again")
	}
	writeFile(t, dir, "42.json", `{"publicKeys":[{"publicKey":"`+keyA+`"}],"config":{"piiConfig":{"applications":{"$string":"@email:mask"}}}}`)
	scan()
	if r, _ := reg.Admit(keyA, 42, true, ""); r != ReasonProjectState {
		t.Errorf("Admit after a bad piiConfig = %q, want %q", r, ReasonProjectState)
	}
	if s, err := reg.ScrubberFor(keyA); err != nil || s != first {
		t.Errorf("ScrubberFor after the config broke = %p, %v; want the last good one %p", s, err, first)
	}
	writeFile(t, dir, "42.json", good)
	scan()
	if r, _ := reg.Admit(keyA, 42, true, ""); r != "" {
		t.Errorf("Admit after the fix = %q, want accepted", r)
	}
}

func TestStaticUnreadableDirectoryKeepsProjects(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "projects")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "42.json", `{"publicKeys":[{"publicKey":"`+keyA+`"}]}`)
	reg := NewRegistry(Options{Static: true})
	src := NewStaticSource(dir, reg, 0, discardLog())
	if err := src.Scan(); err != nil {
		t.Fatal(err)
	}
	// The directory becomes something that cannot be listed (a file in its
	// place; permissions would not stop root).
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := src.Scan(); err == nil {
		t.Fatal("Scan of a path that is not a directory returned nil")
	}
	if st, _ := reg.Lookup(keyA); st != Known {
		t.Errorf("after a failed scan Lookup = %v, want the key still known", st)
	}
}

func TestStaticRunRefusesNonPositiveInterval(t *testing.T) {
	src := NewStaticSource(t.TempDir(), NewRegistry(Options{}), 0, discardLog())
	if err := src.Run(context.Background()); err == nil || !contains(err.Error(), "not positive") {
		t.Fatalf("Run with a zero interval = %v, want an error", err)
	}
}
