package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
)

// Tests in this file build the relay binary and run it as a process: what
// they check (link-time flags, the process's own memory) cannot be seen from
// inside the test binary.

// versionVar is the one variable the relay's version comes from.
const versionVar = "github.com/relayhq/relay/internal/app.Version"

var builds = struct {
	sync.Mutex
	bins map[string]string // ldflags → binary
	dir  string
}{bins: map[string]string{}}

// buildRelay builds this command with ldflags (once per distinct ldflags per
// test run) and returns the binary's path.
func buildRelay(t testing.TB, ldflags string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the relay binary; skipped with -short")
	}
	builds.Lock()
	defer builds.Unlock()
	if bin, ok := builds.bins[ldflags]; ok {
		return bin
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "relay-cmd-bin-")
		if err != nil {
			t.Fatal(err)
		}
		builds.dir = dir
	}
	bin := filepath.Join(builds.dir, fmt.Sprintf("relay-%d", len(builds.bins)))
	cmd := exec.Command("go", "build", "-o", bin, "-ldflags", ldflags, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags %q: %v\n%s", ldflags, err, out)
	}
	builds.bins[ldflags] = bin
	return bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
	}
	os.Exit(code)
}

// relayProcess is a relay binary running on a temporary config directory.
type relayProcess struct {
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

func (p *relayProcess) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Write(b)
}

func (p *relayProcess) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// startRelayProcess runs bin in proxy mode towards upstream with the extra
// YAML sections appended to its config, and waits until it answers the
// readiness probe. Cleanup stops it (SIGTERM, then SIGKILL).
func startRelayProcess(t testing.TB, bin, upstream, extra string) *relayProcess {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf("relay:\n  mode: proxy\n  upstream: %s\n  host: 127.0.0.1\n  port: %d\nlogging:\n  level: info\n%s",
		upstream, port, extra)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &relayProcess{addr: fmt.Sprintf("127.0.0.1:%d", port), done: make(chan struct{})}
	p.cmd = exec.Command(bin, "--config", dir, "run")
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get("http://" + p.addr + "/api/relay/healthcheck/ready/")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("relay exited before it was ready:\n%s", p.logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay not ready after 30s:\n%s", p.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestVersionOneSource: one -X at build time sets the version everywhere the
// relay reports it — the start-up banner, `relay --version` and the Server
// header of its answers.
func TestVersionOneSource(t *testing.T) {
	const want = "9.9.9-test"
	bin := buildRelay(t, "-X "+versionVar+"="+want)

	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "relay "+want {
		t.Errorf("relay --version = %q (%v), want %q", out, err, "relay "+want)
	}

	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	p := startRelayProcess(t, bin, up.URL(), "")

	var banner string
	for _, line := range strings.Split(p.logs(), "\n") {
		if strings.Contains(line, "launching relay") {
			banner = line
		}
	}
	if !strings.Contains(banner, "version="+want) {
		t.Errorf("banner %q does not carry version=%s; logs:\n%s", banner, want, p.logs())
	}
	for _, path := range []string{"/api/relay/healthcheck/live/", "/api/42/envelope/"} {
		res, err := http.Post("http://"+p.addr+path, "application/x-sentry-envelope", strings.NewReader("{}\n"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("Server"); got != "relay/"+want {
			t.Errorf("%s: Server = %q, want %q", path, got, "relay/"+want)
		}
	}
}

var (
	rssRun       = flag.Bool("rss", false, "run TestIngestMemoryBound (minutes on a loaded 2-core machine)")
	rssEnvelopes = flag.Int("rss.envelopes", 64, "TestIngestMemoryBound: concurrent envelopes")
	rssMiB       = flag.Int("rss.mib", 30, "TestIngestMemoryBound: size of each envelope in MiB (the embedded file store refuses messages over 32 MiB)")
	rssMaxMiB    = flag.Int("rss.max-mib", 2048, "TestIngestMemoryBound: the relay's peak RSS (VmHWM) must stay under this")
	rssTimeout   = flag.Duration("rss.timeout", 3*time.Minute, "TestIngestMemoryBound: how long the senders keep sending")
)

// TestIngestMemoryBound: a relay process receiving -rss.envelopes concurrent
// envelopes of -rss.mib MiB each (64 × 30 MiB by default) keeps its peak RSS
// under -rss.max-mib: the in-flight budget (ingest/admission.go) makes the
// requests beyond it wait, or answers them 503 with Retry-After, which the
// senders honour as SDKs do, until -rss.timeout. Every answer must be 200 or
// 503 with Retry-After. The worker is off, so the figure is the ingest
// path's: HTTP, decode, publish and the embedded JetStream.
//
//	go test ./cmd/relay -run TestIngestMemoryBound -v -timeout 30m -args -rss
func TestIngestMemoryBound(t *testing.T) {
	if !*rssRun {
		t.Skip("a measurement that takes minutes: run with -args -rss")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads VmHWM from /proc")
	}
	bin := buildRelay(t, "")
	n, size := *rssEnvelopes, *rssMiB<<20
	p := startRelayProcess(t, bin, "http://127.0.0.1:1/", fmt.Sprintf(
		"limits:\n  max_envelope_size: 200MiB\n  max_attachment_size: 200MiB\n  max_attachments_size: 200MiB\n"+
			"jetstream:\n  max_bytes: %dMiB\nworker:\n  enabled: false\n", (n+1)*(*rssMiB)+64))
	baseline := vmHWM(t, p.cmd.Process.Pid)

	payload := bytes.Repeat([]byte{'a'}, size)
	itemHeader := fmt.Appendf(nil, "{\"type\":\"attachment\",\"filename\":\"big.bin\",\"length\":%d}\n", size)
	send := func(i int) (string, time.Duration, error) {
		header := fmt.Appendf(nil, "{\"event_id\":\"%032x\"}\n", i+1)
		body := io.MultiReader(bytes.NewReader(header), bytes.NewReader(itemHeader), bytes.NewReader(payload), strings.NewReader("\n"))
		req, err := http.NewRequest(http.MethodPost, "http://"+p.addr+"/api/42/envelope/", body)
		if err != nil {
			return "", 0, err
		}
		req.ContentLength = int64(len(header) + len(itemHeader) + size + 1)
		req.Header.Set("X-Sentry-Auth", "Sentry sentry_key=0123456789abcdef0123456789abcdef, sentry_version=7")
		req.Header.Set("Content-Type", "application/x-sentry-envelope")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", 0, err
		}
		answer, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			return "200", 0, nil
		}
		retry, _ := strconv.Atoi(res.Header.Get("Retry-After"))
		var e struct{ Causes []string }
		_ = json.Unmarshal(answer, &e)
		if res.StatusCode != http.StatusServiceUnavailable || retry <= 0 || len(e.Causes) == 0 {
			return "", 0, fmt.Errorf("status %d (Retry-After %q): %s", res.StatusCode, res.Header.Get("Retry-After"), answer)
		}
		// Publish failures name the subject and attempt: keep the kind.
		cause, _, _ := strings.Cut(e.Causes[0], ":")
		return "503 " + cause, time.Duration(retry) * time.Second, nil
	}

	start := time.Now()
	deadline := start.Add(*rssTimeout)
	var mu sync.Mutex
	answers := map[string]int{}
	accepted := 0
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				answer, retry, err := send(i)
				if err != nil {
					t.Errorf("envelope %d: %v", i, err)
					return
				}
				mu.Lock()
				answers[answer]++
				if answer == "200" {
					accepted++
				}
				mu.Unlock()
				if answer == "200" {
					return
				}
				time.Sleep(retry) // as an SDK honours Retry-After
			}
		}()
	}
	wg.Wait()
	peak := vmHWM(t, p.cmd.Process.Pid)
	t.Logf("%d × %d MiB envelopes, %d accepted in %v; answers %v; relay VmHWM %d MiB (idle %d MiB)",
		n, *rssMiB, accepted, time.Since(start).Round(time.Millisecond), answers, peak>>20, baseline>>20)
	if accepted == 0 {
		t.Error("no envelope was accepted")
	}
	if peak > int64(*rssMaxMiB)<<20 {
		t.Errorf("relay peak RSS %d MiB, want under %d MiB", peak>>20, *rssMaxMiB)
	}
}

// vmHWM reads a process's peak resident set size from /proc/<pid>/status.
func vmHWM(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
