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
	const unknownKey = "fedcba9876543210fedcba9876543210"
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
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
	if err := p.term(10 * time.Second); err != nil {
		t.Error(err)
	}
}
