package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/fakesentry"
)

// postAs sends an event envelope for project with key and returns the status
// and the error detail ("" on 200).
func postAs(t *testing.T, base, project, key string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/api/"+project+"/envelope/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-sentry-envelope")
	req.Header.Set("X-Sentry-Auth", "Sentry sentry_key="+key+", sentry_version=7, sentry_client=e2e/1.0")
	resp, err := sendClient.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var e struct {
		Detail string `json:"detail"`
	}
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e.Detail
}

// noteEvent is an event with a field only the project's piiConfig removes
// and one only the relay-wide defaults filter.
func noteEvent() (string, []byte) {
	id := envelope.NewEventID()
	ev := fmt.Sprintf(`{"event_id":%q,"message":"refund failed","level":"error","platform":"go","timestamp":"2026-11-23T12:00:00Z","extra":{"customer_note":"call me on +49 30 1234567","password":"hunter2"}}`, id)
	return id, []byte(fmt.Sprintf("{\"event_id\":%q}\n{\"type\":\"event\",\"length\":%d}\n%s\n", id, len(ev), ev))
}

func writeProject(t *testing.T, dir, name, content string) {
	t.Helper()
	pdir := filepath.Join(dir, "projects")
	if err := os.MkdirAll(pdir, 0o700); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(pdir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(pdir, name)); err != nil {
		t.Fatal(err)
	}
}

// A static relay, the real binary: it refuses a key without a project file
// with Relay's 403, forwards a known key's events scrubbed by that project's
// piiConfig (which wins over the relay-wide scrub settings), and picks up a
// project file added while it runs — whose key, having no scrubbing settings
// of its own, gets the relay-wide ones — and, killed with an acknowledged
// envelope, delivers it after the restart with its project's scrubbing.
func TestStaticRelay(t *testing.T) {
	const newKey = "fedcba9876543210fedcba9876543210"
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	dir := t.TempDir()
	writeProject(t, dir, testProject+".json", `{"slug":"shop","publicKeys":[{"publicKey":"`+testKey+`","isEnabled":true}],
		"config":{"allowedDomains":["*"],"piiConfig":{"applications":{"extra.customer_note":["@anything:remove"]}}}}`)
	port := writeConfig(t, dir, relayConfig{upstream: up.URL(), extra: scrubDefaultsYAML + "cache:\n  file_interval: 200ms\n"})
	cfgPath := filepath.Join(dir, "config.yml")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, bytes.Replace(b, []byte("mode: proxy"), []byte("mode: static"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	p := launch(t, dir, port)
	if err := p.waitReady(60 * time.Second); err != nil {
		t.Fatalf("static relay did not become ready: %v\n%s", err, p.logs())
	}

	// A key without a project file: refused at once, nothing stored.
	_, body := noteEvent()
	if st, detail := postAs(t, p.url(), testProject, newKey, body); st != http.StatusForbidden || detail != "event submission rejected with_reason: ProjectId" {
		t.Fatalf("unknown key: %d %q, want 403 ProjectId\n%s", st, detail, p.logs())
	}

	// The project's key: forwarded, scrubbed by the project's piiConfig only.
	id, body := noteEvent()
	if st, detail := postAs(t, p.url(), testProject, testKey, body); st != http.StatusOK {
		t.Fatalf("known key: %d %q", st, detail)
	}
	waitDelivered(t, up.EventIDs, []string{id}, 20*time.Second)
	_, payload := eventPayload(t, up, id)
	checkScrubbed(t, payload, []scrubbedField{{path: []string{"extra", "customer_note"}, want: nil, remarks: []string{"@anything:remove/x"}}})
	if !strings.Contains(string(payload), `"password":"hunter2"`) {
		t.Errorf("the relay-wide defaults were applied to a project with its own piiConfig:\n%s", payload)
	}

	// A project file added while the relay runs takes effect without a
	// restart.
	writeProject(t, dir, "43.json", `{"publicKeys":[{"publicKey":"`+newKey+`"}]}`)
	id2, body2 := noteEvent()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, detail := postAs(t, p.url(), "43", newKey, body2)
		if st == http.StatusOK {
			break
		}
		if st != http.StatusForbidden || time.Now().After(deadline) {
			t.Fatalf("key of the added project: %d %q\n%s", st, detail, p.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitDelivered(t, up.EventIDs, []string{id2}, 20*time.Second)
	_, payload = eventPayload(t, up, id2)
	checkScrubbed(t, payload, []scrubbedField{{path: []string{"extra", "password"}, want: "[Filtered]", remarks: []string{"@password:filter/s"}}})
	if !strings.Contains(string(payload), "call me on") {
		t.Errorf("another project's piiConfig was applied:\n%s", payload)
	}

	if n := up.Count(); n != 2 {
		t.Errorf("upstream received %d envelopes, want 2 (the refused one must not arrive)", n)
	}

	// Killed while holding an acknowledged envelope (upstream down): after
	// the restart it is delivered, still scrubbed by its project's rules —
	// the files are read before the worker takes anything from the stream.
	up.Down()
	id3, body3 := noteEvent()
	if st, detail := postAs(t, p.url(), testProject, testKey, body3); st != http.StatusOK {
		t.Fatalf("known key, upstream down: %d %q", st, detail)
	}
	p.kill9()
	if err := up.Up(); err != nil {
		t.Fatal(err)
	}
	p = launch(t, dir, port)
	if err := p.waitReady(60 * time.Second); err != nil {
		t.Fatalf("restart: %v\n%s", err, p.logs())
	}
	waitDelivered(t, up.EventIDs, []string{id3}, 30*time.Second)
	_, payload = eventPayload(t, up, id3)
	checkScrubbed(t, payload, []scrubbedField{{path: []string{"extra", "customer_note"}, want: nil, remarks: []string{"@anything:remove/x"}}})
	if err := p.term(10 * time.Second); err != nil {
		t.Error(err)
	}
}
