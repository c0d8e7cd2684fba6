package registration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/credentials"
	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/upstream"
)

// logBuffer collects JSON log lines, safe for concurrent writers.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// lines returns the log records at level whose message contains msg.
func (l *logBuffer) lines(level, msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.buf.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		if rec["level"] == level && strings.Contains(rec["msg"].(string), msg) {
			out = append(out, rec)
		}
	}
	return out
}

type fixture struct {
	up    *fakesentry.Server
	creds *credentials.Credentials
	mon   *Monitor
	logs  *logBuffer
	done  chan error
}

// start runs a Monitor against a fake Sentry with a real upstream client
// and real credentials; allow puts the relay's key on the allow-list
// first. Retries are quick (20 ms, up to 100 ms).
func start(t *testing.T, interval time.Duration, allow bool, setup func(*fakesentry.Server)) *fixture {
	t.Helper()
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	creds, err := credentials.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if allow {
		up.AllowRelay(creds.PublicKeyString())
	}
	if setup != nil {
		setup(up)
	}
	client, err := upstream.New(upstream.Config{URL: up.URL(), RelayID: creds.ID.String(), Signer: creds, Timeout: 2 * time.Second, ConnectionTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	logs := &logBuffer{}
	mon, err := New(Config{
		RelayID:          creds.ID.String(),
		PublicKey:        creds.PublicKeyString(),
		Version:          "0.1.0-test",
		Interval:         interval,
		RetryDelay:       20 * time.Millisecond,
		MaxRetryInterval: 100 * time.Millisecond,
		Logger:           slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, client)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fixture{up: up, creds: creds, mon: mon, logs: logs, done: make(chan error, 1)}
	go func() { f.done <- mon.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-f.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return f
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitAuthenticated(t *testing.T, m *Monitor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v (state %s, ready: %v)", err, m.current(), m.Ready(ctx))
	}
}

func TestRegisterAndReregister(t *testing.T) {
	f := start(t, 50*time.Millisecond, true, nil)
	waitAuthenticated(t, f.mon)
	if err := f.mon.Ready(context.Background()); err != nil {
		t.Fatalf("Ready after registration: %v", err)
	}
	eventually(t, "three registrations", func() bool { return f.up.RelayStats().Registrations >= 3 })
	st := f.up.RelayStats()
	if len(st.Rejected) != 0 {
		t.Fatalf("refusals: %v", st.Rejected)
	}
	if !f.mon.current().authenticated() {
		t.Fatalf("state %s after renewals", f.mon.current())
	}
	// Renewals are not announced at info level: one line for the first
	// registration only.
	if n := len(f.logs.lines("INFO", "registered with the upstream")); n != 1 {
		t.Fatalf("%d info lines for registration, want 1", n)
	}
}

func TestRegisterOnce(t *testing.T) {
	f := start(t, 0, true, nil)
	waitAuthenticated(t, f.mon)
	select {
	case err := <-f.done:
		f.done <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Run with interval 0 did not return after registering")
	}
	if n := f.up.RelayStats().Registrations; n != 1 {
		t.Fatalf("%d registrations", n)
	}
	if !f.mon.current().authenticated() {
		t.Fatalf("state %s", f.mon.current())
	}
}

// A key the upstream does not allow: the relay stays unready, says why
// once, keeps trying, and becomes ready as soon as the key is allowed.
func TestKeyNotAllowedThenAllowed(t *testing.T) {
	f := start(t, time.Hour, false, nil)
	eventually(t, "several refused attempts", func() bool { return f.up.RelayStats().Challenges >= 4 })
	err := f.mon.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Relay is not allowed to register") {
		t.Fatalf("Ready = %v, want the upstream's reason", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := f.mon.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait while refused = %v", err)
	}
	refused := f.logs.lines("ERROR", "refused to register")
	if len(refused) != 1 {
		t.Fatalf("%d error lines for %d refusals, want 1", len(refused), f.up.RelayStats().Challenges)
	}
	if refused[0]["public_key"] != f.creds.PublicKeyString() || refused[0]["detail"] != "Relay is not allowed to register" {
		t.Fatalf("log line does not say which key or why: %v", refused[0])
	}

	f.up.AllowRelay(f.creds.PublicKeyString())
	waitAuthenticated(t, f.mon)
	if err := f.mon.Ready(context.Background()); err != nil {
		t.Fatalf("Ready after the key was allowed: %v", err)
	}
}

// The upstream says stop: the relay asks once and never again.
func TestRelayStop(t *testing.T) {
	f := start(t, time.Hour, true, func(up *fakesentry.Server) { up.SetRelayStop(true) })
	select {
	case err := <-f.done:
		f.done <- err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop after relay: stop")
	}
	if s := f.mon.current(); s != denied {
		t.Fatalf("state %s, want denied", s)
	}
	time.Sleep(300 * time.Millisecond) // several retry delays
	if st := f.up.RelayStats(); st.Challenges != 1 || st.Responses != 0 {
		t.Fatalf("requests after stop: %+v", st)
	}
	if err := f.mon.Ready(context.Background()); err == nil {
		t.Fatal("ready after a denial")
	}
	if n := len(f.logs.lines("ERROR", "relay: stop")); n != 1 {
		t.Fatalf("%d error lines about the denial, want 1", n)
	}
}

// A renewal that cannot reach the upstream keeps the relay authenticated
// (the upstream did not say no); once it answers and refuses the key, the
// relay is no longer authenticated.
func TestRenewalOutageThenKeyRemoved(t *testing.T) {
	f := start(t, 50*time.Millisecond, true, nil)
	waitAuthenticated(t, f.mon)
	f.up.Down()
	// Counted, not slept for: on a loaded machine 400 ms may hold no
	// renewal at all, and the state check below would prove nothing.
	eventually(t, "three renewals failing on the network", func() bool {
		return len(f.logs.lines("DEBUG", "re-registration failed on the network")) >= 3
	})
	if s := f.mon.current(); !s.authenticated() {
		t.Fatalf("state %s during an upstream outage, want still authenticated", s)
	}
	f.up.DisallowRelay(f.creds.PublicKeyString())
	if err := f.up.Up(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refusal to take effect", func() bool { return !f.mon.current().authenticated() })
	if err := f.mon.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("Ready = %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	ok := Config{RelayID: "id", PublicKey: "pk", Version: "1", RetryDelay: time.Second, MaxRetryInterval: time.Minute}
	client, _ := upstream.New(upstream.Config{URL: "http://127.0.0.1:1"})
	if _, err := New(ok, client); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"no id":             func(c *Config) { c.RelayID = "" },
		"no key":            func(c *Config) { c.PublicKey = "" },
		"no version":        func(c *Config) { c.Version = "" },
		"negative interval": func(c *Config) { c.Interval = -time.Second },
		"no retry delay":    func(c *Config) { c.RetryDelay = 0 },
		"max below delay":   func(c *Config) { c.MaxRetryInterval = time.Millisecond },
	} {
		c := ok
		mut(&c)
		if _, err := New(c, client); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(ok, nil); err == nil {
		t.Error("nil client accepted")
	}
}
