package stream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// smallFSEnv names the mount point of the small filesystem a test runs on
// after runOnSmallFS re-executed it.
const smallFSEnv = "RELAY_TEST_SMALLFS"

// runOnSmallFS runs the calling test again in a child process, in a private
// mount namespace (unshare -m) with a size-limited tmpfs mounted for it, and
// returns the mount point when called in that child. In the parent it waits
// for the child, reports its output, and returns "" (the caller returns).
// A machine that cannot make the filesystem (no unshare, not root, no
// tmpfs) skips the test, saying why — except under CI=true, where that fails:
// CI must run it.
func runOnSmallFS(t *testing.T, size string) string {
	t.Helper()
	if dir := os.Getenv(smallFSEnv); dir != "" {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatalf("statfs %s: %v", dir, err)
		}
		t.Logf("on a %d KiB filesystem at %s", st.Blocks*uint64(st.Bsize)>>10, dir)
		return dir
	}
	cannot := func(why string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot make a small filesystem for this test (CI must run it): %s", why)
		}
		t.Skipf("cannot make a small filesystem for this test: %s", why)
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		cannot("no unshare(1) on PATH")
	}
	if os.Geteuid() != 0 {
		cannot("mounting a tmpfs in a private mount namespace needs root")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Exit 97 when the namespace or the mount cannot be made, so that is
	// told apart from the test failing in the child.
	script := `mount --make-rprivate / 2>/dev/null; mount -t tmpfs -o size="$1" relay-test "$2" || exit 97; shift 2; exec "$@"`
	args := []string{"-m", "sh", "-c", script, "sh", size, dir, exe, "-test.run", "^" + t.Name() + "$", "-test.v", "-test.count=1"}
	if dl, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout", time.Until(dl).Round(time.Second).String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, args...)
	cmd.Env = append(os.Environ(), smallFSEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		t.Logf("child on a %s tmpfs:\n%s", size, out)
	case errors.As(err, &ee) && ee.ExitCode() == 97, errors.As(err, &ee) && strings.Contains(string(out), "unshare failed"):
		cannot(fmt.Sprintf("unshare -m / mount -t tmpfs failed: %s", strings.TrimSpace(string(out))))
	default:
		t.Fatalf("child on a %s tmpfs failed: %v\n%s", size, err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("child did not run %s:\n%s", t.Name(), out)
	}
	return ""
}

// fillDisk writes a file in dir until the filesystem is full and returns its
// path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for n := len(buf); ; {
		_, err := f.Write(buf[:n])
		if err == nil {
			continue
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("filling the disk: %v", err)
		}
		if n == 1 {
			return p
		}
		n = max(n/2, 1) // the last few free bytes too
	}
}

// TestDiskFullRecovers: when the store's filesystem fills up, publishes fail
// (ingest answers 503) instead of hanging, Ready says so, and once space is
// free again JetStream comes back by itself — no restart — with every
// message it acknowledged before, during and after.
func TestDiskFullRecovers(t *testing.T) {
	dir := runOnSmallFS(t, "24m")
	if dir == "" {
		return
	}
	cfg := Config{StoreDir: filepath.Join(dir, "store"), AckWait: 2 * time.Second, FetchWait: 300 * time.Millisecond,
		PublishTimeout: time.Second, storeCheckEvery: 100 * time.Millisecond}
	log, lines := captureLog(t)
	c, err := Open(ctxT(t, 20*time.Second), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
	if err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	next := 0
	publish := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		m := msgN(next)
		m.Envelope = append(m.Envelope, make([]byte, 2000)...)
		err := c.Publish(ctx, m, fmt.Sprintf("id-%d", next))
		if err == nil {
			acked[m.EventID] = true
		}
		next++
		return err
	}
	for range 50 {
		if err := publish(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	filler := fillDisk(t, dir)

	// Publishes now fail, each within its bound, with an error ingest turns
	// into a 503.
	var failed error
	for range 2000 {
		start := time.Now()
		err := publish(5 * time.Second)
		if err == nil {
			continue
		}
		if el := time.Since(start); el > 4*time.Second {
			t.Fatalf("a publish on a full disk took %s to fail", el)
		}
		if !errors.Is(err, ErrFull) && !errors.Is(err, ErrUnavailable) {
			t.Fatalf("publish on a full disk: %v (want ErrFull or ErrUnavailable: a 503)", err)
		}
		failed = err
		break
	}
	if failed == nil {
		t.Fatal("2000 publishes on a full disk all succeeded")
	}
	t.Logf("publish on a full disk: %v", failed)
	waitFor(t, 10*time.Second, "Ready to fail on a full disk", func() bool { return c.Ready(context.Background()) != nil })
	t.Logf("ready: %v", c.Ready(context.Background()))
	for range 3 {
		start := time.Now()
		if err := publish(5 * time.Second); err == nil || (!errors.Is(err, ErrFull) && !errors.Is(err, ErrUnavailable)) {
			t.Fatalf("publish while the disk is full: %v", err)
		} else if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("publish while the disk is full took %s to fail", el)
		}
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "Ready after space came back", func() bool { return c.Ready(context.Background()) == nil })
	for range 20 {
		if err := publish(5 * time.Second); err != nil {
			t.Fatalf("publish after space came back: %v", err)
		}
	}
	if len(lines.matching("level=ERROR", "jetstream store cannot take writes", "store_dir="+cfg.StoreDir)) != 1 {
		t.Error("no ERROR line saying the store cannot take writes")
	}

	// Everything acknowledged is there — now, and after a restart (the
	// record cut short by the failed write must not cost a later message).
	got := map[string]bool{}
	for _, d := range fetchUntilEmpty(t, k, 30*time.Second) {
		got[d.Msg.EventID] = true
	}
	for id := range acked {
		if !got[id] {
			t.Errorf("acknowledged message %s lost", id)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2, err := Open(ctxT(t, 20*time.Second), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if n, _ := c2.LostOnOpen(); n != 0 {
		t.Errorf("restart after the disk-full episode reports %d lost", n)
	}
	if n := streamMsgs(t, c2); n != uint64(len(acked)) {
		t.Errorf("after a restart the stream holds %d, want the %d acknowledged", n, len(acked))
	}
	t.Logf("%d acknowledged, %d delivered", len(acked), len(got))
}

// TestStoreWatchReenablesJetStream: when nats-server shuts JetStream down
// (as it does on some write errors), publishes fail at once instead of
// waiting out their timeout, and JetStream comes back by itself.
func TestStoreWatchReenablesJetStream(t *testing.T) {
	cfg := testConfig(t)
	cfg.storeCheckEvery = 100 * time.Millisecond
	c := openTest(t, cfg)
	k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, c, 0, 10)
	if err := c.srv.ShutdownJetStream(); err != nil {
		t.Fatal(err)
	}
	// The watch reloads at once (there is space), so catching the refusal
	// is a race; what must hold is that no publish hangs and every
	// acknowledged one is kept.
	for i := 10; i < 30; i++ {
		start := time.Now()
		err := c.Publish(ctxT(t, 10*time.Second), msgN(i), fmt.Sprintf("id-%d", i))
		if err != nil && !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrFull) {
			t.Fatalf("publish while jetstream is off: %v", err)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("publish while jetstream is off took %s", el)
		}
	}
	waitFor(t, 10*time.Second, "jetstream back", func() bool { return c.srv.JetStreamEnabled() && c.Ready(context.Background()) == nil })
	publishN(t, c, 30, 5)
	ds := fetchUntilEmpty(t, k, 20*time.Second)
	got := map[string]bool{}
	for _, d := range ds {
		got[d.Msg.EventID] = true
	}
	for _, i := range append([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 30, 31, 32, 33, 34) {
		if !got[msgN(i).EventID] {
			t.Errorf("acknowledged message %d missing after jetstream came back", i)
		}
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
