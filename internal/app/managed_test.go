package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/credentials"
	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/upstream"
)

const managedEventID = "0123456789abcdef0123456789abcdef"

// managedRelay is app.Run in managed mode on a config directory, against a
// fake Sentry.
type managedRelay struct {
	port   int
	cancel context.CancelFunc
	done   chan error
}

func writeManagedConfig(t *testing.T, dir, upstreamURL string, port int, extra string) *config.Config {
	t.Helper()
	yml := fmt.Sprintf(`relay:
  mode: managed
  upstream: %s
  host: 127.0.0.1
  port: %d
http:
  retry_delay: 50ms
  max_retry_interval: 200ms
  outage_grace_period: 1s
  auth_interval: 1s
limits:
  shutdown_timeout: 3s
%s`, upstreamURL, port, extra)
	return loadConfigIn(t, dir, yml)
}

func runManaged(t *testing.T, cfg *config.Config, creds *credentials.Credentials) *managedRelay {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &managedRelay{port: cfg.Relay.Port, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- Run(ctx, cfg, creds, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop shuts the relay down and returns Run's error; later calls return nil.
func (r *managedRelay) stop(t *testing.T) error {
	t.Helper()
	if r.done == nil {
		return nil
	}
	r.cancel()
	select {
	case err := <-r.done:
		r.done = nil
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

// post sends one envelope until ingest answers 200.
func (r *managedRelay) post(t *testing.T) {
	t.Helper()
	postUntilAccepted(t, r.port, managedEventID)
}

// ready returns the readiness endpoint's status (0 when it cannot be reached).
func (r *managedRelay) ready() int {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/relay/healthcheck/ready/", r.port))
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func waitStatus(t *testing.T, what string, get func() int, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for got := get(); got != want; got = get() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %d, want %d", what, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serveManagedProject makes the fake Sentry serve project 42's config for
// the key post uses: a managed relay forwards only keys the upstream knows.
func serveManagedProject(up *fakesentry.Server) {
	up.SetProjectConfig("0123456789abcdef0123456789abcdef", []byte(`{"projectId":42,"slug":"p42","publicKeys":[{"publicKey":"0123456789abcdef0123456789abcdef"}],"config":{"allowedDomains":["*"]}}`))
}

func newCreds(t *testing.T) *credentials.Credentials {
	t.Helper()
	c, err := credentials.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A managed relay whose key Sentry does not (yet) allow accepts and stores
// envelopes but sends none, and is not ready; once the key is allowed it
// registers, becomes ready and delivers — signed, with its id.
func TestManagedHoldsEnvelopesUntilRegistered(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	serveManagedProject(up)
	creds := newCreds(t)
	cfg := writeManagedConfig(t, t.TempDir(), up.URL(), freePort(t), "")
	r := runManaged(t, cfg, creds)

	r.post(t)
	waitStatus(t, "readiness before registration", r.ready, http.StatusServiceUnavailable)
	deadline := time.Now().Add(10 * time.Second)
	for up.RelayStats().Rejected["Relay is not allowed to register"] < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("registration attempts: %+v", up.RelayStats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := up.Count(); n != 0 {
		t.Fatalf("%d envelopes sent before registration", n)
	}

	up.AllowRelay(creds.PublicKeyString())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := up.WaitFor(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].EventID != managedEventID {
		t.Fatalf("delivered %q", got[0].EventID)
	}
	if id := got[0].Header.Get("X-Sentry-Relay-Id"); id != creds.ID.String() {
		t.Fatalf("X-Sentry-Relay-Id %q, want %q", id, creds.ID)
	}
	if st := up.RelayStats(); st.SignedEnvelopes != 1 || st.BadSignatures+st.UnsignedEnvelopes != 0 {
		t.Fatalf("envelope signatures: %+v", st)
	}
	waitStatus(t, "readiness after registration", r.ready, http.StatusOK)
	assertEnvelopesAfterRegistration(t, up)
}

// assertEnvelopesAfterRegistration checks the fake's request log: no
// envelope request before the first completed registration.
func assertEnvelopesAfterRegistration(t *testing.T, up *fakesentry.Server) {
	t.Helper()
	var registered time.Time
	for _, req := range up.Requests() {
		switch {
		case strings.HasSuffix(req.Path, "/register/response/") && req.Status == http.StatusOK && registered.IsZero():
			registered = req.At
		case strings.HasSuffix(req.Path, "/envelope/") && (registered.IsZero() || req.At.Before(registered)):
			t.Fatalf("envelope request at %s before registration (%s)", req.At, registered)
		}
	}
	if registered.IsZero() {
		t.Fatal("no registration in the request log")
	}
}

// auth.ready: always makes the relay ready while unregistered; it still
// sends nothing.
func TestManagedReadyAlways(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	serveManagedProject(up)
	cfg := writeManagedConfig(t, t.TempDir(), up.URL(), freePort(t), "auth:\n  ready: always\n")
	r := runManaged(t, cfg, newCreds(t))
	r.post(t)
	waitStatus(t, "readiness with auth.ready always", r.ready, http.StatusOK)
	time.Sleep(300 * time.Millisecond)
	if n := up.Count(); n != 0 {
		t.Fatalf("%d envelopes sent while unregistered", n)
	}
}

func TestManagedWithoutCredentials(t *testing.T) {
	dir := t.TempDir()
	cfg := writeManagedConfig(t, dir, "http://127.0.0.1:1/", freePort(t), "")
	err := Run(context.Background(), cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		t.Fatal("Run started a managed relay without credentials")
	}
	for _, want := range []string{filepath.Join(dir, "credentials.json"), `run "relay credentials generate"`, `"relay credentials show"`, "Settings → Relays"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// An envelope acknowledged while the relay was unregistered survives a
// shutdown: the next run, registered, delivers it.
func TestManagedHeldEnvelopeSurvivesRestart(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	serveManagedProject(up)
	creds := newCreds(t)
	dir := t.TempDir()
	cfg := writeManagedConfig(t, dir, up.URL(), freePort(t), "")

	r := runManaged(t, cfg, creds)
	r.post(t)
	deadline := time.Now().Add(10 * time.Second)
	for up.RelayStats().Challenges < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no registration attempts")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("shutdown while unregistered: %v", err)
	}
	if n := up.Count(); n != 0 {
		t.Fatalf("%d envelopes sent while unregistered", n)
	}

	up.AllowRelay(creds.PublicKeyString())
	runManaged(t, cfg, creds)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := up.WaitFor(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].EventID != managedEventID {
		t.Fatalf("delivered %q", got[0].EventID)
	}
	assertEnvelopesAfterRegistration(t, up)
}

// neverRegistered is a registration that never completes.
type neverRegistered struct{}

func (neverRegistered) Authenticated() bool { return false }
func (neverRegistered) Wait(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// countingSender counts the sends that got through the gate.
type countingSender struct{ sends int }

func (c *countingSender) Send(context.Context, upstream.Request) upstream.Result {
	c.sends++
	return upstream.Result{Class: upstream.Accepted}
}
func (c *countingSender) Probe(context.Context) error { return nil }

// A send that waits for a registration which does not come ends with the
// worker's context, as a retryable failure caused by it (the worker then
// hands the message back), and never reaches the upstream. Probes pass.
func TestGatedSenderWaitsForRegistration(t *testing.T) {
	inner := &countingSender{}
	g := gatedSender{Sender: inner, auth: neverRegistered{}}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res := g.Send(ctx, upstream.Request{})
	if res.Class != upstream.Retryable || !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Fatalf("result %+v, want retryable with the context's error", res)
	}
	if inner.sends != 0 {
		t.Fatalf("%d sends reached the upstream", inner.sends)
	}
	if err := g.Probe(context.Background()); err != nil {
		t.Fatalf("probe: %v", err)
	}
}
