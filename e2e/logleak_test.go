package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/fakesentry"
)

// leakSecret is the DSN secret of the legacy auth the test's SDK sends.
const leakSecret = "fedcba9876543210fedcba9876543210"

// leakEnvelope is an event and an attachment whose payloads carry marker.
func leakEnvelope(marker string) (id string, body []byte) {
	id = envelope.NewEventID()
	ev := fmt.Sprintf(`{"event_id":%q,"message":"boom %s","level":"error","platform":"go","user":{"email":"%s@example.com"},"extra":{"note":"%s"}}`,
		id, marker, marker, marker)
	att := "attachment " + marker
	body = fmt.Appendf(nil, "{\"event_id\":%q,\"dsn\":\"http://%s:%s@127.0.0.1/%s\"}\n{\"type\":\"event\",\"length\":%d}\n%s\n{\"type\":\"attachment\",\"length\":%d,\"filename\":\"a.txt\"}\n%s\n",
		id, testKey, leakSecret, testProject, len(ev), ev, len(att), att)
	return id, body
}

// A managed relay at debug level, through delivery, bad requests, a denial
// and an outage, never writes a payload, the events' DSN public or secret
// key, or its own credentials' secret key into its log.
func TestLogsHoldNoPayloadsOrSecrets(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	up.SetProjectConfig(testKey, []byte(`{"projectId":`+testProject+`,"publicKeys":[{"publicKey":"`+testKey+`"}],"config":{"allowedDomains":["*"]}}`))
	dir := t.TempDir()
	relayCLI(t, dir, "credentials", "generate")
	m := publicKeyLine.FindStringSubmatch(relayCLI(t, dir, "credentials", "show"))
	if m == nil {
		t.Fatal("relay credentials show printed no public key")
	}
	up.AllowRelay(m[1])
	raw, err := os.ReadFile(filepath.Join(dir, "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	var creds struct {
		SecretKey string `json:"secret_key"`
	}
	if err := json.Unmarshal(raw, &creds); err != nil || creds.SecretKey == "" {
		t.Fatalf("credentials.json: %v", err)
	}

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
  level: debug
  format: json
worker:
  concurrency: 4
jetstream:
  ack_wait: 3s
`, up.URL(), port)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := launch(t, dir, port, "RELAY_LOG_LEVEL=debug")
	if err := p.waitReady(60 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, p.logs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var markers []string
	var acked []string
	send := func(phase string, auth bool) int {
		marker := fmt.Sprintf("PAYLOADMARK%s%d", phase, len(markers))
		markers = append(markers, marker)
		id, body := leakEnvelope(marker)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.url()+"/api/"+testProject+"/envelope/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-sentry-envelope")
		if auth {
			req.Header.Set("X-Sentry-Auth", "Sentry sentry_key="+testKey+", sentry_secret="+leakSecret+", sentry_version=7, sentry_client=leak/1.0")
		}
		resp, err := sendClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			acked = append(acked, id)
		}
		return resp.StatusCode
	}
	for range 5 {
		if st := send("ok", true); st != http.StatusOK {
			t.Fatalf("status %d\n%s", st, p.logs())
		}
	}
	waitDelivered(t, up.EventIDs, acked, time.Minute)

	// Bad requests that carry the payload and the keys.
	send("noauth", false)
	for _, bad := range []string{
		"not an envelope PAYLOADMARKbad0 " + testKey,
		"{\"event_id\":\"zz\"}\n{\"type\":\"event\",\"length\":999}\nPAYLOADMARKbad1",
	} {
		markers = append(markers, "PAYLOADMARKbad")
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.url()+"/api/"+testProject+"/envelope/?sentry_key="+testKey+"&sentry_secret="+leakSecret, strings.NewReader(bad))
		if resp, err := sendClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}

	// The upstream fails a few sends with a detail that quotes the key
	// (retried at debug level), denies the key for a while, then goes away,
	// then is back.
	up.SetMode(fakesentry.Mode{Status: http.StatusServiceUnavailable, Count: 3, Detail: "overloaded by " + testKey})
	send("retried", true)
	time.Sleep(time.Second)
	up.SetMode(fakesentry.Rejecting(http.StatusForbidden, "key disabled "+testKey, 3))
	send("denied", true)
	time.Sleep(2 * time.Second)
	up.Down()
	for range 5 {
		send("outage", true)
	}
	time.Sleep(3 * time.Second)
	if err := up.Up(); err != nil {
		t.Fatal(err)
	}
	up.SetMode(fakesentry.Normal())
	waitDelivered(t, up.EventIDs, acked, 2*time.Minute)
	if err := p.term(30 * time.Second); err != nil {
		t.Error(err)
	}

	logs := p.logs()
	if !strings.Contains(logs, `"level":"DEBUG"`) || !strings.Contains(logs, "upstream outage") {
		t.Fatalf("the log has no debug lines or no outage line: the test did not exercise what it checks\n%s", logs)
	}
	// The denial line and the retried sends' lines name the key by its
	// reference, with the upstream's detail redacted the same way.
	if ref := envelope.KeyRef(testKey); !strings.Contains(logs, "overloaded by "+ref) || !strings.Contains(logs, `"key":"`+ref+`"`) {
		t.Fatalf("no line names the key by %s: the retry and denial paths were not exercised\n%s", ref, logs)
	}
	for _, s := range append([]string{"PAYLOADMARK", testKey, leakSecret, creds.SecretKey}, markers...) {
		if i := strings.Index(logs, s); i >= 0 {
			lineStart := strings.LastIndexByte(logs[:i], '\n') + 1
			lineEnd := strings.IndexByte(logs[i:], '\n')
			if lineEnd < 0 {
				lineEnd = len(logs) - i
			}
			t.Errorf("the log holds %q:\n%s", s, logs[lineStart:i+lineEnd])
		}
	}
}
