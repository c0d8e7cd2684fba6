package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
)

// relayCLI runs a relay subcommand on the config directory and returns its
// standard output.
func relayCLI(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command(relayBin, append([]string{"--config", dir}, args...)...).Output()
	if err != nil {
		t.Fatalf("relay %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

var publicKeyLine = regexp.MustCompile(`(?m)public key: (\S+)$`)

// The getting-started flow of a managed relay, with the real binary: make
// credentials, start the relay, and see it deliver only once the upstream
// allows its key — with a kill -9 in between that loses nothing the relay
// acknowledged while it waited.
func TestManagedModeDeliversOnlyAfterRegistration(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	// The upstream knows the test key: a managed relay forwards only those.
	up.SetProjectConfig(testKey, []byte(`{"projectId":`+testProject+`,"publicKeys":[{"publicKey":"`+testKey+`"}],"config":{"allowedDomains":["*"]}}`))
	dir := t.TempDir()

	relayCLI(t, dir, "credentials", "generate")
	m := publicKeyLine.FindStringSubmatch(relayCLI(t, dir, "credentials", "show"))
	if m == nil {
		t.Fatal("relay credentials show printed no public key")
	}
	publicKey := m[1]

	port := freePort(t)
	cfg := fmt.Sprintf(`relay:
  mode: managed
  upstream: %s
  host: 127.0.0.1
  port: %d
http:
  timeout: 2s
  connection_timeout: 1s
  retry_delay: 100ms
  max_retry_interval: 500ms
  outage_grace_period: 1s
  auth_interval: 1s
limits:
  shutdown_timeout: 5s
logging:
  level: info
  format: json
worker:
  concurrency: 4
jetstream:
  ack_wait: 3s
`, up.URL(), port)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	// The key is not allowed yet: the relay takes events but is not ready
	// and sends nothing.
	p := launch(t, dir, port)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l := &ledger{}
	for len(l.ids()) < 5 {
		if p.exited() {
			t.Fatalf("relay exited: %v\n%s", p.err, p.logs())
		}
		if sendAcked(ctx, p.url(), l, "before registration") != http.StatusOK {
			time.Sleep(50 * time.Millisecond)
		}
		if ctx.Err() != nil {
			t.Fatalf("relay never accepted events\n%s", p.logs())
		}
	}
	for up.RelayStats().Rejected["Relay is not allowed to register"] < 2 {
		if ctx.Err() != nil {
			t.Fatalf("no refused registration attempts: %+v\n%s", up.RelayStats(), p.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.waitReady(300 * time.Millisecond); err == nil {
		t.Fatal("ready before registration")
	}
	if n := up.Count(); n != 0 {
		t.Fatalf("%d envelopes sent before registration", n)
	}
	if !strings.Contains(p.logs(), "Settings → Relays") || !strings.Contains(p.logs(), publicKey) {
		t.Errorf("the log does not say which key to allow where:\n%s", p.logs())
	}

	// Killed while waiting, restarted, and then allowed. The messages the
	// killed process held come back after jetstream.ack_wait (3 s here).
	p.kill9()
	p = launch(t, dir, port)
	up.AllowRelay(publicKey)
	if err := p.waitReady(60 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, p.logs())
	}
	waitDelivered(t, up.EventIDs, l.ids(), 60*time.Second)

	var registered time.Time
	for _, req := range up.Requests() {
		switch {
		case strings.HasSuffix(req.Path, "/register/response/") && req.Status == http.StatusOK && registered.IsZero():
			registered = req.At
		case strings.HasSuffix(req.Path, "/envelope/") && (registered.IsZero() || req.At.Before(registered)):
			t.Fatalf("envelope request at %s, before the registration (%s)", req.At, registered)
		}
	}
	relayID := regexp.MustCompile(`(?m)relay id: (\S+)$`).FindStringSubmatch(relayCLI(t, dir, "credentials", "show"))[1]
	for _, r := range up.Received() {
		if r.Header.Get("X-Sentry-Relay-Id") != relayID {
			t.Fatalf("envelope with X-Sentry-Relay-Id %q, want %q", r.Header.Get("X-Sentry-Relay-Id"), relayID)
		}
	}
	if st := up.RelayStats(); st.SignedEnvelopes != up.Count() || st.BadSignatures+st.UnsignedEnvelopes != 0 {
		t.Fatalf("envelope signatures %+v for %d envelopes", st, up.Count())
	}
	if err := p.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}
