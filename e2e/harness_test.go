// Package e2e starts the real relay binary as a process, points it at an
// in-process fake Sentry (internal/fakesentry) and checks what arrives there:
// real SDK traffic, kills, restarts and upstream outages. Every test keeps a
// ledger of the event ids the relay acknowledged and checks it against what
// the fake Sentry received: an acknowledged envelope must never be lost.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/fakesentry"
)

const (
	testKey     = "0123456789abcdef0123456789abcdef"
	testProject = "42"
)

// relayBin is the relay binary built once by TestMain.
var relayBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "relay-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	relayBin = filepath.Join(dir, "relay")
	build := exec.Command("go", "build", "-o", relayBin, "../cmd/relay")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the relay:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// relayProc is one running relay process.
type relayProc struct {
	t    testing.TB
	dir  string // config directory
	addr string // host:port of ingest
	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   *sync.Mutex
	done chan struct{}
	err  error // Wait's result once done is closed
}

// relayConfig is what a test varies; the rest is fixed for fast, deterministic runs.
type relayConfig struct {
	upstream    string
	port        int    // 0 = pick a free one
	extra       string // appended YAML (top-level sections)
	httpSection string // replaces the default http section
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeConfig writes <dir>/config.yml for a proxy-mode relay.
func writeConfig(t testing.TB, dir string, rc relayConfig) int {
	t.Helper()
	if rc.port == 0 {
		rc.port = freePort(t)
	}
	httpSec := rc.httpSection
	if httpSec == "" {
		httpSec = `http:
  timeout: 2s
  connection_timeout: 1s
  retry_delay: 100ms
  max_retry_interval: 1s
  outage_grace_period: 1s
  encoding: zstd
`
	}
	cfg := fmt.Sprintf(`relay:
  mode: proxy
  upstream: %s
  host: 127.0.0.1
  port: %d
%slimits:
  shutdown_timeout: 5s
logging:
  level: info
  format: json
worker:
  concurrency: 16
%s`, rc.upstream, rc.port, httpSec, rc.extra)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return rc.port
}

// startRelay starts the relay on the config in dir and waits until it is ready.
func startRelay(t testing.TB, dir string, rc relayConfig) *relayProc {
	t.Helper()
	port := writeConfig(t, dir, rc)
	p := launch(t, dir, port)
	if err := p.waitReady(60 * time.Second); err != nil {
		p.kill9()
		t.Fatalf("relay did not become ready: %v\n%s", err, p.logs())
	}
	return p
}

// startRestartable starts a fake Sentry and a relay on a fresh config
// directory, and returns the config with the relay's port filled in, so a
// test can kill the relay and start it again on the same directory and port.
// Cleanup stops the relay first, then the fake Sentry.
func startRestartable(t testing.TB) (*fakesentry.Server, string, relayConfig, *relayProc) {
	t.Helper()
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	dir := t.TempDir()
	rc := relayConfig{upstream: up.URL()}
	p := startRelay(t, dir, rc)
	rc.port = mustPort(t, p.addr)
	return up, dir, rc, p
}

// launch starts the process without waiting for readiness; env entries
// (KEY=value) override the defaults.
func launch(t testing.TB, dir string, port int, env ...string) *relayProc {
	t.Helper()
	p := &relayProc{t: t, dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port), log: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	p.cmd = exec.Command(relayBin, "--config", dir, "run")
	w := &lockedWriter{mu: p.mu, w: p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.Env = append(append(os.Environ(), "RELAY_LOG_LEVEL=info"), env...)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start relay: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill9() })
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (p *relayProc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *relayProc) url() string { return "http://" + p.addr }

func (p *relayProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *relayProc) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("relay exited: %v", p.err)
		}
		resp, err := c.Get(p.url() + "/api/relay/healthcheck/ready/")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s", limit)
}

// kill9 kills the process by PID with SIGKILL and reaps it.
func (p *relayProc) kill9() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// term sends SIGTERM and waits up to limit for the process to exit.
func (p *relayProc) term(limit time.Duration) error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(limit):
		p.kill9()
		return fmt.Errorf("relay did not exit within %s after SIGTERM", limit)
	}
}

// ledger records the event ids the relay acknowledged with 200.
type ledger struct {
	mu    sync.Mutex
	acked []string
}

func (l *ledger) add(id string) {
	l.mu.Lock()
	l.acked = append(l.acked, id)
	l.mu.Unlock()
}

func (l *ledger) ids() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.acked...)
}

// eventEnvelope builds a small error-event envelope with a fresh event id.
func eventEnvelope(msg string) (id string, body []byte) {
	id = envelope.NewEventID()
	ev := fmt.Sprintf(`{"event_id":%q,"message":%q,"level":"error","platform":"go","timestamp":"2026-11-23T12:00:00Z"}`, id, msg)
	body = []byte(fmt.Sprintf("{\"event_id\":%q}\n{\"type\":\"event\",\"length\":%d}\n%s\n", id, len(ev), ev))
	return id, body
}

var sendClient = &http.Client{Timeout: 10 * time.Second}

// postEnvelope sends body to the relay's envelope endpoint with X-Sentry-Auth
// and returns the status and the decoded {"id"}.
func postEnvelope(ctx context.Context, base string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/"+testProject+"/envelope/", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-sentry-envelope")
	req.Header.Set("X-Sentry-Auth", "Sentry sentry_key="+testKey+", sentry_version=7, sentry_client=e2e/1.0")
	resp, err := sendClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out.ID, nil
}

// sendAcked sends one new event and records it in the ledger if it got 200.
// It returns the status (0 on a transport error).
func sendAcked(ctx context.Context, base string, l *ledger, msg string) int {
	id, body := eventEnvelope(msg)
	st, got, err := postEnvelope(ctx, base, body)
	if err != nil {
		return 0
	}
	if st == http.StatusOK {
		if got != id {
			panic(fmt.Sprintf("relay answered id %q for event %q", got, id))
		}
		l.add(id)
	}
	return st
}

// waitDelivered waits until every id in want has reached the fake Sentry, and
// fails the test with the missing ones otherwise.
func waitDelivered(t testing.TB, received func() map[string]int, want []string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var missing []string
	for {
		got := received()
		missing = missing[:0]
		for _, id := range want {
			if got[id] == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	show := missing
	if len(show) > 10 {
		show = show[:10]
	}
	t.Fatalf("%d of %d acknowledged events never reached the upstream (first: %s)", len(missing), len(want), strings.Join(show, ", "))
}

// duplicates counts ids the fake Sentry received more than once.
func duplicates(received map[string]int) int {
	n := 0
	for _, c := range received {
		if c > 1 {
			n += c - 1
		}
	}
	return n
}
