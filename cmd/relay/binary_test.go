package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
