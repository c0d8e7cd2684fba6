package stream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestStartupLossReported damages a store the way nats-server recovers from
// without a word (a block cut short, cut to zero, removed) and checks that
// the next Open says so: an ERROR line naming the store directory, the
// number lost and a sequence range holding them, and the counter. Messages
// the worker acked before the damage — in order and out of order, so some
// are interior gaps — are deleted, not lost, and must not be counted.
func TestStartupLossReported(t *testing.T) {
	const total = 300
	// Acked before the damage: a prefix, and a run in the middle (out of
	// order, so the stream has interior deletes). Sequence = index + 1.
	acked := map[int]bool{}
	for i := range 50 {
		acked[i] = true
	}
	for i := 200; i < 215; i++ {
		acked[i] = true
	}
	blocks := func(t *testing.T, sf storeFiles) []string {
		ps, _ := filepath.Glob(sf.path("msgs", "*.blk"))
		sort.Slice(ps, func(i, j int) bool { return blkIndex(ps[i]) < blkIndex(ps[j]) })
		if len(ps) < 3 {
			t.Fatalf("want at least 3 message blocks to damage, have %v", ps)
		}
		return ps
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, sf storeFiles)
		lost   bool
	}{
		{"intact", func(*testing.T, storeFiles) {}, false},
		{"index removed", func(t *testing.T, sf storeFiles) {
			// Rebuilt from the blocks: nothing lost, deletes still known.
			os.Remove(sf.path("msgs", "index.db"))
		}, false},
		{"last block truncated in half", func(t *testing.T, sf storeFiles) {
			ps := blocks(t, sf)
			last := ps[len(ps)-1]
			truncate(t, last, fileSize(t, last)/2)
		}, true},
		{"last block cut to zero", func(t *testing.T, sf storeFiles) {
			ps := blocks(t, sf)
			truncate(t, ps[len(ps)-1], 0)
		}, true},
		{"middle block truncated in half", func(t *testing.T, sf storeFiles) {
			ps := blocks(t, sf)
			truncate(t, ps[1], fileSize(t, ps[1])/2)
		}, true},
		{"middle block removed", func(t *testing.T, sf storeFiles) {
			ps := blocks(t, sf)
			if err := os.Remove(ps[1]); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"first block removed", func(t *testing.T, sf storeFiles) {
			ps := blocks(t, sf)
			if err := os.Remove(ps[0]); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.MaxBytes = 120_000 // nats-server then uses its smallest blocks (32 KB): several for 300 messages
			func() {
				c := mustOpen(t, cfg)
				defer c.Close()
				k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
				if err != nil {
					t.Fatal(err)
				}
				publishN(t, c, 0, total)
				// Fetch everything, ack the chosen ones, leave the rest to
				// be redelivered after the restart.
				for _, d := range fetchAll(t, k, total, 20*time.Second) {
					if acked[int(d.Sequence()-1)] {
						if err := d.Ack(ctxT(t, 5*time.Second)); err != nil {
							t.Fatal(err)
						}
					}
				}
			}()
			sf := storeFiles{streamDir: filepath.Join(cfg.StoreDir, "jetstream", "$G", "streams", DefaultStream)}
			tt.damage(t, sf)

			counted := recoveryLost.Get()
			log, lines := captureLog(t)
			c, err := Open(ctxT(t, 20*time.Second), cfg, log)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer c.Close()
			// What the store still has, by sequence (the un-acked ones are
			// still pending for the consumer until AckWait).
			got := map[int]bool{}
			for i := range total {
				_, err := c.stream.GetMsg(ctxT(t, 5*time.Second), uint64(i+1))
				switch {
				case err == nil:
					got[i] = true
				case !errors.Is(err, jetstream.ErrMsgNotFound):
					t.Fatalf("get seq %d: %v", i+1, err)
				}
			}
			var back []int
			for i := range acked {
				if got[i] {
					back = append(back, i+1)
				}
			}
			sort.Ints(back)
			// nats-server's rebuild can forget deletes: acked messages come
			// back (duplicates, not a loss) and must not hide a loss.
			t.Logf("acked messages back after recovery: %v", back)
			var lost []int // unacked messages the store no longer has
			for i := range total {
				if !acked[i] && !got[i] {
					lost = append(lost, i+1)
				}
			}
			if tt.lost && len(lost) == 0 {
				t.Fatal("the damage lost nothing: the test does not test")
			}
			n, _ := c.LostOnOpen()
			if n != uint64(len(lost)) {
				t.Fatalf("LostOnOpen = %d, want %d (unacked messages not recovered: %v)", n, len(lost), lost)
			}
			if d := recoveryLost.Get() - counted; d != uint64(len(lost)) {
				t.Fatalf("relay_stream_recovery_lost_total rose by %d, want %d", d, len(lost))
			}
			errs := lines.matching("level=ERROR", "messages lost")
			if len(lost) == 0 {
				if len(errs) > 0 {
					t.Fatalf("loss reported where none happened: %v", errs)
				}
				return
			}
			if len(errs) != 1 {
				t.Fatalf("want one ERROR line reporting the loss, got %q", errs)
			}
			line := errs[0]
			for _, want := range []string{
				"store_dir=" + cfg.StoreDir + " ",
				"stream_dir=" + sf.streamDir,
				fmt.Sprintf("lost_messages=%d", len(lost)),
			} {
				if !strings.Contains(line, want) {
					t.Errorf("loss line lacks %q: %s", want, line)
				}
			}
			from, to := logUint(t, line, "lost_first_seq"), logUint(t, line, "lost_last_seq")
			if from != uint64(lost[0]) || to != uint64(lost[len(lost)-1]) {
				t.Errorf("reported lost sequences %d..%d, want %d..%d", from, to, lost[0], lost[len(lost)-1])
			}
			t.Logf("%d lost (%d..%d): %s", len(lost), from, to, line)
		})
	}
}

// TestStartupLossAfterRestarts: the record is rebased at every Open, so
// acks and publishes across several runs still add up; an undamaged store
// never reports a loss.
func TestStartupLossAfterRestarts(t *testing.T) {
	cfg := testConfig(t)
	next := 0
	for run := range 4 {
		log, lines := captureLog(t)
		c, err := Open(ctxT(t, 20*time.Second), cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := c.LostOnOpen(); n != 0 || len(lines.matching("messages lost")) > 0 {
			t.Fatalf("run %d: loss reported on an intact store: %d %v", run, n, lines.matching("messages lost"))
		}
		k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
		if err != nil {
			t.Fatal(err)
		}
		publishN(t, c, next, 20)
		next += 20
		// Ack every other one of what is there; the rest stay.
		for i, d := range fetchUntilEmpty(t, k, 10*time.Second) {
			if i%2 == 0 {
				if err := d.Ack(ctxT(t, 5*time.Second)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStartupLossOffWithListen: with Listen set, acks by other processes
// cannot be counted, so there is no record (and a stale one is removed).
func TestStartupLossOffWithListen(t *testing.T) {
	cfg := testConfig(t)
	c := mustOpen(t, cfg)
	publishN(t, c, 0, 3)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	path := recordPath(cfg.StoreDir, DefaultStream)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no record after a run without listen: %v", err)
	}
	cfg.Listen = "127.0.0.1:0"
	c = openTest(t, cfg)
	if c.rec != nil {
		t.Fatal("record kept with listen set")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("stale record left with listen set: %v", err)
	}
}

func TestSeqSet(t *testing.T) {
	s := &seqSet{}
	for _, q := range []uint64{1, 2, 3, 5, 4, 10, 8, 9} {
		s.add(q, q)
	}
	if want := []seqRange{{1, 5}, {8, 10}}; fmt.Sprint(s.ranges) != fmt.Sprint(want) {
		t.Fatalf("ranges %v, want %v", s.ranges, want)
	}
	s.remove(3)  // split
	s.remove(1)  // front
	s.remove(10) // back
	s.remove(20) // acked before its add
	s.add(20, 20)
	if want := []seqRange{{2, 2}, {4, 5}, {8, 9}}; fmt.Sprint(s.ranges) != fmt.Sprint(want) || len(s.early) != 0 || s.high != 20 {
		t.Fatalf("ranges %v early %v high %d", s.ranges, s.early, s.high)
	}
	if s.count() != 5 || !s.contains(4) || s.contains(3) || s.contains(7) {
		t.Fatalf("count %d / contains wrong: %v", s.count(), s.ranges)
	}
	s.startAck(4)
	s.startAck(8)
	s.doneAck(8)
	s.add(4, 4) // its ack failed
	if len(s.pending) != 0 || !s.contains(4) || s.contains(8) {
		t.Fatalf("after acks: ranges %v pending %v", s.ranges, s.pending)
	}
	s.startAck(9)
	if _, ok := s.pending[9]; !ok || s.contains(9) {
		t.Fatalf("ack started: ranges %v pending %v", s.ranges, s.pending)
	}
}

func TestCompareRecord(t *testing.T) {
	st := func(first, last, msgs uint64) jetstream.StreamState {
		return jetstream.StreamState{FirstSeq: first, LastSeq: last, Msgs: msgs}
	}
	set := func(high uint64, rs ...seqRange) *seqSet {
		s := &seqSet{}
		for _, r := range rs {
			s.add(r.lo, r.hi)
		}
		s.high = max(s.high, high)
		return s
	}
	tests := []struct {
		name           string
		rec            *seqSet
		state          jetstream.StreamState
		deleted        []uint64
		lost, from, to uint64
		kept           []seqRange
	}{
		{"all there", set(10, seqRange{1, 10}), st(1, 10, 10), nil, 0, 0, 0, []seqRange{{1, 10}}},
		{"all acked", set(10), st(11, 10, 0), nil, 0, 0, 0, nil},
		{"tail cut", set(10, seqRange{1, 10}), st(1, 6, 6), nil, 4, 7, 10, []seqRange{{1, 6}}},
		{"tail cut, acked ones there and gone", set(10, seqRange{3, 4}, seqRange{7, 8}), st(1, 6, 6), nil, 2, 7, 8, []seqRange{{3, 4}}},
		{"block cut to zero keeps last", set(10, seqRange{4, 10}), st(11, 10, 0), nil, 7, 4, 10, nil},
		{"interior gaps, acked ones resurrected", set(20, seqRange{9, 20}), st(1, 20, 16), []uint64{12, 13, 14, 15}, 4, 12, 15,
			[]seqRange{{9, 11}, {16, 20}}},
		{"first block gone", set(20, seqRange{5, 20}), st(11, 20, 10), nil, 6, 5, 10, []seqRange{{11, 20}}},
		{"stored after the last write", set(5, seqRange{4, 5}), st(4, 7, 4), nil, 0, 0, 0, []seqRange{{4, 7}}},
		{"stream recreated empty", set(9, seqRange{3, 9}), st(0, 0, 0), nil, 7, 3, 9, nil},
		{"acks cut short by a kill", func() *seqSet {
			s := set(10, seqRange{1, 10})
			s.startAck(4) // never answered, and the server did not get it
			s.startAck(5) // never answered, but the server got it
			s.startAck(6)
			s.doneAck(6)
			return s
		}(), st(1, 10, 9), []uint64{5, 6}, 0, 0, 0, []seqRange{{1, 4}, {7, 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := compareRecord(tt.rec, tt.state, tt.deleted)
			if got.lost != tt.lost || got.from != tt.from || got.to != tt.to {
				t.Fatalf("lost %d (%d..%d), want %d (%d..%d)", got.lost, got.from, got.to, tt.lost, tt.from, tt.to)
			}
			if fmt.Sprint(got.kept.ranges) != fmt.Sprint(tt.kept) {
				t.Fatalf("kept %v, want %v", got.kept.ranges, tt.kept)
			}
		})
	}
}

// TestRecordFile: the file replays to the set it was written from, through
// appends, a rewrite and a torn last entry; a damaged one is refused, and
// Open then warns and starts a new one rather than fail.
func TestRecordFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.seq")
	r, err := startRecord(path, &seqSet{}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	for q := uint64(1); q <= 100; q++ {
		r.published(&jetstream.PubAck{Sequence: q})
	}
	for q := uint64(1); q <= 100; q += 3 {
		r.acking(q)
	}
	for q := uint64(1); q <= 100; q += 6 {
		r.acked(q)
	}
	r.undo(4)
	r.acking(200) // before its PubAck
	r.published(&jetstream.PubAck{Sequence: 50, Duplicate: true})
	want, wantHigh, wantPending := fmt.Sprint(r.set.ranges), uint64(100), fmt.Sprint(r.set.pending)
	if len(r.set.pending) == 0 {
		t.Fatal("test does not test: no pending acks")
	}
	check := func(what string) {
		t.Helper()
		s, err := readRecord(path)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if fmt.Sprint(s.ranges) != want || s.high != wantHigh || len(s.early) != 1 || fmt.Sprint(s.pending) != wantPending {
			t.Fatalf("%s: replayed %v high %d early %v pending %v, want %s pending %s", what, s.ranges, s.high, s.early, s.pending, want, wantPending)
		}
	}
	check("appended")
	r.mu.Lock()
	if err := r.rewriteLocked(); err != nil {
		t.Fatal(err)
	}
	r.mu.Unlock()
	check("rewritten")
	// Many in-order publishes and acks: the file is rewritten as it goes
	// and stays small.
	for q := uint64(1000); q < 1000+compactEntries; q++ {
		r.published(&jetstream.PubAck{Sequence: q})
		r.acking(q)
		r.acked(q)
	}
	if n := fileSize(t, path); n > int64(len(recordMagic)+(compactEntries+100)*recordEntrySize) {
		t.Fatalf("record file %d bytes after %d publishes and acks: not compacted", n, compactEntries)
	}
	r.acking(201) // before its PubAck, then the ack failed: no trace; 200 stays early
	r.undo(201)
	want, wantPending = fmt.Sprint(r.set.ranges), fmt.Sprint(r.set.pending)
	wantHigh = r.set.high
	if err := r.close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{1, 2, 3}) // a torn entry
	f.Close()
	check("torn last entry")

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []int{0, len(recordMagic) + 3, len(recordMagic) + recordEntrySize + 17} {
		c := append([]byte(nil), b...)
		c[at] ^= 0x40
		if _, err := replayRecord(c); err == nil {
			t.Fatalf("damage at byte %d accepted", at)
		}
	}

	cfg := testConfig(t)
	if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, recordPath(cfg.StoreDir, DefaultStream), []byte("junk"))
	log, lines := captureLog(t)
	c, err := Open(ctxT(t, 20*time.Second), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(lines.matching("level=WARN", "record is unreadable")) != 1 {
		t.Fatal("no warning about the unreadable record")
	}
	if s, err := readRecord(recordPath(cfg.StoreDir, DefaultStream)); s == nil || err != nil {
		t.Fatalf("record not restarted: %v", err)
	}
}

func mustOpen(t *testing.T, cfg Config) *Conn {
	t.Helper()
	c, err := Open(ctxT(t, 20*time.Second), cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func blkIndex(p string) int {
	n, _ := strconv.Atoi(strings.TrimSuffix(filepath.Base(p), ".blk"))
	return n
}

// logUint reads key=N from a text log line.
func logUint(t *testing.T, line, key string) uint64 {
	t.Helper()
	i := strings.Index(line, key+"=")
	if i < 0 {
		t.Fatalf("no %s in %s", key, line)
	}
	v := line[i+len(key)+1:]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", key, v, err)
	}
	return n
}

// killChildEnv makes TestStartupLossKill9 run as the child that is killed:
// it publishes and acks on the store in the named directory until SIGKILL.
const killChildEnv = "RELAY_TEST_KILL9_STORE"

const killPublishers = 8

// TestStartupLossKill9: the relay is killed with SIGKILL while it publishes
// and acks; the record it leaves must never make the next start report a
// loss that did not happen (acks in flight at the kill), and must still
// report exactly what a damaged block then loses.
func TestStartupLossKill9(t *testing.T) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		killChild(t, dir)
		return
	}
	cfg := testConfig(t)
	for round := range 3 {
		cmd, out := startKillChild(t, killChildEnv+"="+cfg.StoreDir, fmt.Sprintf("RELAY_TEST_KILL9_BASE=%d", round*100000))
		sc := bufio.NewScanner(out)
		running := false
		for sc.Scan() {
			if sc.Text() == "RUNNING" {
				running = true
				break
			}
		}
		if !running {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("child never got going")
		}
		go io.Copy(io.Discard, out)
		time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()

		log, lines := captureLog(t)
		c, err := Open(ctxT(t, 20*time.Second), cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := c.LostOnOpen()
		if n != 0 || len(lines.matching("messages lost")) != 0 {
			t.Fatalf("round %d: a kill -9 with nothing damaged reported %d lost: %q", round, n, lines.matching("messages lost"))
		}
		held := heldSeqs(t, c)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed; %d messages held, no loss reported", round, len(held))
		if round < 2 {
			continue
		}
		// Now damage the last block and check the report is exact.
		sf := storeFiles{streamDir: filepath.Join(cfg.StoreDir, "jetstream", "$G", "streams", DefaultStream)}
		ps, _ := filepath.Glob(sf.path("msgs", "*.blk"))
		sort.Slice(ps, func(i, j int) bool { return blkIndex(ps[i]) < blkIndex(ps[j]) })
		truncate(t, ps[len(ps)-1], fileSize(t, ps[len(ps)-1])/3)
		c = mustOpen(t, cfg)
		after := heldSeqs(t, c)
		var want uint64
		for q := range held {
			if !after[q] {
				want++
			}
		}
		// Exact but for the publishes in flight at the kill (at most one
		// per publisher): stored, but never acknowledged to anyone, so not
		// in the record and no broken promise when lost.
		if n, _ := c.LostOnOpen(); n > want || n+killPublishers < want || want == 0 {
			t.Fatalf("after cutting the last block: LostOnOpen = %d, want %d (> 0) less at most %d in flight", n, want, killPublishers)
		} else {
			t.Logf("after cutting the last block: %d lost reported, %d held messages gone", n, want)
		}
		c.Close()
	}
}

// heldSeqs is every sequence the stream holds.
func heldSeqs(t *testing.T, c *Conn) map[uint64]bool {
	t.Helper()
	info, err := c.stream.Info(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]bool{}
	for q := info.State.FirstSeq; q <= info.State.LastSeq && info.State.Msgs > 0; q++ {
		_, err := c.stream.GetMsg(ctxT(t, 5*time.Second), q)
		switch {
		case err == nil:
			out[q] = true
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			t.Fatalf("get seq %d: %v", q, err)
		}
	}
	return out
}

// openKillChild opens the store in dir and its "workers" consumer for a
// child process that is killed rather than closed.
// startKillChild starts this test binary again as the child of the test
// running (t.Name()), with env (NAME=VALUE) added to its environment, and
// returns it with its stdout and stderr on one pipe.
func startKillChild(t *testing.T, env ...string) (*exec.Cmd, io.ReadCloser) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run", "^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

// killChildConfig is the store a SIGKILLed child opens: short waits, so
// what it leaves un-acked comes back soon after the restart.
func killChildConfig(dir string) Config {
	return Config{StoreDir: dir, AckWait: 2 * time.Second, FetchWait: 100 * time.Millisecond}
}

// openKillChild opens cfg in a child process (logs discarded) and its
// consumer "workers".
func openKillChild(t *testing.T, cfg Config) (*Conn, *Consumer) {
	t.Helper()
	c, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.Consumer(context.Background(), "workers")
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// killChild publishes and acks concurrently (Ack and AckNoWait) on the store in dir, says
// RUNNING once under way, and goes on until it is killed.
func killChild(t *testing.T, dir string) {
	c, k := openKillChild(t, killChildConfig(dir))
	base, _ := strconv.Atoi(os.Getenv("RELAY_TEST_KILL9_BASE"))
	var published atomic.Int64
	for w := range killPublishers {
		go func() {
			for i := 0; i < 400; i++ {
				n := base + w*1000 + i
				if err := c.Publish(context.Background(), msgN(n), fmt.Sprintf("k-%d", n)); err != nil {
					panic(err)
				}
				if published.Add(1) == 200 {
					fmt.Println("RUNNING")
				}
			}
		}()
	}
	for range 4 {
		go func() {
			for {
				ds, err := k.Fetch(context.Background(), 20)
				if err != nil {
					panic(err)
				}
				for i, d := range ds {
					if i%4 == 3 {
						continue // left un-acked: redelivered later
					}
					ack := func() error { return d.Ack(context.Background()) }
					if i%2 == 1 {
						ack = d.AckNoWait // the worker's ack: no wait for the server's answer
					}
					if err := ack(); err != nil {
						panic(err)
					}
				}
			}
		}()
	}
	select {} // until SIGKILL
}

// TestRecordUnwritableDoesNotStopOpen: a record that cannot be written is
// logged and the relay starts without it; the stale one is removed so the
// next start does not compare against it.
func TestRecordUnwritableDoesNotStopOpen(t *testing.T) {
	cfg := testConfig(t)
	c := mustOpen(t, cfg)
	publishN(t, c, 0, 3)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	path := recordPath(cfg.StoreDir, DefaultStream)
	if err := os.Mkdir(path+".tmp", 0o700); err != nil { // the rewrite cannot create its file
		t.Fatal(err)
	}
	log, lines := captureLog(t)
	c, err := Open(ctxT(t, 20*time.Second), cfg, log)
	if err != nil {
		t.Fatalf("Open failed over an unwritable record: %v", err)
	}
	defer c.Close()
	if c.rec != nil || len(lines.matching("level=ERROR", "record cannot be written")) != 1 {
		t.Fatalf("unwritable record: rec %v, log %q", c.rec, lines.matching("record"))
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("stale record left: %v", err)
	}
	publishN(t, c, 3, 2) // and it works
}

// BenchmarkRecord is the record's cost per message: one PubAck and one ack
// (three small appends).
func BenchmarkRecord(b *testing.B) {
	r, err := startRecord(filepath.Join(b.TempDir(), "r.seq"), &seqSet{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer r.close()
	b.ResetTimer()
	for i := range b.N {
		q := uint64(i + 1)
		r.published(&jetstream.PubAck{Sequence: q})
		r.acking(q)
		r.acked(q)
	}
}

// TestRecordConcurrent: many goroutines publishing and acking at once (group
// writes, rewrites in between) leave a file that replays to the set in
// memory.
func TestRecordConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.seq")
	r, err := startRecord(path, &seqSet{}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	var next atomic.Uint64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3000 {
				q := next.Add(1)
				r.published(&jetstream.PubAck{Sequence: q})
				if q%5 != 0 {
					r.acking(q)
					if q%7 == 0 {
						r.undo(q)
					} else {
						r.acked(q)
					}
				}
			}
		}()
	}
	wg.Wait()
	want := fmt.Sprint(r.set.ranges)
	if err := r.close(); err != nil {
		t.Fatal(err)
	}
	got, err := readRecord(path)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.ranges) != want || len(got.pending) != 0 || got.high != 48000 {
		t.Fatalf("replayed %d ranges (pending %d, high %d), want %d ranges", len(got.ranges), len(got.pending), got.high, len(r.set.ranges))
	}
}

// BenchmarkRecordParallel is BenchmarkRecord from many goroutines: their
// entries share writes.
func BenchmarkRecordParallel(b *testing.B) {
	r, err := startRecord(filepath.Join(b.TempDir(), "r.seq"), &seqSet{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer r.close()
	var next atomic.Uint64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			q := next.Add(1)
			r.published(&jetstream.PubAck{Sequence: q})
			r.acking(q)
			r.acked(q)
		}
	})
}
