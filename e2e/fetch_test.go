package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
)

// A managed relay, the real binary, against a fake Sentry that knows one
// project: it registers, fetches that project's config, forwards its
// key's events scrubbed by the fetched piiConfig, and for a key the
// upstream does not know accepts the first request (nothing is known yet,
// as in Relay), drops that envelope in the worker instead of forwarding it,
// and refuses the key with Relay's 403 once the answer is cached.
func TestManagedFetchesProjectConfigs(t *testing.T) {
	const (
		unknownKey = "fedcba9876543210fedcba9876543210"
		tunnelKey  = "7777777777777777777777777777777a" // project 43, first seen through the tunnel
	)
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	up.SetProjectConfig(tunnelKey, []byte(`{"projectId":43,"slug":"web","rev":"r1","publicKeys":[{"publicKey":"`+tunnelKey+`"}],"config":{"allowedDomains":["*"]}}`))
	up.SetProjectConfig(testKey, []byte(`{"projectId":`+testProject+`,"slug":"shop","rev":"r1","publicKeys":[{"publicKey":"`+testKey+`"}],
		"config":{"allowedDomains":["*"],"piiConfig":{"applications":{"extra.customer_note":["@anything:remove"]}}}}`))
	dir := t.TempDir()
	relayCLI(t, dir, "credentials", "generate")
	m := publicKeyLine.FindStringSubmatch(relayCLI(t, dir, "credentials", "show"))
	if m == nil {
		t.Fatal("relay credentials show printed no public key")
	}
	up.AllowRelay(m[1])

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
cache:
  batch_interval: 50ms
limits:
  shutdown_timeout: 5s
logging:
  level: info
  format: json
worker:
  concurrency: 4
`, up.URL(), port)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := launch(t, dir, port)
	if err := p.waitReady(60 * time.Second); err != nil {
		t.Fatalf("managed relay did not become ready: %v\n%s", err, p.logs())
	}

	// The known key: forwarded, scrubbed by the fetched piiConfig only.
	id, body := noteEvent()
	if st, detail := postAs(t, p.url(), testProject, testKey, body); st != http.StatusOK {
		t.Fatalf("known key: %d %q\n%s", st, detail, p.logs())
	}
	waitDelivered(t, up.EventIDs, []string{id}, 30*time.Second)
	_, payload := eventPayload(t, up, id)
	checkScrubbed(t, payload, []scrubbedField{{path: []string{"extra", "customer_note"}, want: nil, remarks: []string{"@anything:remove/x"}}})

	// The browser tunnel admits the keys of fetched project configs: a key
	// whose first request comes through the tunnel waits for its config
	// (fetched on that request) instead of being refused, and is forwarded.
	tid, tbody := tunnelEnvelope("https://"+tunnelKey+"@o1.ingest.example/43", "through the tunnel")
	if a := postTunnel(t, p.url(), tbody); a.status != http.StatusOK {
		t.Fatalf("tunnel, key first seen there: %d %s\n%s", a.status, a.body, p.logs())
	}
	waitDelivered(t, up.EventIDs, []string{tid}, 30*time.Second)

	// The unknown key: accepted while pending, then refused once cached.
	droppedID, body := noteEvent()
	if st, detail := postAs(t, p.url(), testProject, unknownKey, body); st != http.StatusOK {
		t.Fatalf("unknown key before its config is known: %d %q, want 200 (Relay accepts, the worker decides)", st, detail)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := noteEvent()
		st, detail := postAs(t, p.url(), testProject, unknownKey, body)
		if st == http.StatusForbidden {
			if detail != "event submission rejected with_reason: ProjectId" {
				t.Fatalf("unknown key refused with %q", detail)
			}
			break
		}
		if st != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("unknown key never refused: last %d %q\n%s", st, detail, p.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// What was accepted for it is dropped by the worker (logged once), never
	// forwarded.
	for !strings.Contains(p.logs(), "envelopes of a key the upstream refuses are dropped") {
		if time.Now().After(deadline) {
			t.Fatalf("the worker never dropped the unknown key's envelope\n%s", p.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if up.EventIDs()[droppedID] != 0 {
		t.Fatalf("the unknown key's envelope reached the upstream")
	}

	var asked []string
	for _, q := range up.ProjectConfigQueries() {
		if q.Status != http.StatusOK {
			t.Errorf("project config request answered %d", q.Status)
		}
		asked = append(asked, q.PublicKeys...)
	}
	if strings.Count(strings.Join(asked, " "), testKey) != 1 || strings.Count(strings.Join(asked, " "), unknownKey) != 1 {
		t.Errorf("keys asked upstream: %v, want each key once", asked)
	}

	// Killed, and restarted while Sentry is down (so it cannot register):
	// what it fetched is in JetStream's key-value bucket, which survives the
	// restart. The unknown key is refused again without asking Sentry; the
	// known key's event is accepted, held, and delivered scrubbed by the
	// project's piiConfig once Sentry is back. Nothing was asked upstream.
	queriesBefore := len(up.ProjectConfigQueries())
	p.kill9()
	up.Down()
	p = launch(t, dir, port)
	waitLive(t, p)
	deadline = time.Now().Add(20 * time.Second)
	var acceptedAfterRestart []string
	for {
		id, body := noteEvent()
		st, detail := postAs(t, p.url(), testProject, unknownKey, body)
		if st == http.StatusForbidden {
			break
		}
		if st != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("unknown key after the restart, Sentry down: %d %q\n%s", st, detail, p.logs())
		}
		acceptedAfterRestart = append(acceptedAfterRestart, id)
		time.Sleep(50 * time.Millisecond)
	}
	id3, body3 := noteEvent()
	if st, detail := postAs(t, p.url(), testProject, testKey, body3); st != http.StatusOK {
		t.Fatalf("known key after the restart, Sentry down: %d %q", st, detail)
	}
	if err := up.Up(); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, up.EventIDs, []string{id3}, 60*time.Second)
	_, payload = eventPayload(t, up, id3)
	checkScrubbed(t, payload, []scrubbedField{{path: []string{"extra", "customer_note"}, want: nil, remarks: []string{"@anything:remove/x"}}})
	for _, id := range append(acceptedAfterRestart, droppedID) {
		if up.EventIDs()[id] != 0 {
			t.Errorf("an envelope of the unknown key reached the upstream")
		}
	}
	if n := len(up.ProjectConfigQueries()) - queriesBefore; n != 0 {
		t.Errorf("%d project config requests after the restart, want none (the bucket had the answers)", n)
	}
	if err := p.term(10 * time.Second); err != nil {
		t.Error(err)
	}
}

// waitLive waits until the relay's listener answers its liveness check.
func waitLive(t *testing.T, p *relayProc) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if p.exited() {
			t.Fatalf("relay exited: %v\n%s", p.err, p.logs())
		}
		if resp, err := c.Get(p.url() + "/api/relay/healthcheck/live/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay not live after 60 s\n%s", p.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
