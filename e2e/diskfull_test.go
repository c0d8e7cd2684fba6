package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
)

// launchOnTmpfs starts the relay like launch, but in a private mount
// namespace (unshare -m) where a tmpfs of the given size is mounted on its
// JetStream store directory (<dir>/jetstream). The test reaches that
// filesystem through the relay's namespace with nsenter (inNamespace).
// Where the machine cannot do this the test is skipped, saying why — except
// under CI=true, where it fails: CI must run it.
func launchOnTmpfs(t *testing.T, dir string, port int, size string) *relayProc {
	t.Helper()
	cannot := func(why string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot make a small filesystem for this test (CI must run it): %s", why)
		}
		t.Skipf("cannot make a small filesystem for this test: %s", why)
	}
	for _, tool := range []string{"unshare", "nsenter", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			cannot(tool + " not on PATH")
		}
	}
	if os.Geteuid() != 0 {
		cannot("mounting a tmpfs in a private mount namespace needs root")
	}
	store := filepath.Join(dir, "jetstream")
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	// Exit 97 when the namespace or the mount cannot be made.
	script := `mount --make-rprivate / 2>/dev/null; mount -t tmpfs -o size="$1" relay-e2e "$2" || exit 97; shift 2; exec "$@"`
	p := &relayProc{t: t, dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port), log: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	p.cmd = exec.Command("unshare", "-m", "sh", "-c", script, "sh", size, store, relayBin, "--config", dir, "run")
	w := &lockedWriter{mu: p.mu, w: p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.Env = append(os.Environ(), "RELAY_LOG_LEVEL=info")
	if err := p.cmd.Start(); err != nil {
		cannot(fmt.Sprintf("start unshare: %v", err))
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill9() })
	if err := p.waitReady(60 * time.Second); err != nil {
		if p.exited() && p.cmd.ProcessState.ExitCode() == 97 || strings.Contains(p.logs(), "unshare failed") {
			cannot(fmt.Sprintf("unshare -m / mount -t tmpfs failed: %s", strings.TrimSpace(p.logs())))
		}
		t.Fatalf("relay on a tmpfs store did not become ready: %v\n%s", err, p.logs())
	}
	return p
}

// inNamespace runs a shell command in the relay's mount namespace.
func (p *relayProc) inNamespace(t *testing.T, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(p.cmd.Process.Pid), "-m", "--", "sh", "-c", script, "sh"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter %q: %v\n%s", script, err, out)
	}
	return string(out)
}

// TestDiskFullAnswers503AndRecovers: the relay's JetStream store fills up
// (something else took the space). Ingest answers 503 — promptly, not after
// a hang — and readiness fails while the disk is full; once the space is
// free the relay takes events again by itself, without a restart, and
// every event it answered 200 for reaches the upstream.
func TestDiskFullAnswers503AndRecovers(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	dir := t.TempDir()
	// The stream's cap must fit the small filesystem (nats-server refuses
	// a stream larger than the store it can use).
	port := writeConfig(t, dir, relayConfig{upstream: up.URL(), extra: "jetstream:\n  max_bytes: 16MiB\n"})
	p := launchOnTmpfs(t, dir, port, "32m")
	store := filepath.Join(dir, "jetstream")
	t.Log(strings.TrimSpace(p.inNamespace(t, `df -k "$1"`, store)))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var l ledger
	for i := range 50 {
		if st := sendAcked(ctx, p.url(), &l, fmt.Sprintf("before %d", i)); st != http.StatusOK {
			t.Fatalf("event %d before the disk filled: status %d\n%s", i, st, p.logs())
		}
	}

	// Something else fills the filesystem.
	filler := filepath.Join(store, "filler")
	p.inNamespace(t, `cat /dev/zero > "$1" 2>/dev/null; true`, filler)
	t.Log(strings.TrimSpace(p.inNamespace(t, `df -k "$1"`, store)))

	// Events now get 503, the first within the publish timeout, the rest at
	// once; every 200 among them is in the ledger.
	got503 := false
	for i := 0; i < 500 && !got503; i++ {
		start := time.Now()
		st := sendAcked(ctx, p.url(), &l, fmt.Sprintf("filling %d", i))
		if el := time.Since(start); el > 8*time.Second {
			t.Fatalf("an event on a full disk took %s to answer (status %d)", el, st)
		}
		switch st {
		case http.StatusOK:
		case http.StatusServiceUnavailable:
			got503 = true
		default:
			t.Fatalf("event on a full disk: status %d, want 200 or 503", st)
		}
	}
	if !got503 {
		t.Fatal("500 events on a full disk were all accepted")
	}
	for i := range 5 {
		start := time.Now()
		if st := sendAcked(ctx, p.url(), &l, fmt.Sprintf("full %d", i)); st != http.StatusServiceUnavailable {
			t.Fatalf("event while the disk is full: status %d, want 503", st)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("a 503 while the disk is full took %s", el)
		}
	}
	if st := readyStatus(t, p); st == http.StatusOK {
		t.Fatalf("ready while the disk is full\n%s", p.logs())
	}

	// Space comes back: the relay recovers by itself.
	p.inNamespace(t, `rm -f "$1"`, filler)
	if err := p.waitReady(30 * time.Second); err != nil {
		t.Fatalf("relay did not recover after space came back: %v\n%s", err, p.logs())
	}
	for i := range 20 {
		if st := sendAcked(ctx, p.url(), &l, fmt.Sprintf("after %d", i)); st != http.StatusOK {
			t.Fatalf("event %d after space came back: status %d", i, st)
		}
	}
	waitDelivered(t, up.EventIDs, l.ids(), 60*time.Second)
	if p.exited() {
		t.Fatalf("relay exited: %v", p.err)
	}
	logs := p.logs()
	for _, want := range []string{"jetstream store cannot take writes", "takes writes again"} {
		if !strings.Contains(logs, want) {
			t.Errorf("relay log lacks %q", want)
		}
	}
	t.Logf("%d events acknowledged, all delivered", len(l.ids()))
}

func readyStatus(t *testing.T, p *relayProc) int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(p.url() + "/api/relay/healthcheck/ready/")
	if err != nil {
		t.Fatalf("readiness: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
