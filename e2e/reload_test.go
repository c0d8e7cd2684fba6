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
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/testfixture"
)

// removeExtra is a scrub section whose one rule removes extra.<field>.
func removeExtra(field string) string {
	return fmt.Sprintf("scrub:\n  pii_config:\n    applications:\n      extra.%s: [\"@anything:remove\"]\n", field)
}

// SIGHUP on the running binary: the scrub rules changed on disk apply to the
// next event, a project file added meanwhile is read at once, a key that
// needs a restart is named, a broken config is refused with the old rules
// kept — and a keep-alive connection opened before the first SIGHUP serves
// every request, so no connection was dropped.
func TestSIGHUPReload(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	defer up.Close()
	dir := t.TempDir()
	// cache.file_interval is long, so only the SIGHUP's rescan can find the project file.
	rc := relayConfig{upstream: up.URL(), extra: "cache:\n  file_interval: 1h\n" + removeExtra("a")}
	p := startRelay(t, dir, rc)
	rc.port = mustPort(t, p.addr)

	var (
		dials atomic.Int32
		held  int32 // the dial count when the connection was last used before a SIGHUP
	)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 1,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	send := func(step string) string {
		t.Helper()
		id := envelope.NewEventID()
		ev := fmt.Sprintf(`{"event_id":%q,"message":"reload","extra":{"a":"secret-a","b":"secret-b"}}`, id)
		body := fmt.Sprintf("{\"event_id\":%q}\n{\"type\":\"event\",\"length\":%d}\n%s\n", id, len(ev), ev)
		req, err := http.NewRequest(http.MethodPost, p.url()+"/api/"+testProject+"/envelope/", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-sentry-envelope")
		req.Header.Set("X-Sentry-Auth", "Sentry sentry_key="+testKey+", sentry_version=7, sentry_client=e2e/1.0")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", step, resp.StatusCode)
		}
		if n := dials.Load(); held != 0 && n != held {
			t.Fatalf("%s: a new connection was opened; the keep-alive connection held across SIGHUP was dropped", step)
		}
		waitDelivered(t, up.EventIDs, []string{id}, 30*time.Second)
		return id
	}
	// extra.<removed> is null upstream, the other field is as sent.
	scrubbedBy := func(id, removed, kept string) {
		t.Helper()
		_, payload := eventPayload(t, up, id)
		var doc any
		if err := json.Unmarshal(payload, &doc); err != nil {
			t.Fatal(err)
		}
		if v, ok := testfixture.JSONPath(doc, "extra", removed); !ok || v != nil {
			t.Errorf("event %s: extra.%s = %v upstream, want it removed\n%s", id, removed, v, payload)
		}
		if v, _ := testfixture.JSONPath(doc, "extra", kept); v != "secret-"+kept {
			t.Errorf("event %s: extra.%s = %v upstream, want it kept\n%s", id, kept, v, payload)
		}
	}
	// The server closes a connection idle for 5 s (Relay's keepalive_timeout), so
	// the connection is used right before each SIGHUP: what is tested is that the
	// SIGHUP does not close it, not how long the test took to get there.
	touch := func(step string) {
		t.Helper()
		resp, err := client.Get(p.url() + "/api/relay/healthcheck/live/")
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", step, resp.StatusCode)
		}
		held = dials.Load()
	}
	// waitLog waits for a log line holding every one of want.
	waitLog := func(want ...string) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			for _, l := range strings.Split(p.logs(), "\n") {
				all := true
				for _, w := range want {
					all = all && strings.Contains(l, w)
				}
				if all {
					return l
				}
			}
			if p.exited() {
				t.Fatalf("the relay exited: %v\n%s", p.err, p.logs())
			}
			if time.Now().After(deadline) {
				t.Fatalf("no log line with %q:\n%s", want, p.logs())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	hup := func() {
		t.Helper()
		touch("before SIGHUP")
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	scrubbedBy(send("before any reload"), "a", "b")

	// New rules, a project file, and a key that only a restart applies.
	rc.extra = "cache:\n  file_interval: 1h\n" + removeExtra("b")
	writeConfig(t, dir, rc)
	cfg, err := os.ReadFile(filepath.Join(dir, "config.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("concurrency: 16"), []byte("concurrency: 8"), 1)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	project := fmt.Sprintf(`{"projectId": 4242, "publicKeys": [{"publicKey": %q}]}`, "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0")
	if err := os.MkdirAll(filepath.Join(dir, "projects"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "projects", "4242.json"), []byte(project), 0o600); err != nil {
		t.Fatal(err)
	}
	hup()
	waitLog(`"msg":"SIGHUP: config reloaded"`, `"applied":["scrub.pii_config"]`)
	waitLog(`"msg":"project file loaded"`, `4242.json`)
	waitLog(`"msg":"SIGHUP: these keys changed but take effect only at the next start","keys":["worker.concurrency"]`)
	scrubbedBy(send("after the reload"), "b", "a")

	// A rule that does not compile: refused, the rules of the last reload stay.
	rc.extra = "cache:\n  file_interval: 1h\nscrub:\n  pii_config:\n    rules:\n      r:\n        type: pattern\n        redaction:\n          method: remove\n    applications:\n      extra.a: [\"r\"]\n"
	writeConfig(t, dir, rc)
	hup()
	waitLog(`"msg":"SIGHUP: config reload refused, the running config stays in force"`,
		"config.yml:", "scrub.pii_config", "missing field `pattern`")
	scrubbedBy(send("after a refused reload"), "b", "a")

	if err := p.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}
