package spool

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The kill test: a child process (this test binary, re-executed) puts
// records from several goroutines and drains some of them, reporting on
// stdout "A <seq>" after each Put returned nil and "D <seq>" before each
// Delete. The parent SIGKILLs it mid-stream, reopens the spool and checks
// that every acknowledged record that was not being deleted is there, intact
// and once. Several rounds run on the same directory, so later rounds also
// recover from the previous kill.

const (
	helperDirEnv    = "SPOOL_TEST_HELPER_DIR"
	helperOffsetEnv = "SPOOL_TEST_HELPER_OFFSET"
	helperSyncEnv   = "SPOOL_TEST_HELPER_SYNC"
	crashRecSize    = 300
)

func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		return // not the child
	}
	offset, _ := strconv.Atoi(os.Getenv(helperOffsetEnv))
	mode := os.Getenv(helperSyncEnv)
	s, err := Open(dir, Options{SegmentSize: 128 << 10, NoSync: mode == "nosync", Logger: quietLog})
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper: open: %v\n", err)
		os.Exit(3)
	}
	drops := strings.HasSuffix(mode, "-drops")
	if drops {
		// Drop the segment maps' pages (pages.go) every 16 KiB read or
		// written, so that kills land among the drops too.
		s.dropEvery = 16 << 10
	}
	var outMu sync.Mutex
	say := func(kind string, seq int) {
		outMu.Lock()
		defer outMu.Unlock()
		// An unbuffered write: once it returns, the line is in the pipe and
		// survives the kill.
		if _, err := fmt.Fprintf(os.Stdout, "%s %d\n", kind, seq); err != nil {
			os.Exit(4)
		}
	}
	const putters = 8
	for g := 0; g < putters; g++ {
		go func() {
			for k := 0; ; k++ {
				seq := offset + g + k*putters
				if err := s.Put(context.Background(), payload(seq, crashRecSize)); err != nil {
					fmt.Fprintf(os.Stderr, "helper: put: %v\n", err)
					os.Exit(5)
				}
				say("A", seq)
			}
		}()
	}
	// A drainer deleting the oldest records, so that kills also land in
	// deletes, segment removals and resets.
	go func() {
		for {
			recs, err := s.Oldest(50)
			if err != nil {
				fmt.Fprintf(os.Stderr, "helper: oldest: %v\n", err)
				os.Exit(6)
			}
			ids := make([]uint64, 0, len(recs))
			for _, r := range recs {
				var seq int
				if _, err := fmt.Sscanf(string(r.Data), "record-%08d|", &seq); err != nil {
					fmt.Fprintf(os.Stderr, "helper: bad record %d\n", r.ID)
					os.Exit(7)
				}
				say("D", seq)
				ids = append(ids, r.ID)
			}
			if err := s.Delete(ids...); err != nil {
				fmt.Fprintf(os.Stderr, "helper: delete: %v\n", err)
				os.Exit(8)
			}
			if drops {
				say("M", int(mappedDrops.Get()))
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	select {} // until killed
}

func TestKilledProcessKeepsAcknowledgedRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary several times")
	}
	for _, mode := range []string{"fsync", "nosync", "fsync-drops"} {
		t.Run(mode, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spool.db")
			acked := make(map[int]bool)
			deleting := make(map[int]bool)
			drops := 0
			for round := 0; round < 4; round++ {
				ackedNow := runAndKill(t, dir, mode, round*10_000_000, 1500+round*700, acked, deleting, &drops)
				s, err := openWithin(t, dir, withQuietLog(Options{SegmentSize: 128 << 10}), 20*time.Second)
				if err != nil {
					t.Fatalf("round %d: reopen after kill: %v", round, err)
				}
				if rep := s.Report(); len(rep.Damaged)+len(rep.Ignored) != 0 {
					t.Fatalf("round %d: a kill damaged the spool: %+v", round, rep)
				}
				present := make(map[int]bool)
				for _, r := range all(t, s) {
					seq := seqOf(t, r.Data)
					if present[seq] {
						t.Fatalf("round %d: record %d stored twice", round, seq)
					}
					if string(r.Data) != string(payload(seq, crashRecSize)) {
						t.Fatalf("round %d: record %d damaged", round, seq)
					}
					present[seq] = true
				}
				missing := 0
				for seq := range acked {
					if !deleting[seq] && !present[seq] {
						missing++
						if missing < 5 {
							t.Errorf("round %d: acknowledged record %d lost", round, seq)
						}
					}
				}
				if missing > 0 {
					t.Fatalf("round %d: %d acknowledged records lost", round, missing)
				}
				t.Logf("round %d: %d acknowledged (%d in total, %d being deleted), %d present after the kill, %d segments",
					round, ackedNow, len(acked), len(deleting), len(present), s.Stats().Segments)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if strings.HasSuffix(mode, "-drops") && drops == 0 {
				t.Fatalf("the helpers never dropped their mapped pages: the kills did not land among drops")
			}
		})
	}
}

// runAndKill runs the helper until it has acknowledged about n records, then
// SIGKILLs it, recording what it said into acked and deleting, and the most
// page drops (relay_spool_mapped_drops_total) it reported into drops.
func runAndKill(t *testing.T, dir, mode string, offset, n int, acked, deleting map[int]bool, drops *int) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		helperDirEnv+"="+dir,
		helperOffsetEnv+"="+strconv.Itoa(offset),
		helperSyncEnv+"="+mode)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Errorf("kill: %v", err)
			}
		}
	}
	deadline := time.AfterFunc(60*time.Second, kill)
	defer deadline.Stop()
	count := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		kind, num, ok := strings.Cut(sc.Text(), " ")
		seq, err := strconv.Atoi(num)
		if !ok || err != nil {
			continue // a torn last line, or test-framework output
		}
		switch kind {
		case "A":
			acked[seq] = true
			if count++; count == n {
				kill()
			}
		case "D":
			deleting[seq] = true
		case "M":
			*drops = max(*drops, seq)
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("helper exited by itself: %v\n%s", err, stderr.String())
	}
	if count < n {
		t.Fatalf("helper acknowledged only %d records: %s", count, stderr.String())
	}
	return count
}
