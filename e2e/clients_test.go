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
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
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

// aptInstall installs Debian packages. Installs are serialised across test
// binaries by a lock file (two `go test` runs may install at once) and wait
// for dpkg's own lock, which other tools on the machine may hold.
func aptInstall(ctx context.Context, t *testing.T, packages ...string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("installing %s needs root", strings.Join(packages, " "))
	}
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "relay-e2e-apt.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("apt lock file: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("apt lock file: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it too

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
	if err := aptInstall(ctx, t, packages...); err != nil {
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
