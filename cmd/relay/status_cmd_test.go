package main

import (
	"encoding/json"
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

	"github.com/relayhq/relay/internal/credentials"
	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/status"
)

// probeRelay is a relay binary running on a config folder the test wrote,
// for the commands that talk to a running relay (status, healthcheck).
type probeRelay struct {
	dir, addr string
	cmd       *exec.Cmd
	done      chan struct{}
	mu        sync.Mutex
	log       strings.Builder
}

func (p *probeRelay) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Write(b)
}

func (p *probeRelay) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// stop ends the relay with SIGTERM (SIGKILL after 15 s) and waits for it.
func (p *probeRelay) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// startProbeRelay writes config.yml (relay section from mode and upstream,
// quick outage detection, then extra) into a fresh folder, runs the relay
// on it and waits until it is live (not ready: a managed relay is not
// ready before it is registered).
func startProbeRelay(t *testing.T, mode, upstream string, setup func(dir string)) *probeRelay {
	t.Helper()
	bin := buildRelay(t, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`relay:
  mode: %s
  upstream: %s
  host: 127.0.0.1
  port: %d
http:
  timeout: 2s
  connection_timeout: 1s
  retry_delay: 100ms
  max_retry_interval: 500ms
  outage_grace_period: 500ms
logging:
  level: info
`, mode, upstream, port)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(dir)
	}
	p := &probeRelay{dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port), done: make(chan struct{})}
	p.cmd = exec.Command(bin, "--config", dir, "run")
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.stop)
	waitFor(t, 30*time.Second, "the relay to be live", func() bool {
		select {
		case <-p.done:
			t.Fatalf("relay exited:\n%s", p.logs())
		default:
		}
		res, err := http.Get("http://" + p.addr + "/api/relay/healthcheck/live/")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	return p
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sendEvents posts n minimal event envelopes to the relay; each must be
// accepted (200).
func sendEvents(t *testing.T, addr string, n int) {
	t.Helper()
	for i := range n {
		body := fmt.Sprintf("{\"event_id\":\"%032x\"}\n{\"type\":\"event\"}\n{\"message\":\"status test %d\"}\n", time.Now().UnixNano()+int64(i), i)
		req, err := http.NewRequest("POST", "http://"+addr+"/api/42/envelope/", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Sentry-Auth", "Sentry sentry_version=7, sentry_key=0123456789abcdef0123456789abcdef")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("envelope %d answered %d", i, res.StatusCode)
		}
	}
}

// statusJSON runs `relay status --json` on the folder and decodes it.
func statusJSON(t *testing.T, dir string) status.Report {
	t.Helper()
	r := run(t, runOpts{}, "--config", dir, "status", "--json")
	if r.code != 0 {
		t.Fatalf("relay status --json: exit %d: %s", r.code, r.stderr)
	}
	var rep status.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("relay status --json printed no report: %v\n%s", err, r.stdout)
	}
	return rep
}

// wantLines checks that every want is a substring of some line of out.
func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// TestStatusCommandFollowsARunningRelay runs the relay binary and checks
// what `relay status` prints through traffic, an upstream outage and the
// relay's exit; and what `relay healthcheck` answers for each.
func TestStatusCommandFollowsARunningRelay(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	p := startProbeRelay(t, "proxy", up.URL(), nil)

	sendEvents(t, p.addr, 3)
	waitFor(t, 30*time.Second, "3 forwarded", func() bool { return statusJSON(t, p.dir).Totals.Forwarded == 3 })
	r := run(t, runOpts{}, "--config", p.dir, "status")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("relay status: exit %d, stderr %q", r.code, r.stderr)
	}
	wantLines(t, r.stdout,
		"at http://"+p.addr+": proxy mode (ingest + worker)",
		"upstream      up  "+up.URL(),
		"stream        0 messages",
		"spool         0 records",
		"empty; 0 dead letters",
		"since start   3 accepted, 3 forwarded, 0 spooled",
	)
	if strings.Contains(r.stdout, "registration") {
		t.Errorf("a proxy relay shows a registration:\n%s", r.stdout)
	}

	// The upstream goes away: envelopes are spooled, the status says so.
	up.Down()
	sendEvents(t, p.addr, 2)
	waitFor(t, 30*time.Second, "2 spooled in an outage", func() bool {
		rep := statusJSON(t, p.dir)
		return rep.Totals.Spooled == 2 && rep.Upstream.State == status.UpstreamOutage &&
			rep.Rates.WindowSeconds > 0 // two samples at least (every 5 s)
	})
	r = run(t, runOpts{}, "status", "--url", p.addr)
	if r.code != 0 {
		t.Fatalf("relay status --url: exit %d: %s", r.code, r.stderr)
	}
	wantLines(t, r.stdout,
		"upstream      outage, failing since ",
		"spool         2 records",
		"oldest received ",
		"since start   5 accepted, 3 forwarded, 2 spooled",
		"per second    ",
		" spooled (over the last ",
	)
	rep := statusJSON(t, p.dir)
	if rep.Spool == nil || rep.Spool.Oldest == nil || rep.Spool.OldestAgeSeconds < 0 || rep.Spool.Oldest.After(rep.Time) {
		t.Errorf("spool oldest in an outage: %+v", rep.Spool)
	}

	// An outage does not make the relay unready: it stores what it accepts.
	for _, mode := range []string{"live", "ready"} {
		r = run(t, runOpts{}, "--config", p.dir, "healthcheck", "--mode", mode)
		if r.code != 0 || r.stdout != fmt.Sprintf("%s: relay at http://%s is %s\n", mode, p.addr, mode) {
			t.Errorf("healthcheck --mode %s: exit %d, stdout %q, stderr %q", mode, r.code, r.stdout, r.stderr)
		}
	}

	// The relay stops: nothing answers, both commands say so and fail.
	p.stop()
	r = run(t, runOpts{}, "--config", p.dir, "status")
	oneErrorLine(t, r, 1, "no relay answers at http://"+p.addr+status.JSONPath)
	r = run(t, runOpts{}, "--config", p.dir, "healthcheck", "--mode", "live")
	oneErrorLine(t, r, 1, "no relay answers at http://"+p.addr+"/api/relay/healthcheck/live/")
}

// TestHealthcheckReadyFollowsRegistration: a managed relay whose key the
// upstream has not allowed is live but not ready, and healthcheck says why
// in one line; once allowed it is ready, and status shows it registered.
func TestHealthcheckReadyFollowsRegistration(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	creds, err := credentials.Generate()
	if err != nil {
		t.Fatal(err)
	}
	p := startProbeRelay(t, "managed", up.URL(), func(dir string) {
		if err := creds.Save(dir, false); err != nil {
			t.Fatal(err)
		}
	})
	waitFor(t, 30*time.Second, "a refused registration", func() bool { return up.RelayStats().Challenges >= 1 })

	r := run(t, runOpts{}, "--config", p.dir, "healthcheck", "--mode", "live")
	if r.code != 0 {
		t.Fatalf("live while unregistered: exit %d: %s", r.code, r.stderr)
	}
	waitFor(t, 30*time.Second, "the refusal's reason", func() bool {
		rep := statusJSON(t, p.dir)
		return rep.Registration != nil && strings.Contains(rep.Registration.Reason, "not allowed")
	})
	r = run(t, runOpts{}, "--config", p.dir, "healthcheck", "--mode", "ready")
	oneErrorLine(t, r, 1, "not ready: unhealthy: http://"+p.addr+"/api/relay/healthcheck/ready/ answered 503")
	wantLines(t, r.stderr, "(registration registering: ", "not allowed")
	r = run(t, runOpts{}, "--config", p.dir, "status")
	wantLines(t, r.stdout, "managed mode", "registration  registering: ", "upstream      waiting for registration  "+up.URL())

	up.AllowRelay(creds.PublicKeyString())
	waitFor(t, 30*time.Second, "ready once allowed", func() bool {
		return run(t, runOpts{}, "--config", p.dir, "healthcheck", "--mode", "ready").code == 0
	})
	r = run(t, runOpts{}, "--config", p.dir, "status")
	wantLines(t, r.stdout, "registration  registered\n", "upstream      up  "+up.URL())
}

// TestProbeAddressAndUsage: where the commands look for the relay, and the
// mistakes they refuse before asking anything.
func TestProbeAddressAndUsage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "config.yml"), fmt.Sprintf("relay:\n  mode: proxy\n  host: 0.0.0.0\n  port: %d\n", port))
	r := run(t, runOpts{}, "--config", dir, "status")
	oneErrorLine(t, r, 1, fmt.Sprintf("no relay answers at http://127.0.0.1:%d%s", port, status.JSONPath))
	oneErrorLine(t, r, 1, "pass --url")
	r = run(t, runOpts{}, "--config", dir, "status", "--url", fmt.Sprintf("127.0.0.1:%d", port))
	if strings.Contains(r.stderr, "pass --url") {
		t.Errorf("with --url given, the error still suggests it: %q", r.stderr)
	}

	// RELAY_PORT applies as it does to `relay run`.
	r = run(t, runOpts{env: map[string]string{"RELAY_PORT": "1"}}, "--config", dir, "healthcheck", "--mode", "ready")
	oneErrorLine(t, r, 1, "no relay answers at http://127.0.0.1:1/api/relay/healthcheck/ready/")

	zero := t.TempDir()
	writeFile(t, filepath.Join(zero, "config.yml"), "relay:\n  mode: proxy\n  port: 0\n")
	oneErrorLine(t, run(t, runOpts{}, "--config", zero, "status"), 2, "relay.port is 0")

	oneErrorLine(t, run(t, runOpts{}, "--config", dir, "healthcheck"), 2, `--mode "": want live or ready`)
	oneErrorLine(t, run(t, runOpts{}, "--config", dir, "healthcheck", "--mode", "dead"), 2, `--mode "dead"`)
	oneErrorLine(t, run(t, runOpts{}, "status", "--url", "ftp://x"), 1, `want http://host:port`)
	oneErrorLine(t, run(t, runOpts{}, "status", "extra"), 2, "takes no arguments")
}
