package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/testfixture"
)

// The real sentry-go SDK sends an error, a message and a transaction through
// the running relay; the fake Sentry receives each with the SDK's own key and
// client.
func TestSentryGoThroughRelay(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{RequireEncoding: "zstd"})
	defer up.Close()
	p := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL()})

	var txIDs []string
	client, err := sentry.NewClient(sentry.ClientOptions{
		BeforeSendTransaction: func(ev *sentry.Event, _ *sentry.EventHint) *sentry.Event {
			txIDs = append(txIDs, string(ev.EventID))
			return ev
		},
		Dsn:              fmt.Sprintf("http://%s@%s/%s", testKey, p.addr, testProject),
		Transport:        sentry.NewHTTPSyncTransport(),
		EnableTracing:    true,
		TracesSampleRate: 1.0,
		Release:          "e2e@1.0.0",
		Environment:      "e2e",
	})
	if err != nil {
		t.Fatal(err)
	}
	hub := sentry.NewHub(client, sentry.NewScope())
	var want []string
	if id := hub.CaptureException(errors.New("e2e: payment failed")); id != nil {
		want = append(want, string(*id))
	}
	if id := hub.CaptureMessage("e2e: hello through the relay"); id != nil {
		want = append(want, string(*id))
	}
	ctx := sentry.SetHubOnContext(context.Background(), hub)
	tx := sentry.StartTransaction(ctx, "e2e-transaction")
	child := tx.StartChild("db.query")
	time.Sleep(5 * time.Millisecond)
	child.Finish()
	tx.Finish()
	if !hub.Flush(10 * time.Second) {
		t.Fatal("sentry-go did not flush")
	}
	want = append(want, txIDs...)
	if len(want) != 3 {
		t.Fatalf("sentry-go returned %d event ids", len(want))
	}
	waitDelivered(t, up.EventIDs, want, 30*time.Second)

	types := map[string]bool{}
	for _, r := range up.Received() {
		if r.PublicKey != testKey {
			t.Errorf("upstream got key %q, want the SDK's %q", r.PublicKey, testKey)
		}
		if c := r.Auth["sentry_client"]; !strings.HasPrefix(c, "sentry.go/") {
			t.Errorf("upstream got sentry_client %q, want the SDK's", c)
		}
		if r.Encoding != "zstd" {
			t.Errorf("upstream got Content-Encoding %q, want zstd", r.Encoding)
		}
		if ua := r.Header.Get("User-Agent"); !strings.HasPrefix(ua, "sentry.go/") {
			t.Errorf("upstream got User-Agent %q, want the SDK's", ua)
		}
		if xff := r.Header.Get("X-Forwarded-For"); xff != "127.0.0.1" {
			t.Errorf("upstream got X-Forwarded-For %q, want the SDK's address", xff)
		}
		for _, it := range r.Items {
			types[it.Type] = true
		}
	}
	if !types["event"] || !types["transaction"] {
		t.Errorf("upstream item types %v, want event and transaction", types)
	}
	if err := p.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// Every captured request of the real clients, replayed against the running
// relay as it was sent, reaches the upstream with its items byte for byte.
func TestCapturedClientTrafficIsForwardedByteForByte(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	defer up.Close()
	p := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL()})

	dir := testfixture.SDKDir(t)
	names, err := filepath.Glob(filepath.Join(dir, "*.headers"))
	if err != nil {
		t.Fatal(err)
	}
	type sentFixture struct {
		name  string
		items []envelope.Item
	}
	var sent []sentFixture
	for _, hname := range names {
		name := strings.TrimSuffix(filepath.Base(hname), ".headers")
		if !strings.HasSuffix(name, ".envelope") {
			continue // store bodies change shape (JSON → envelope); checked in ingest
		}
		req := fixtureRequest(t, dir, name, p.url())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: relay answered %d", name, resp.StatusCode)
		}
		body, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		env, err := envelope.Parse(body)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var items []envelope.Item
		for _, it := range env.Items {
			items = append(items, *it)
		}
		sent = append(sent, sentFixture{name: name, items: items})
	}
	if len(sent) < 50 {
		t.Fatalf("only %d envelope fixtures replayed", len(sent))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got, err := up.WaitFor(ctx, len(sent))
	if err != nil {
		t.Fatalf("upstream received %d of %d: %v", up.Count(), len(sent), err)
	}
	// Match each fixture to an upstream envelope by its item payloads.
	remaining := append([]fakesentry.Received(nil), got...)
	for _, f := range sent {
		found := -1
		for i, r := range remaining {
			if sameItems(f.items, r.Items) {
				found = i
				break
			}
		}
		if found < 0 {
			t.Errorf("%s: no upstream envelope carries its %d items byte for byte", f.name, len(f.items))
			continue
		}
		remaining = append(remaining[:found], remaining[found+1:]...)
	}
	if err := p.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func sameItems(want []envelope.Item, got []fakesentry.Item) bool {
	if len(want) != len(got) {
		return false
	}
	for i := range want {
		if want[i].Type != got[i].Type || !bytes.Equal(want[i].Payload, got[i].Payload) {
			return false
		}
	}
	return true
}

// fixtureRequest rebuilds a captured request against base: its method, the
// envelope path (tunnel captures go to the envelope endpoint with no auth, as
// a tunnel would post them), its headers and its body as it came over the
// wire (the .gz when the client compressed).
func fixtureRequest(t *testing.T, dir, name, base string) *http.Request {
	t.Helper()
	hb, err := os.ReadFile(filepath.Join(dir, name+".headers"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(hb))
	if !sc.Scan() {
		t.Fatalf("%s: empty headers file", name)
	}
	parts := strings.Fields(sc.Text())
	if len(parts) < 2 {
		t.Fatalf("%s: bad request line %q", name, sc.Text())
	}
	method, target := parts[0], parts[1]
	if strings.HasPrefix(target, "/tunnel") {
		target = "/api/" + testProject + "/envelope/"
	}
	hdr := http.Header{}
	for sc.Scan() {
		line := sc.Text()
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		switch strings.ToLower(k) {
		case "host", "content-length", "transfer-encoding", "connection":
			continue
		}
		hdr.Add(k, strings.TrimSpace(v))
	}
	bodyFile := filepath.Join(dir, name)
	if hdr.Get("Content-Encoding") != "" && strings.TrimSpace(hdr.Get("Content-Encoding")) != "" {
		if _, err := os.Stat(bodyFile + ".gz"); err == nil {
			bodyFile += ".gz"
		}
	}
	body, err := os.ReadFile(bodyFile)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, base+target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr
	return req
}

// With the upstream answering only after 2 s, the relay still acknowledges
// at once: ingest never waits on the upstream. This is causal, not timed:
// every request must be answered while the upstream has not yet answered a
// single one.
func TestIngestDoesNotWaitForASlowUpstream(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	defer up.Close()
	up.SetDelay(time.Hour) // held until the test lets go
	p := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL(), httpSection: `http:
  timeout: 5s
  retry_delay: 100ms
  max_retry_interval: 1s
  outage_grace_period: 1h
`})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var l ledger
	for i := 0; i < 100; i++ {
		if st := sendAcked(ctx, p.url(), &l, fmt.Sprintf("slow upstream %d", i)); st != http.StatusOK {
			t.Fatalf("ingest answered %d", st)
		}
	}
	if n := up.Count(); n != 0 {
		t.Fatalf("the upstream answered %d requests although it holds every answer", n)
	}
	if up.InFlight() == 0 {
		t.Fatal("the workers are not forwarding while ingest answers")
	}
	up.SetDelay(0)
	waitDelivered(t, up.EventIDs, l.ids(), 60*time.Second)
	if err := p.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// SIGTERM stops the relay within limits.shutdown_timeout, and what it
// acknowledged before is delivered after a restart.
func TestGracefulShutdownKeepsAcknowledged(t *testing.T) {
	up, dir, rc, p := startRestartable(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	up.Down()
	var l ledger
	for i := 0; i < 50; i++ {
		sendAcked(ctx, p.url(), &l, fmt.Sprintf("before sigterm %d", i))
	}
	start := time.Now()
	if err := p.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(p.logs(), "stopped") {
		t.Fatalf("no clean stop in the log:\n%s", p.logs())
	}
	if err := up.Up(); err != nil {
		t.Fatal(err)
	}
	p2 := startRelay(t, dir, rc)
	waitDelivered(t, up.EventIDs, l.ids(), 60*time.Second)
	_ = p2.term(10 * time.Second)
}

// The relay's start-up lines say where it runs from and what it listens on.
func TestStartupBanner(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	defer up.Close()
	dir := t.TempDir()
	p := startRelay(t, dir, relayConfig{upstream: up.URL()})
	logs := p.logs()
	for _, want := range []string{dir, "proxy", p.addr} {
		if !strings.Contains(logs, want) {
			t.Errorf("start-up output lacks %q:\n%s", want, logs)
		}
	}
	_ = p.term(10 * time.Second)
}
