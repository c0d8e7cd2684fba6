package spool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// dirSync is one recorded directory fsync and what the directory held then.
type dirSync struct {
	dir     string
	entries []string
}

func recordSyncs(t *testing.T, o *Options) *[]dirSync {
	t.Helper()
	var got []dirSync
	o.syncDir = func(dir string) error {
		var names []string
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Errorf("sync of %s: %v", dir, err)
		}
		for _, e := range es {
			names = append(names, e.Name())
		}
		got = append(got, dirSync{dir, names})
		return syncDir(dir)
	}
	return &got
}

// syncedWith reports whether dir was fsynced at a moment when it held name
// (or, with gone, did not hold it), at or after position from; it returns the
// position after that fsync.
func syncedWith(syncs []dirSync, from int, dir, name string, gone bool) (int, bool) {
	for i := from; i < len(syncs); i++ {
		if syncs[i].dir == dir && slices.Contains(syncs[i].entries, name) != gone {
			return i + 1, true
		}
	}
	return from, false
}

// Every directory entry a durable record depends on is fsynced before the
// first Put returns: the directories Open created (their parents, top down),
// the first segment file and dead.db.
func TestDirectoriesAreSyncedBeforeTheFirstPut(t *testing.T) {
	base := t.TempDir()
	cfgDir := filepath.Join(base, "etc", "relay")
	dir := filepath.Join(cfgDir, "spool.db")
	opts := withQuietLog(Options{})
	syncs := recordSyncs(t, &opts)
	s := openT(t, dir, opts)
	if err := s.Put(context.Background(), payload(1, 100)); err != nil {
		t.Fatal(err)
	}
	got := *syncs
	var dirs []string
	for _, s := range got {
		dirs = append(dirs, s.dir)
	}
	// The parents of the three directories Open created, top down, first.
	if len(got) < 3 || !slices.Equal(dirs[:3], []string{base, filepath.Join(base, "etc"), cfgDir}) {
		t.Fatalf("directory fsyncs %q, want %s, then etc, then etc/relay first", dirs, base)
	}
	if _, ok := syncedWith(got, 3, dir, segName(1), false); !ok {
		t.Fatalf("the spool directory was not fsynced after the first segment was created: %v", got)
	}
	if _, ok := syncedWith(got, 3, dir, deadName, false); !ok {
		t.Fatalf("the spool directory was not fsynced after dead.db was created: %v", got)
	}

	// Reopening creates nothing, so it needs no directory fsync.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	opts2 := withQuietLog(Options{})
	syncs2 := recordSyncs(t, &opts2)
	openT(t, dir, opts2)
	if len(*syncs2) != 0 {
		t.Fatalf("reopening fsynced %v", *syncs2)
	}
}

// dead.db created beside existing segments (an operator deleted it, or a
// salvage found nothing in it) is fsynced into the directory too.
func TestNewDeadLettersFileIsSynced(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool.db")
	s := openT(t, dir, withQuietLog(Options{}))
	putN(t, s, 0, 3, 100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, deadName)); err != nil {
		t.Fatal(err)
	}
	opts := withQuietLog(Options{})
	syncs := recordSyncs(t, &opts)
	s = openT(t, dir, opts)
	if _, ok := syncedWith(*syncs, 0, dir, deadName, false); !ok {
		t.Fatalf("dead.db was created without an fsync of the spool directory: %v", *syncs)
	}
	if err := s.Bury(context.Background(), payload(9, 10), "test"); err != nil {
		t.Fatal(err)
	}
}

// Renames and removals are fsynced too: a salvage's, and a drained segment's.
func TestDirectoryIsSyncedAfterRenamesAndRemovals(t *testing.T) {
	f := newDamageFixture(t)
	victim := f.segs[1]
	if err := os.Truncate(victim, 0); err != nil {
		t.Fatal(err)
	}
	opts := withQuietLog(f.opts)
	syncs := recordSyncs(t, &opts)
	s := openT(t, f.dir, opts)
	rep := s.Report()
	if len(rep.Damaged) != 1 {
		t.Fatalf("report %+v", rep)
	}
	at, ok := syncedWith(*syncs, 0, f.dir, filepath.Base(rep.Damaged[0].MovedTo), false)
	if !ok {
		t.Fatalf("no fsync of the spool directory after %s was set aside: %v", victim, *syncs)
	}
	if _, ok := syncedWith(*syncs, at-1, f.dir, filepath.Base(victim), true); !ok {
		t.Fatalf("the fsync after the salvage still listed %s", victim)
	}

	// Draining removes the older segments; each removal is fsynced.
	drain(t, s, 500)
	for _, seg := range f.segs[:len(f.segs)-1] {
		if seg == victim {
			continue
		}
		if _, ok := syncedWith(*syncs, at, f.dir, filepath.Base(seg), true); !ok {
			t.Fatalf("no fsync of the spool directory after %s was removed", seg)
		}
	}
}

// A directory fsync that fails fails Open, naming the directory, and leaves
// the spool free for the next Open.
func TestFailedDirectorySyncFailsOpen(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "cfg", "spool.db")
	cut := errors.New("injected fsync failure")
	opts := withQuietLog(Options{})
	opts.syncDir = func(d string) error {
		if d == filepath.Join(base, "cfg") {
			return cut
		}
		return syncDir(d)
	}
	if _, err := Open(dir, opts); !errors.Is(err, cut) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open with a failing directory fsync: %v", err)
	}
	s := openT(t, dir, withQuietLog(Options{}))
	if err := s.Put(context.Background(), payload(1, 10)); err != nil {
		t.Fatal(err)
	}
}
