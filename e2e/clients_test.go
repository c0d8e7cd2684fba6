package e2e

// The real Sentry clients other than sentry-go (sdk_test.go), each installed
// by its test from the package registries, sending through the running relay
// to the fake Sentry: @sentry/node, @sentry/browser with a direct DSN,
// sentry-cli send-event and send-envelope, sentry-python and sentry-ruby.
//
// A wiretap between the client and the relay records how each request was
// sent (chunked or not, Content-Encoding, where the key was), passing the
// bytes through untouched, so a test can tell that the wire shape it claims
// to cover really occurred. Under CI=true a client that cannot be installed
// fails its test; elsewhere it skips with the reason.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/testfixture"
)

// tappedRequest is one client request as it came over the wire.
type tappedRequest struct {
	method, path, query string
	chunked             bool     // Transfer-Encoding: chunked, no Content-Length
	encoding            []string // Content-Encoding values; [""] for a present but empty header
	auth                string   // X-Sentry-Auth
	status              int      // what the relay answered
}

// wiretap is a pass-through proxy in front of the relay that records every
// request. It strips no header and adds none (no X-Forwarded-For).
type wiretap struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []tappedRequest
}

func newWiretap(t *testing.T, relayURL string) *wiretap {
	t.Helper()
	target, err := url.Parse(relayURL)
	if err != nil {
		t.Fatal(err)
	}
	w := &wiretap{}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		tr := tappedRequest{
			method:   r.Method,
			path:     r.URL.Path,
			query:    r.URL.RawQuery,
			chunked:  len(r.TransferEncoding) > 0 && r.TransferEncoding[0] == "chunked",
			encoding: r.Header.Values("Content-Encoding"),
			auth:     r.Header.Get("X-Sentry-Auth"),
		}
		sw := &statusWriter{ResponseWriter: rw}
		proxy.ServeHTTP(sw, r)
		tr.status = sw.status
		w.mu.Lock()
		w.reqs = append(w.reqs, tr)
		w.mu.Unlock()
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// dsn is a DSN that points the client at the relay through the tap.
func (w *wiretap) dsn() string {
	return "http://" + testKey + "@" + strings.TrimPrefix(w.srv.URL, "http://") + "/" + testProject
}

// posts returns the recorded POSTs.
func (w *wiretap) posts() []tappedRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []tappedRequest
	for _, r := range w.reqs {
		if r.method == http.MethodPost {
			out = append(out, r)
		}
	}
	return out
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets the proxy's http.ResponseController reach the real writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// unavailableFunc is how a test reports a client it cannot install: a skip
// on a developer's machine, a failure under CI=true (CI must run every client).
func unavailableFunc(t *testing.T) func(format string, args ...any) {
	if os.Getenv("CI") == "true" {
		return t.Fatalf
	}
	return t.Skipf
}

// aptInstall installs Debian packages unless installed reports they are
// there. Installs are serialised across test binaries by a lock file (two
// `go test` runs may install at once; the second finds the packages there
// once it has the lock) and wait for dpkg's own lock, which other tools on
// the machine may hold.
func aptInstall(ctx context.Context, t *testing.T, installed func() bool, packages ...string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("installing %s needs root", strings.Join(packages, " "))
	}
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "relay-e2e-apt.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("apt lock file: %w", err)
	}
	defer lock.Close() // releases the flock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("apt lock file: %w", err)
	}
	if installed() {
		return nil
	}

	apt := func(args ...string) error {
		args = append([]string{"-o", "DPkg::Lock::Timeout=600"}, args...)
		var err error
		for attempt := 0; attempt < 5; attempt++ {
			cmd := exec.CommandContext(ctx, "apt-get", args...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			var out []byte
			if out, err = cmd.CombinedOutput(); err == nil {
				return nil
			}
			err = fmt.Errorf("apt-get %s: %v\n%s", strings.Join(args, " "), err, lastLines(out, 20))
			// The package lists' lock is not covered by DPkg::Lock::Timeout.
			if !strings.Contains(string(out), "Could not get lock") {
				return err
			}
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-time.After(5 * time.Second):
			}
		}
		return err
	}
	t.Logf("installing %s with apt-get", strings.Join(packages, " "))
	install := append([]string{"install", "-y", "--no-install-recommends"}, packages...)
	if err := apt(install...); err != nil {
		// The package lists may be missing or stale: refresh them once.
		if uerr := apt("update"); uerr != nil {
			return errors.Join(err, uerr)
		}
		return apt(install...)
	}
	return nil
}

// debianClient makes sure check passes, installing packages when it does not.
func debianClient(t *testing.T, check func() error, packages ...string) {
	t.Helper()
	if check() == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	unavailable := unavailableFunc(t)
	if err := aptInstall(ctx, t, func() bool { return check() == nil }, packages...); err != nil {
		unavailable("%s: %v", strings.Join(packages, " "), err)
	}
	if err := check(); err != nil {
		unavailable("%s installed, but: %v", strings.Join(packages, " "), err)
	}
}

// commandCheck runs a command that proves a client is usable.
func commandCheck(name string, args ...string) func() error {
	return func() error {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, lastLines(out, 5))
		}
		return nil
	}
}

// runClient runs a client to completion in dir and returns its output. A
// failure shows the client's output and the relay's log.
func runClient(t *testing.T, p *relayProc, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	if env == nil {
		cmd.Env = os.Environ()
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s\nrelay log:\n%s", filepath.Base(name), strings.Join(args, " "), err, out, p.logs())
	}
	return string(out)
}

// clientIDs reads the "id <kind> <event id>" lines the client scripts print
// and requires every kind in want, normalised as Sentry stores event ids.
func clientIDs(t *testing.T, out string, want ...string) map[string]string {
	t.Helper()
	ids := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "id" {
			ids[f[1]] = strings.ToLower(strings.ReplaceAll(f[2], "-", ""))
		}
	}
	for _, k := range want {
		if id := ids[k]; len(id) != 32 {
			t.Fatalf("the client printed no event id for %q (got %q):\n%s", k, id, out)
		}
	}
	return ids
}

func idList(ids map[string]string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, id)
	}
	return out
}

// waitItems waits until, for every name in want, some item upstream matches,
// and fails with the missing ones otherwise.
func waitItems(t *testing.T, up *fakesentry.Server, want map[string]func(fakesentry.Item) bool, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var missing []string
	for {
		missing = missing[:0]
		received := up.Received()
		for name, match := range want {
			if !anyItem(received, match) {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var types []string
	for _, r := range up.Received() {
		for _, it := range r.Items {
			types = append(types, it.Type)
		}
	}
	t.Fatalf("never reached the upstream: %s (items received: %s)", strings.Join(missing, ", "), strings.Join(types, " "))
}

// payloadIs matches an item of the type whose payload is exactly payload.
func payloadIs(itemType, payload string) func(fakesentry.Item) bool {
	return func(it fakesentry.Item) bool { return it.Type == itemType && string(it.Payload) == payload }
}

// checkUpstreamAuth: every envelope reached the upstream under the client's
// key, with the client's own sentry_client.
func checkUpstreamAuth(t *testing.T, up *fakesentry.Server, clientPrefix string) {
	t.Helper()
	for _, r := range up.Received() {
		if r.ProjectID != 42 || r.PublicKey != testKey {
			t.Errorf("upstream got project %d key %q, want 42 and the client's key", r.ProjectID, r.PublicKey)
		}
		if c := r.Auth["sentry_client"]; !strings.HasPrefix(c, clientPrefix) {
			t.Errorf("upstream got sentry_client %q, want %s…", c, clientPrefix)
		}
	}
}

// nodeClient installs testdata/<name>'s locked npm packages and returns node
// and a fresh working directory holding the named testdata files beside a
// node_modules link.
func nodeClient(t *testing.T, name string, files ...string) (node, work string) {
	t.Helper()
	unavailable := unavailableFunc(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	node, err := findOrInstall(ctx, t, "node", "nodejs", "npm")
	if err != nil {
		unavailable("node: %v", err)
	}
	npm, err := findOrInstall(ctx, t, "npm", "npm")
	if err != nil {
		unavailable("npm: %v", err)
	}
	modules, err := nodeModules(ctx, t, npm, name)
	if err != nil {
		unavailable("npm packages of testdata/%s: %v", name, err)
	}
	work = t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("testdata", name, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(modules, filepath.Join(work, "node_modules")); err != nil {
		t.Fatal(err)
	}
	return node, work
}

// TestSentryNodeThroughRelay: the real @sentry/node (testdata/node) sends its
// events, attachments, span tree, session, feedback, check-in and log through
// the relay. It streams every body chunked without Content-Length or
// Content-Type, authenticates by `sentry_key` in the query only, and gzips the
// body above 32 KiB: the wiretap proves each of these happened, and the
// upstream must get every item intact.
func TestSentryNodeThroughRelay(t *testing.T) {
	node, work := nodeClient(t, "node", "send.js")
	up := fakesentry.New(fakesentry.Options{})
	defer up.Close()
	p := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL()})
	tap := newWiretap(t, p.url())

	out := runClient(t, p, work, nil, node, "send.js", tap.dsn())
	ids := clientIDs(t, out, "message", "exception", "attachments", "big", "feedback-target", "feedback")
	waitDelivered(t, up.EventIDs, idList(ids), 30*time.Second)
	waitItems(t, up, map[string]func(fakesentry.Item) bool{
		"message event":      payloadHas("event", "node: a test message"),
		"exception event":    payloadHas("event", "node: a test exception"),
		"text attachment":    payloadIs("attachment", "hello from @sentry/node\n"),
		"binary attachment":  payloadIs("attachment", "\x00\x01\x02\x03\xff\nx"),
		"gzipped attachment": payloadIs("attachment", strings.Repeat("x", 40*1024)+"\n"),
		"span tree":          payloadHas("", "node-e2e-transaction"),
		"session":            payloadHas("session", `"did":"42"`),
		"feedback":           payloadHas("feedback", "node: it broke"),
		"check-in":           payloadHas("check_in", "node-e2e-cron"),
		"log":                payloadHas("log", "node: a structured log line"),
	}, 30*time.Second)

	posts := tap.posts()
	var chunked, gzipped int
	for _, r := range posts {
		q, err := url.ParseQuery(r.query)
		if err != nil || q.Get("sentry_key") != testKey || r.auth != "" {
			t.Errorf("%s?%s: want the key in the query only (X-Sentry-Auth %q)", r.path, r.query, r.auth)
		}
		if r.path != "/api/"+testProject+"/envelope/" || r.status != http.StatusOK {
			t.Errorf("POST %s answered %d", r.path, r.status)
		}
		if r.chunked {
			chunked++
		}
		if len(r.encoding) == 1 && r.encoding[0] == "gzip" {
			gzipped++
		}
	}
	if chunked == 0 || gzipped == 0 {
		t.Fatalf("of %d requests %d were chunked and %d gzipped; the test must cover both", len(posts), chunked, gzipped)
	}
	checkUpstreamAuth(t, up, "sentry.javascript.node/")
	if err := p.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestSentryPythonThroughRelay: Debian's sentry-python (python3-sentry-sdk,
// run by /usr/bin/python3, which sees Debian's packages) posts its plain
// events to the store endpoint and the rest to the envelope endpoint, all
// gzipped. With Sentry's default scrubbing, the password in a frame's local
// variables and the user's IP address never reach the upstream.
func TestSentryPythonThroughRelay(t *testing.T) {
	const python = "/usr/bin/python3"
	debianClient(t, commandCheck(python, "-c", "import sentry_sdk"), "python3-sentry-sdk")
	script, err := filepath.Abs(filepath.Join("testdata", "python", "send.py"))
	if err != nil {
		t.Fatal(err)
	}
	up := fakesentry.New(fakesentry.Options{})
	defer up.Close()
	p := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL(), extra: scrubDefaultsYAML})
	tap := newWiretap(t, p.url())

	out := runClient(t, p, t.TempDir(), nil, python, script, tap.dsn())
	ids := clientIDs(t, out, "message", "exception", "attachment")
	waitDelivered(t, up.EventIDs, idList(ids), 30*time.Second)
	waitItems(t, up, map[string]func(fakesentry.Item) bool{
		"message event (store)":   payloadHas("event", "python: a test message"),
		"exception event (store)": payloadHas("event", "ZeroDivisionError"),
		"attachment":              payloadIs("attachment", "hello from sentry-python\n"),
		"transaction":             payloadHas("transaction", "python-e2e-transaction"),
		"session":                 payloadHas("session", `"init":true`),
	}, 30*time.Second)

	var store int
	for _, r := range tap.posts() {
		if len(r.encoding) != 1 || r.encoding[0] != "gzip" || r.status != http.StatusOK {
			t.Errorf("POST %s with Content-Encoding %q answered %d, want a gzipped body accepted", r.path, r.encoding, r.status)
		}
		if r.path == "/api/"+testProject+"/store/" {
			store++
		}
	}
	if store < 2 {
		t.Fatalf("%d requests to the store endpoint, want the message and the exception there", store)
	}

	for _, r := range up.Received() {
		for _, secret := range []string{"hunter2-e2e-secret", "10.1.2.3"} {
			if i := strings.Index(string(r.Body), secret); i >= 0 {
				t.Errorf("upstream envelope %s still holds %q: …%s…", r.EventID, secret, r.Body[max(0, i-200):min(len(r.Body), i+100)])
			}
		}
	}
	_, payload := eventPayload(t, up, ids["exception"])
	if !strings.Contains(string(payload), `"password":"[Filtered]"`) {
		t.Errorf("the frame's password variable is not filtered upstream:\n%s", payload)
	}
	checkUpstreamAuth(t, up, "sentry.python/")
	if err := p.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestSentryRubyThroughRelay: Debian's sentry-ruby (ruby-sentry-ruby) sends
// an empty Content-Encoding header with every body under 30 KiB and gzips
// bigger ones; the relay must take both, and the 40 KiB event arrives whole.
func TestSentryRubyThroughRelay(t *testing.T) {
	// ruby-sentry-ruby alone may pull only libruby, without /usr/bin/ruby.
	debianClient(t, commandCheck("ruby", "-e", `require "sentry-ruby"`), "ruby", "ruby-sentry-ruby")
	ruby, err := exec.LookPath("ruby")
	if err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "ruby", "send.rb"))
	if err != nil {
		t.Fatal(err)
	}
	up := fakesentry.New(fakesentry.Options{})
	defer up.Close()
	p := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL()})
	tap := newWiretap(t, p.url())

	out := runClient(t, p, t.TempDir(), nil, ruby, script, tap.dsn())
	ids := clientIDs(t, out, "message", "exception", "big")
	waitDelivered(t, up.EventIDs, idList(ids), 30*time.Second)
	waitItems(t, up, map[string]func(fakesentry.Item) bool{
		"message event":   payloadHas("event", "ruby: a test message"),
		"exception event": payloadHas("event", "ZeroDivisionError"),
		"40 KiB event":    payloadHas("event", strings.Repeat("x", 40*1024)),
		"transaction":     payloadHas("transaction", "ruby-e2e-transaction"),
		"sessions":        payloadHas("sessions", `"aggregates"`),
	}, 30*time.Second)

	var empty, gzipped int
	for _, r := range tap.posts() {
		if r.path != "/api/"+testProject+"/envelope/" || r.status != http.StatusOK {
			t.Errorf("POST %s answered %d", r.path, r.status)
		}
		switch {
		case len(r.encoding) == 1 && r.encoding[0] == "":
			empty++
		case len(r.encoding) == 1 && r.encoding[0] == "gzip":
			gzipped++
		}
	}
	if empty == 0 || gzipped == 0 {
		t.Fatalf("%d requests with an empty Content-Encoding and %d gzipped; the test must cover both", empty, gzipped)
	}
	checkUpstreamAuth(t, up, "sentry-ruby/")
	if err := p.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// cliEnv is a clean environment for sentry-cli (no ~/.sentryclirc, no
// SENTRY_* of the machine) with the DSN and any extra variables.
func cliEnv(t *testing.T, dsn string, extra ...string) []string {
	return append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + t.TempDir(), "SENTRY_DSN=" + dsn}, extra...)
}

// dispatched reads the event id sentry-cli prints after it sent an event
// ("Event id: …" for flags, "Event from file … dispatched: …" for a file).
var dispatched = regexp.MustCompile(`(?:Event id|dispatched): ([0-9a-fA-F-]{32,36})`)

func dispatchedID(t *testing.T, out string) string {
	t.Helper()
	m := dispatched.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("sentry-cli printed no event id:\n%s", out)
	}
	return strings.ToLower(strings.ReplaceAll(m[1], "-", ""))
}

// TestSentryCLISendEventThroughRelay: `sentry-cli send-event`, built from
// flags with a log file's lines as breadcrumbs, and `--raw` from a
// pretty-printed JSON file (an item payload with newlines, framed only by its
// length). Without --no-environ sentry-cli ships its whole environment in
// extra.environ: with Sentry's default scrubbing, a password there never
// reaches the upstream.
func TestSentryCLISendEventThroughRelay(t *testing.T) {
	cli := sentryCLI(t)
	up := fakesentry.New(fakesentry.Options{})
	defer up.Close()
	p := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL(), extra: scrubDefaultsYAML})
	tap := newWiretap(t, p.url())
	data, err := filepath.Abs(filepath.Join("testdata", "cli"))
	if err != nil {
		t.Fatal(err)
	}

	const secret = "e2e-cli-db-secret"
	flagsOut := runClient(t, p, data, cliEnv(t, tap.dsn(), "DB_PASSWORD="+secret), cli,
		"send-event", "-m", "cli: hello %s", "-a", "world", "-l", "warning", "-r", "relay-e2e@1.0.0", "-E", "e2e",
		"-t", "source:sentry-cli", "--logfile", "app.log")
	flagsID := dispatchedID(t, flagsOut)
	rawOut := runClient(t, p, data, cliEnv(t, tap.dsn()), cli, "send-event", "--no-environ", "--raw", "event.json")
	rawID := dispatchedID(t, rawOut)
	if rawID != "fc6d8c0c43fc4630ad850ee518f1b9d0" {
		t.Errorf("--raw sent event %s, want event.json's id", rawID)
	}
	waitDelivered(t, up.EventIDs, []string{flagsID, rawID}, 30*time.Second)

	_, payload := eventPayload(t, up, flagsID)
	var doc any
	if err := json.Unmarshal(payload, &doc); err != nil {
		t.Fatalf("upstream event is not JSON: %v", err)
	}
	for _, c := range []struct {
		path []string
		want string
	}{
		{[]string{"logentry", "params", "0"}, "world"},
		{[]string{"breadcrumbs", "values", "2", "message"}, "ERROR: third line"},
		{[]string{"extra", "environ", "DB_PASSWORD"}, "[Filtered]"},
	} {
		if got, ok := testfixture.JSONPath(doc, c.path...); !ok || got != c.want {
			t.Errorf("%s = %v upstream, want %q", strings.Join(c.path, "."), got, c.want)
		}
	}
	_, raw := eventPayload(t, up, rawID)
	if !strings.Contains(string(raw), "cli: a test exception") {
		t.Errorf("the --raw event lost its exception upstream:\n%s", raw)
	}
	for _, r := range up.Received() {
		if strings.Contains(string(r.Body), secret) {
			t.Errorf("upstream envelope %s still holds the environment's password", r.EventID)
		}
	}
	for _, r := range tap.posts() {
		if r.path != "/api/"+testProject+"/envelope/" || r.status != http.StatusOK || !strings.Contains(r.auth, "sentry_key="+testKey) {
			t.Errorf("POST %s (X-Sentry-Auth %q) answered %d", r.path, r.auth, r.status)
		}
	}
	checkUpstreamAuth(t, up, "sentry-cli/")
	if err := p.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestSentryCLISendEnvelopeThroughRelay: `sentry-cli send-envelope`, parsed
// (sentry-cli re-serialises: hyphenated event id, added lengths) and --raw
// (byte for byte: a browser event with binary attachments, and feedback, which
// the parsed mode refuses), and `monitors run`'s two check-ins. The recorded
// envelopes come from internal/testfixture; the upstream gets every item of
// the raw ones byte for byte.
func TestSentryCLISendEnvelopeThroughRelay(t *testing.T) {
	cli := sentryCLI(t)
	up := fakesentry.New(fakesentry.Options{})
	defer up.Close()
	p := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL()})
	tap := newWiretap(t, p.url())
	dir := testfixture.SDKDir(t)
	env := cliEnv(t, tap.dsn())

	var ids []string
	for _, name := range []string{"go-transaction.envelope", "node-session.envelope"} {
		runClient(t, p, dir, env, cli, "send-envelope", name)
	}
	raw := map[string][]envelope.Item{}
	for _, name := range []string{"browser-attachment.envelope", "node-feedback.envelope"} {
		runClient(t, p, dir, env, cli, "send-envelope", "--raw", name)
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		e, err := envelope.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, it := range e.Items {
			raw[name] = append(raw[name], *it)
		}
		ids = append(ids, e.Header.EventID)
	}
	b, err := os.ReadFile(filepath.Join(dir, "go-transaction.envelope"))
	if err != nil {
		t.Fatal(err)
	}
	tx, err := envelope.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, tx.Header.EventID)
	runClient(t, p, t.TempDir(), env, cli, "monitors", "run", "cli-e2e-cron", "--", "sh", "-c", "echo job ran")

	waitDelivered(t, up.EventIDs, ids, 30*time.Second)
	waitItems(t, up, map[string]func(fakesentry.Item) bool{
		"transaction (parsed)": payloadHas("transaction", ""),
		"session (parsed)":     payloadHas("session", ""),
		"check-in in progress": payloadHas("check_in", `"status":"in_progress"`),
		"check-in ok":          payloadHas("check_in", `"status":"ok"`),
	}, 30*time.Second)
	for name, items := range raw {
		found := false
		for _, r := range up.Received() {
			if sameItems(items, r.Items) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s: no upstream envelope carries its %d items byte for byte", name, len(items))
		}
	}
	for _, r := range tap.posts() {
		if r.path != "/api/"+testProject+"/envelope/" || r.status != http.StatusOK {
			t.Errorf("POST %s answered %d", r.path, r.status)
		}
	}
	checkUpstreamAuth(t, up, "sentry-cli/")
	if err := p.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserSDKDirectDSN: a real @sentry/browser in headless Chromium with
// its DSN on the relay itself. The page comes from another origin, so every
// request is a cross-origin fetch that Chromium lets the SDK read only when
// the relay answers CORS; the SDK authenticates by sentry_key in the query.
// A second run adds X-Requested-With to the SDK's requests, a header that
// makes Chromium send a CORS preflight (OPTIONS) first. The tunnel case is
// TestBrowserSDKThroughTunnel.
func TestBrowserSDKDirectDSN(t *testing.T) {
	tools := browserTools(t)
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	p := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL()})
	page := httptest.NewServer(http.FileServer(http.Dir(tools.www)))
	t.Cleanup(page.Close)
	dsn := "http://" + testKey + "@" + p.addr + "/" + testProject

	for _, c := range []struct {
		name  string
		query url.Values
	}{
		{"simple", url.Values{"dsn": {dsn}}},
		{"preflight", url.Values{"dsn": {dsn}, "hdr": {"1"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			up.Reset()
			log := driveBrowser(t, tools, page.URL+"/?"+c.query.Encode())
			envelopeURL := p.url() + "/api/" + testProject + "/envelope/?"
			var posts, withHeader int
			sc := bufio.NewScanner(strings.NewReader(log))
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				// A request still in flight when the driver leaves the page is
				// aborted (net::ERR_ABORTED); that is the driver, not the relay.
				if strings.HasPrefix(line, "[requestfailed]") && strings.Contains(line, p.addr) && !strings.HasSuffix(line, "net::ERR_ABORTED") {
					t.Errorf("a request to the relay failed in the browser: %s", line)
				}
				if strings.Contains(line, "CORS policy") {
					t.Errorf("the browser refused an answer of the relay: %s", line)
				}
				if !strings.HasPrefix(line, "[net] POST "+envelopeURL) {
					continue
				}
				posts++
				if strings.Contains(line, `"x-requested-with":"XMLHttpRequest"`) {
					withHeader++
				}
				if !strings.Contains(line, "sentry_key="+testKey) || !strings.Contains(line, " -> 200 ") {
					t.Errorf("envelope POST: %s", line)
				}
				// The Origin header shows Chromium treated it as cross-origin.
				if !strings.Contains(line, `"origin":"`+page.URL+`"`) {
					t.Errorf("envelope POST without the page's Origin: %s", line)
				}
			}
			if posts < 5 {
				t.Fatalf("the SDK posted %d envelopes to the relay, want its events, transaction, feedback, session:\n%s", posts, log)
			}
			// Playwright does not report preflights, but Chromium sends a
			// POST with a non-safelisted header only after its preflight
			// was answered with that header allowed.
			if c.query.Get("hdr") == "1" && withHeader != posts {
				t.Errorf("%d of %d envelope POSTs carried X-Requested-With, want all (after a preflight):\n%s", withHeader, posts, log)
			}
			waitItems(t, up, map[string]func(fakesentry.Item) bool{
				"message event":   payloadHas("event", `browser: a test message`),
				"exception event": payloadHas("event", `browser: a test exception`),
				"span tree":       payloadHas("", `browser-test-transaction`),
				"attachment":      payloadHas("attachment", `hello from @sentry/browser`),
				"feedback":        payloadHas("feedback", `browser: it broke`),
			}, 30*time.Second)
			checkUpstreamAuth(t, up, "sentry.javascript.browser/")
		})
	}
	_ = p.term(10 * time.Second)
}

// driveBrowser opens pageURL in headless Chromium through drive.js and
// returns its console and network log.
func driveBrowser(t *testing.T, tools browserSetup, pageURL string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tools.node, filepath.Join(tools.work, "drive.js"), pageURL, "90000")
	cmd.Dir = tools.work
	cmd.Env = append(os.Environ(), "CHROMIUM="+tools.chromium)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("drive.js: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "[driver] timed out") {
		t.Fatalf("the page never finished:\n%s", out)
	}
	return string(out)
}
