package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/fakesentry"
)

// The browser tunnel end to end: the relay binary, the fake Sentry as its
// upstream, and a listener standing where the DSN's host would be — which
// must never be contacted, whatever the DSN says.

const otherKey = "fedcba9876543210fedcba9876543210"

// dsnHost is a listener at the address a DSN names. Every request it gets is
// a failure of the tunnel's promise to send only to relay.upstream.
func dsnHost(t *testing.T) (addr string, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), hits
}

// tunnelEnvelope is an envelope as @sentry/browser posts it to its tunnel:
// the DSN in the header, no credentials in the request.
func tunnelEnvelope(dsn, msg string) (id string, body []byte) {
	id = envelope.NewEventID()
	ev := fmt.Sprintf(`{"event_id":%q,"message":%q,"level":"error","platform":"javascript","user":{"ip_address":"{{auto}}"}}`, id, msg)
	body = []byte(fmt.Sprintf("{\"event_id\":%q,\"dsn\":%q,\"sent_at\":\"2026-11-23T12:00:00Z\"}\n{\"type\":\"event\",\"length\":%d}\n%s\n", id, dsn, len(ev), ev))
	return id, body
}

type tunnelAnswer struct {
	status int
	header http.Header
	body   string
}

// postTunnel posts body to the relay's tunnel the way a browser's fetch does
// (text/plain, an Origin), plus the extra header pairs.
func postTunnel(t *testing.T, base string, body []byte, kv ...string) tunnelAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/tunnel", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.Header.Set("Origin", "http://app.example")
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	resp, err := sendClient.Do(req)
	if err != nil {
		t.Fatalf("POST /tunnel: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return tunnelAnswer{resp.StatusCode, resp.Header, string(b)}
}

// TestTunnelForwardsAllowedDSNsToTheUpstreamOnly: an allowed key + project is
// forwarded to relay.upstream whatever host its DSN names (the listener there
// sees nothing); an unlisted key or project is a 403 and never reaches the
// upstream; the address sent upstream is the real client's, not a forged
// X-Forwarded-For; and what the tunnel acknowledged survives kill -9 during
// an upstream outage.
func TestTunnelForwardsAllowedDSNsToTheUpstreamOnly(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	hostAddr, hits := dsnHost(t)
	dir := t.TempDir()
	// A short ack_wait: what the killed relay had fetched but not acked
	// comes back after it, and the test need not wait the default 30 s.
	rc := relayConfig{upstream: up.URL(), extra: fmt.Sprintf(`tunnel:
  allowed_dsns: ["https://%s@o1.ingest.sentry.io/42"]
jetstream:
  ack_wait: 4s
`, testKey)}
	p := startRelay(t, dir, rc)
	rc.port = mustPort(t, p.addr)

	var acked []string
	for _, dsn := range []string{
		"https://" + testKey + "@o1.ingest.sentry.io/42",
		"http://" + testKey + "@" + hostAddr + "/42", // another host: still only the upstream
	} {
		id, body := tunnelEnvelope(dsn, "allowed")
		a := postTunnel(t, p.url(), body, "X-Forwarded-For", "198.51.100.9")
		if a.status != http.StatusOK || a.body != `{"id":"`+id+`"}` {
			t.Fatalf("allowed DSN %s: %d %s", dsn, a.status, a.body)
		}
		if a.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("answer without CORS: a browser could not read it")
		}
		acked = append(acked, id)
	}
	var refused []string
	for _, dsn := range []string{
		"http://" + otherKey + "@" + hostAddr + "/42", // key not listed
		"http://" + testKey + "@" + hostAddr + "/43",  // project not listed for the key
	} {
		id, body := tunnelEnvelope(dsn, "refused")
		a := postTunnel(t, p.url(), body)
		if a.status != http.StatusForbidden || !strings.Contains(a.body, `"detail":"event submission rejected with_reason: ProjectId"`) {
			t.Fatalf("unlisted DSN %s: %d %s", dsn, a.status, a.body)
		}
		refused = append(refused, id)
	}

	waitDelivered(t, up.EventIDs, acked, 30*time.Second)
	settle(up, time.Second, 10*time.Second)
	got := up.EventIDs()
	for _, id := range refused {
		if got[id] != 0 {
			t.Errorf("refused event %s reached the upstream", id)
		}
	}
	for _, r := range up.Received() {
		if r.ProjectID != 42 || r.PublicKey != testKey {
			t.Errorf("upstream got project %d key %s", r.ProjectID, r.PublicKey)
		}
		if xff := r.Header.Get("X-Forwarded-For"); xff != "127.0.0.1" {
			t.Errorf("X-Forwarded-For upstream = %q, want the socket peer 127.0.0.1 (the client's forged header must not reach Sentry)", xff)
		}
	}

	// Durability: acknowledged by the tunnel while the upstream is down,
	// then the relay is killed; a restart delivers them.
	up.Down()
	var during []string
	for i := range 5 {
		id, body := tunnelEnvelope("https://"+testKey+"@o1.ingest.sentry.io/42", "during outage "+strconv.Itoa(i))
		if a := postTunnel(t, p.url(), body); a.status != http.StatusOK {
			t.Fatalf("during the outage: %d %s", a.status, a.body)
		}
		during = append(during, id)
	}
	p.kill9()
	if err := up.Up(); err != nil {
		t.Fatal(err)
	}
	p = startRelay(t, dir, rc)
	waitDelivered(t, up.EventIDs, during, 60*time.Second)

	if n := hits.Load(); n != 0 {
		t.Fatalf("the host named in a DSN received %d requests: the relay must send only to its upstream", n)
	}
	_ = p.term(10 * time.Second)
}

// TestTunnelRateLimitsEachClient: past its burst a client gets 429 with
// Retry-After, and a made-up X-Forwarded-For (the relay trusts no proxy by
// default) does not give it a fresh bucket.
func TestTunnelRateLimitsEachClient(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	p := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL(), extra: fmt.Sprintf(`tunnel:
  allowed_dsns: ["https://%s@o1.ingest.sentry.io/42"]
  rate_limit: {per_second: 0.05, burst: 2}
`, testKey)})
	dsn := "https://" + testKey + "@o1.ingest.sentry.io/42"
	var acked []string
	for range 2 {
		id, body := tunnelEnvelope(dsn, "within the burst")
		if a := postTunnel(t, p.url(), body); a.status != http.StatusOK {
			t.Fatalf("within the burst: %d %s", a.status, a.body)
		}
		acked = append(acked, id)
	}
	for _, xff := range []string{"", "203.0.113.1", "203.0.113.2, 198.51.100.3", "2001:db8::5"} {
		_, body := tunnelEnvelope(dsn, "over the limit")
		a := postTunnel(t, p.url(), body, "X-Forwarded-For", xff)
		if a.status != http.StatusTooManyRequests {
			t.Fatalf("over the limit with X-Forwarded-For %q: %d %s", xff, a.status, a.body)
		}
		if ra, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || ra < 1 || ra > 20 {
			t.Errorf("Retry-After = %q, want 1..20 s", a.header.Get("Retry-After"))
		}
		if !strings.Contains(a.header.Get("Access-Control-Expose-Headers"), "retry-after") {
			t.Errorf("429 does not expose Retry-After to the browser")
		}
	}
	waitDelivered(t, up.EventIDs, acked, 30*time.Second)
	settle(up, time.Second, 10*time.Second)
	if n := up.Count(); n != 2 {
		t.Fatalf("upstream received %d envelopes, want the 2 within the burst", n)
	}
	_ = p.term(10 * time.Second)
}

// TestBrowserSDKThroughTunnel: a real @sentry/browser in headless Chromium,
// its `tunnel` option pointed at the relay (another origin than the page, so
// CORS is exercised), delivers its events to the upstream — and the host its
// DSN names is never contacted.
//
// It installs what it needs: Debian's chromium (apt-get) and the npm
// packages of testdata/browser/package-lock.json into the user cache. Where
// that is impossible it skips, except under CI=true, where it fails.
func TestBrowserSDKThroughTunnel(t *testing.T) {
	tools := browserTools(t)

	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	hostAddr, hits := dsnHost(t)
	dsn := "http://" + testKey + "@" + hostAddr + "/42"
	p := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL(), extra: fmt.Sprintf(`tunnel:
  allowed_dsns: [%q]
`, dsn)})

	page := httptest.NewServer(http.FileServer(http.Dir(tools.www)))
	t.Cleanup(page.Close)
	q := url.Values{"dsn": {dsn}, "tunnel": {p.url() + "/tunnel"}}
	pageURL := page.URL + "/?" + q.Encode()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tools.node, filepath.Join(tools.work, "drive.js"), pageURL, "90000")
	cmd.Dir = tools.work
	cmd.Env = append(os.Environ(), "CHROMIUM="+tools.chromium)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("drive.js: %v\n%s", err, out)
	}
	log := string(out)
	if strings.Contains(log, "[driver] timed out") {
		t.Fatalf("the page never finished:\n%s", log)
	}
	tunnelPosts := 0
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		// A request still in flight when the driver leaves the page is
		// aborted (net::ERR_ABORTED); that is the driver, not the relay.
		if strings.HasPrefix(line, "[requestfailed]") && strings.Contains(line, "/tunnel") && !strings.HasSuffix(line, "net::ERR_ABORTED") {
			t.Errorf("a tunnel request failed in the browser: %s", line)
		}
		if strings.Contains(line, "CORS policy") {
			t.Errorf("the browser refused an answer of the relay: %s", line)
		}
		if strings.HasPrefix(line, "[net] POST "+p.url()+"/tunnel -> ") {
			tunnelPosts++
			if !strings.HasPrefix(line, "[net] POST "+p.url()+"/tunnel -> 200") {
				t.Errorf("tunnel answered: %s", line)
			}
		}
	}
	if tunnelPosts < 5 {
		t.Fatalf("the SDK posted %d times to the tunnel, want its events, transaction, feedback, session:\n%s", tunnelPosts, log)
	}

	// What the app sends (testdata/browser/app.js), as the upstream must see it.
	want := map[string]func(fakesentry.Item) bool{
		"message event":   payloadHas("event", `browser: a test message`),
		"exception event": payloadHas("event", `browser: a test exception`),
		// A transaction, or span items under @sentry/browser 11's default
		// streamed trace lifecycle.
		"span tree":  payloadHas("", `browser-test-transaction`),
		"attachment": payloadHas("attachment", `hello from @sentry/browser`),
		"feedback":   payloadHas("feedback", `browser: it broke`),
	}
	deadline := time.Now().Add(30 * time.Second)
	var missing []string
	for {
		missing = missing[:0]
		received := up.Received()
		for name, match := range want {
			if !anyItem(received, match) {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(missing) > 0 {
		var types []string
		for _, r := range up.Received() {
			for _, it := range r.Items {
				types = append(types, it.Type)
			}
		}
		t.Fatalf("never reached the upstream: %s (items received: %s)\nbrowser log:\n%s", strings.Join(missing, ", "), strings.Join(types, " "), log)
	}
	for _, r := range up.Received() {
		if r.ProjectID != 42 || r.PublicKey != testKey {
			t.Errorf("upstream got project %d key %s", r.ProjectID, r.PublicKey)
		}
		if xff := r.Header.Get("X-Forwarded-For"); xff != "127.0.0.1" {
			t.Errorf("X-Forwarded-For upstream = %q, want the browser's address 127.0.0.1", xff)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the DSN's host received %d requests", n)
	}
	_ = p.term(10 * time.Second)
}

func payloadHas(itemType, text string) func(fakesentry.Item) bool {
	return func(it fakesentry.Item) bool {
		return (itemType == "" || it.Type == itemType) && bytes.Contains(it.Payload, []byte(text))
	}
}

func anyItem(received []fakesentry.Received, match func(fakesentry.Item) bool) bool {
	for _, r := range received {
		for _, it := range r.Items {
			if match(it) {
				return true
			}
		}
	}
	return false
}

// browserSetup is where the browser test's tools are.
type browserSetup struct {
	chromium string // the browser binary
	node     string
	work     string // drive.js and a node_modules link
	www      string // index.html and the bundled app
}

// browserTools installs (when missing) and prepares what the browser test
// needs. Without root or without the package registries it skips — unless
// CI=true, where a missing browser must fail the run, never pass it quietly.
func browserTools(t *testing.T) browserSetup {
	t.Helper()
	unavailable := t.Skipf
	if os.Getenv("CI") == "true" {
		unavailable = t.Fatalf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	var s browserSetup
	var err error
	if s.chromium, err = findOrInstall(ctx, t, "chromium", "chromium"); err != nil {
		unavailable("headless Chromium: %v", err)
	}
	if s.node, err = findOrInstall(ctx, t, "node", "nodejs", "npm"); err != nil {
		unavailable("node: %v", err)
	}
	npm, err := findOrInstall(ctx, t, "npm", "npm")
	if err != nil {
		unavailable("npm: %v", err)
	}
	modules, err := nodeModules(ctx, t, npm, "browser")
	if err != nil {
		unavailable("npm packages for the browser test: %v", err)
	}

	s.work = t.TempDir()
	s.www = filepath.Join(s.work, "www")
	if err := os.Mkdir(s.www, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ name, dir string }{{"app.js", s.work}, {"drive.js", s.work}, {"index.html", s.www}} {
		b, err := os.ReadFile(filepath.Join("testdata", "browser", f.name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(f.dir, f.name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(modules, filepath.Join(s.work, "node_modules")); err != nil {
		t.Fatal(err)
	}
	// .bin/esbuild is the native binary once esbuild's install script ran,
	// its JavaScript launcher otherwise: run it as a program either way.
	bundle := exec.CommandContext(ctx, filepath.Join(modules, ".bin", "esbuild"), "app.js",
		"--bundle", "--format=iife", "--outfile="+filepath.Join(s.www, "sentry-app.js"), "--log-level=warning")
	bundle.Dir = s.work
	if out, err := bundle.CombinedOutput(); err != nil {
		t.Fatalf("bundling the app with esbuild: %v\n%s", err, out)
	}
	return s
}

// findOrInstall returns the path of command, installing the Debian packages
// with apt-get when it is missing (the test runs as root on CI).
func findOrInstall(ctx context.Context, t *testing.T, command string, packages ...string) (string, error) {
	if p, err := exec.LookPath(command); err == nil {
		return p, nil
	}
	installed := func() bool { _, err := exec.LookPath(command); return err == nil }
	if err := aptInstall(ctx, t, installed, packages...); err != nil {
		return "", fmt.Errorf("%s is not installed: %w", command, err)
	}
	return exec.LookPath(command)
}

// nodeModules installs testdata/<name>'s locked npm packages once per
// lockfile into the user cache and returns its node_modules directory.
// Installs go to a fresh directory renamed into place, so an interrupted or
// concurrent install never leaves a half-filled cache behind.
func nodeModules(ctx context.Context, t *testing.T, npm, name string) (string, error) {
	pkg, err := os.ReadFile(filepath.Join("testdata", name, "package.json"))
	if err != nil {
		return "", err
	}
	lock, err := os.ReadFile(filepath.Join("testdata", name, "package-lock.json"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append(append(pkg, 0), lock...))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "relay-e2e", name+"-"+hex.EncodeToString(sum[:6]))
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, ".package-lock.json")); err == nil {
		return modules, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "install-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for name, b := range map[string][]byte{"package.json": pkg, "package-lock.json": lock} {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			return "", err
		}
	}
	t.Logf("installing testdata/%s's npm packages into %s", name, dir)
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm ci: %v\n%s", err, lastLines(out, 20))
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(modules, ".package-lock.json")); statErr == nil {
			return modules, nil // another run finished first
		}
		return "", err
	}
	return modules, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
