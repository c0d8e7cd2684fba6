package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/fakesentry"
)

// startNATS starts a NATS server with JetStream on a free 127.0.0.1 port:
// the external server two relay processes of one deployment share.
func startNATS(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{JetStream: true, StoreDir: t.TempDir(), Host: "127.0.0.1",
		Port: server.RANDOM_PORT, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s.ClientURL()
}

// postRaw posts an envelope and returns the status and X-Sentry-Rate-Limits.
func postRaw(ctx context.Context, base string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/"+testProject+"/envelope/", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("X-Sentry-Auth", "Sentry sentry_key="+testKey+", sentry_version=7, sentry_client=e2e/1.0")
	resp, err := sendClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Sentry-Rate-Limits"), nil
}

// Two relay processes (the real binary) on one JetStream share the rate
// limits: the upstream's 429 to whichever worker sent the envelope makes
// both processes' ingest refuse the key's errors with their own 429 and
// Relay's headers, while its transactions still go through.
func TestRateLimitSharedByTwoProcesses(t *testing.T) {
	natsURL := startNATS(t)
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	up.SetMode(fakesentry.RateLimited("30", "30:error:key:quota", 1))
	extra := fmt.Sprintf("jetstream:\n  url: %s\n  ack_wait: 3s\n", natsURL)
	a := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL(), extra: extra})
	b := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL(), extra: extra})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	_, first := eventEnvelope("first")
	if st, _, err := postRaw(ctx, a.url(), first); err != nil || st != http.StatusOK {
		t.Fatalf("first envelope: %d %v", st, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(up.Requests()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the upstream never got the first envelope\n%s", a.logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	refused := map[string]string{}
	for _, p := range []*relayProc{b, a} {
		for {
			id, body := eventEnvelope("limited")
			st, limits, err := postRaw(ctx, p.url(), body)
			if err != nil {
				t.Fatal(err)
			}
			if st == http.StatusTooManyRequests {
				if !strings.HasSuffix(limits, ":error:key:quota") {
					t.Fatalf("%s: X-Sentry-Rate-Limits = %q", p.addr, limits)
				}
				refused[id] = p.addr
				break
			}
			if st != http.StatusOK || time.Now().After(deadline) {
				t.Fatalf("%s: no 429 from the relay; last status %d", p.addr, st)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	txID := envelope.NewEventID()
	tx := []byte(fmt.Sprintf("{\"event_id\":%q}\n{\"type\":\"transaction\"}\n{\"type\":\"transaction\",\"event_id\":%q}\n", txID, txID))
	for _, p := range []*relayProc{a, b} {
		if st, limits, err := postRaw(ctx, p.url(), tx); err != nil || st != http.StatusOK || limits != "" {
			t.Fatalf("%s: transaction: %d %q %v", p.addr, st, limits, err)
		}
	}
	waitDelivered(t, up.EventIDs, []string{txID}, 30*time.Second)
	for id, addr := range refused {
		if n := up.EventIDs()[id]; n != 0 {
			t.Fatalf("envelope refused by %s reached the upstream %d times", addr, n)
		}
	}
}
