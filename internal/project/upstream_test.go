package project

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/credentials"
	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/registration"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
)

// fakeClock is the source's clock for expiry decisions.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// managed is a registered relay's view of a fake Sentry: a real upstream
// client signing with real credentials, registered by a real Monitor.
type managed struct {
	up     *fakesentry.Server
	client *upstream.Client
	mon    *registration.Monitor
}

func startManaged(t *testing.T) *managed {
	t.Helper()
	up := fakesentry.New(fakesentry.Options{})
	t.Cleanup(up.Close)
	creds, err := credentials.Generate()
	if err != nil {
		t.Fatal(err)
	}
	up.AllowRelay(creds.PublicKeyString())
	client, err := upstream.New(upstream.Config{URL: up.URL(), RelayID: creds.ID.String(), Signer: creds, Timeout: 2 * time.Second, ConnectionTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	mon, err := registration.New(registration.Config{
		RelayID: creds.ID.String(), PublicKey: creds.PublicKeyString(), Version: "0.1.0-test",
		RetryDelay: 20 * time.Millisecond, MaxRetryInterval: 100 * time.Millisecond,
	}, client)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = mon.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := mon.Wait(wctx); err != nil {
		t.Fatalf("registration: %v", err)
	}
	return &managed{up: up, client: client, mon: mon}
}

func testUpstreamOptions(clk *fakeClock) UpstreamOptions {
	return UpstreamOptions{
		BatchInterval:    20 * time.Millisecond,
		BatchSize:        500,
		Expiry:           5 * time.Minute,
		Grace:            2 * time.Minute,
		MissExpiry:       time.Minute,
		RetryDelay:       20 * time.Millisecond,
		MaxRetryInterval: 100 * time.Millisecond,
		Now:              clk.Now,
		Logger:           slog.New(slog.DiscardHandler),
	}
}

// runSource starts an upstream source for reg and stops it when the test
// ends.
func runSource(t *testing.T, reg *Registry, m *managed, opts UpstreamOptions) *UpstreamSource {
	t.Helper()
	u, err := NewUpstreamSource(reg, m.client, m.mon, opts)
	if err != nil {
		t.Fatal(err)
	}
	startSource(t, u)
	return u
}

// startSource runs u until the test ends.
func startSource(t *testing.T, u *UpstreamSource) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
}

func stateJSON(project int, key, rev string, extra string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"projectId":%d,"slug":"p%d","rev":%q,"publicKeys":[{"publicKey":%q,"numericId":1}],"config":{"allowedDomains":["*"]%s}}`,
		project, project, rev, key, extra))
}

// waitKnown waits (at most 10 s) until key is no longer pending.
func waitKnown(t *testing.T, reg *Registry, key string) (Status, *Entry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, e := reg.WaitKnown(ctx, key)
	if st == Pending {
		t.Fatalf("key %s still pending after 10 s", key)
	}
	return st, e
}

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

func key32(i int) string { return fmt.Sprintf("%032x", i+1) }

func TestUpstreamBatchesKeys(t *testing.T) {
	tests := []struct {
		name      string
		keys      int
		batchSize int
		queries   int
	}{
		{"all in one request", 40, 500, 1},
		{"split by batch_size", 25, 10, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := startManaged(t)
			for i := 0; i < tt.keys; i += 2 { // every other key is unknown upstream
				m.up.SetProjectConfig(key32(i), stateJSON(100+i, key32(i), "r1", ""))
			}
			reg := NewRegistry(Options{})
			opts := testUpstreamOptions(&fakeClock{t: time.Unix(1e9, 0)})
			opts.BatchSize = tt.batchSize
			u, err := NewUpstreamSource(reg, m.client, m.mon, opts)
			if err != nil {
				t.Fatal(err)
			}
			// Every key is looked up within one collection window: queued
			// before the source runs, so a slow machine cannot split them.
			for i := 0; i < tt.keys; i++ {
				if st, _ := reg.Lookup(key32(i)); st != Pending {
					t.Fatalf("first lookup of %s: %s, want pending", key32(i), st)
				}
			}
			startSource(t, u)
			for i := 0; i < tt.keys; i++ {
				st, e := waitKnown(t, reg, key32(i))
				switch {
				case i%2 == 0 && (st != Known || e.ProjectID != uint64(100+i)):
					t.Errorf("key %d: %s %+v, want known in project %d", i, st, e, 100+i)
				case i%2 == 1 && st != Missing:
					t.Errorf("key %d: %s, want missing", i, st)
				}
			}
			qs := m.up.ProjectConfigQueries()
			if len(qs) != tt.queries {
				t.Fatalf("%d project config requests, want %d", len(qs), tt.queries)
			}
			seen := map[string]bool{}
			for _, q := range qs {
				if len(q.PublicKeys) > tt.batchSize {
					t.Errorf("a request asked for %d keys, more than batch_size %d", len(q.PublicKeys), tt.batchSize)
				}
				for _, k := range q.PublicKeys {
					seen[k] = true
				}
			}
			if len(seen) != tt.keys {
				t.Errorf("requests asked for %d distinct keys, want %d", len(seen), tt.keys)
			}
		})
	}
}

func TestUpstreamPendingThenReady(t *testing.T) {
	m := startManaged(t)
	m.up.SetProjectConfig(keyA, stateJSON(42, keyA, "r1", ""))
	m.up.SetProjectPending(keyA, 2)
	reg := NewRegistry(Options{})
	runSource(t, reg, m, testUpstreamOptions(&fakeClock{t: time.Unix(1e9, 0)}))
	if reason, _ := reg.Admit(keyA, 42, true, ""); reason != "" {
		t.Fatalf("pending key refused (%s); Relay accepts until the config is known", reason)
	}
	st, e := waitKnown(t, reg, keyA)
	if st != Known || e.ProjectID != 42 {
		t.Fatalf("after pending: %s %+v", st, e)
	}
	if n := len(m.up.ProjectConfigQueries()); n != 3 {
		t.Errorf("%d requests, want 3 (two answered pending, then the config)", n)
	}
}

func TestUpstreamUnchangedKeepsState(t *testing.T) {
	m := startManaged(t)
	m.up.SetProjectConfig(keyA, stateJSON(42, keyA, "r1", ""))
	reg := NewRegistry(Options{})
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	runSource(t, reg, m, testUpstreamOptions(clk))
	reg.Lookup(keyA)
	_, first := waitKnown(t, reg, keyA)

	clk.Add(6 * time.Minute) // past expiry, within grace: served and refreshed
	if st, e := reg.Lookup(keyA); st != Known || e != first {
		t.Fatalf("in grace: %s, want the cached state", st)
	}
	// At least, then exactly: a third request fails here, saying so, not
	// as a timeout.
	eventually(t, "the refresh", func() bool { return len(m.up.ProjectConfigQueries()) >= 2 })
	if n := len(m.up.ProjectConfigQueries()); n != 2 {
		t.Fatalf("%d requests, want 2 (the first fetch and one refresh)", n)
	}
	q := m.up.ProjectConfigQueries()[1]
	if len(q.Revisions) != 1 || q.Revisions[0] == nil || *q.Revisions[0] != "r1" {
		t.Fatalf("refresh sent revisions %v, want [r1]", q.Revisions)
	}
	eventually(t, "the refreshed fetch time", func() bool {
		v, _ := reg.up.Load().states.Load(keyA)
		return v.(*cached).fetched.Equal(clk.Now())
	})
	clk.Add(4 * time.Minute) // within the new expiry: no request
	if st, e := reg.Lookup(keyA); st != Known || e != first {
		t.Fatalf("after unchanged: %s, want the same state kept", st)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(m.up.ProjectConfigQueries()); n != 2 {
		t.Errorf("%d requests, want 2: an unchanged config is valid for another expiry", n)
	}
}

func TestUpstreamAnswers(t *testing.T) {
	tests := []struct {
		name   string
		state  string // "" = null
		status Status
		reason string
	}{
		{"null is missing", "", Missing, ReasonProjectID},
		{"disabled project", `{"projectId":42,"disabled":true,"publicKeys":[{"publicKey":"` + keyA + `"}]}`, Known, ReasonProjectID},
		{"unparsable config", `{"projectId":"forty-two","publicKeys":[{"publicKey":"` + keyA + `"}]}`, Known, ReasonProjectState},
		{"scrubbing that does not compile", `{"projectId":42,"publicKeys":[{"publicKey":"` + keyA + `"}],"config":{"piiConfig":{"applications":{"$string":"@email:mask"}}}}`, Known, ReasonProjectState},
		{"enabled config", string(stateJSON(42, keyA, "r1", "")), Known, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := startManaged(t)
			if tt.state != "" {
				m.up.SetProjectConfig(keyA, json.RawMessage(tt.state))
			}
			reg := NewRegistry(Options{})
			runSource(t, reg, m, testUpstreamOptions(&fakeClock{t: time.Unix(1e9, 0)}))
			reg.Lookup(keyA)
			if st, _ := waitKnown(t, reg, keyA); st != tt.status {
				t.Fatalf("status %s, want %s", st, tt.status)
			}
			if reason, _ := reg.Admit(keyA, 42, true, ""); reason != tt.reason {
				t.Errorf("Admit: %q, want %q", reason, tt.reason)
			}
		})
	}
}

func TestUpstreamMissExpiry(t *testing.T) {
	m := startManaged(t)
	reg := NewRegistry(Options{})
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	runSource(t, reg, m, testUpstreamOptions(clk))
	reg.Lookup(keyA)
	if st, _ := waitKnown(t, reg, keyA); st != Missing {
		t.Fatalf("null: %s, want missing", st)
	}
	m.up.SetProjectConfig(keyA, stateJSON(42, keyA, "r1", ""))
	clk.Add(30 * time.Second)
	if st, _ := reg.Lookup(keyA); st != Missing {
		t.Fatalf("within miss_expiry: %s, want missing", st)
	}
	clk.Add(31 * time.Second)
	if st, _ := reg.Lookup(keyA); st != Pending {
		t.Fatalf("past miss_expiry: %s, want pending (asked again)", st)
	}
	if st, _ := waitKnown(t, reg, keyA); st != Known {
		t.Fatalf("after the project appeared upstream: %s, want known", st)
	}
}

func TestUpstreamExpiryAndGrace(t *testing.T) {
	m := startManaged(t)
	m.up.SetProjectConfig(keyA, stateJSON(42, keyA, "r1", ""))
	reg := NewRegistry(Options{})
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	runSource(t, reg, m, testUpstreamOptions(clk))
	reg.Lookup(keyA)
	waitKnown(t, reg, keyA)

	clk.Add(4 * time.Minute) // fresh: nothing asked
	reg.Lookup(keyA)
	time.Sleep(100 * time.Millisecond)
	if n := len(m.up.ProjectConfigQueries()); n != 1 {
		t.Fatalf("%d requests within project_expiry, want 1", n)
	}

	// Untouched past expiry and grace: no longer used; asked again.
	m.up.SetProjectConfig(keyA, stateJSON(43, keyA, "r2", ""))
	clk.Add(4 * time.Minute)
	if st, _ := reg.Lookup(keyA); st != Pending {
		t.Fatalf("past expiry and grace: %s, want pending", st)
	}
	st, e := waitKnown(t, reg, keyA)
	if st != Known || e.ProjectID != 43 {
		t.Fatalf("after the refetch: %s %+v, want project 43", st, e)
	}
}

func TestUpstreamOutageServesCached(t *testing.T) {
	m := startManaged(t)
	m.up.SetProjectConfig(keyA, stateJSON(42, keyA, "r1", ""))
	reg := NewRegistry(Options{})
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	u := runSource(t, reg, m, testUpstreamOptions(clk))
	reg.Lookup(keyA)
	reg.Lookup(keyB)
	if st, _ := waitKnown(t, reg, keyA); st != Known {
		t.Fatal("no config before the outage")
	}
	if st, _ := waitKnown(t, reg, keyB); st != Missing {
		t.Fatal("keyB not missing before the outage")
	}

	m.up.Down()
	clk.Add(6 * time.Minute) // past expiry: a refresh is tried and fails
	if st, _ := reg.Lookup(keyA); st != Known {
		t.Fatalf("in grace: %s", st)
	}
	eventually(t, "the failed refresh", u.failing.Load)
	clk.Add(time.Hour) // far past expiry and grace, upstream still down
	for _, k := range []string{keyA, keyB} {
		st, _ := reg.Lookup(k)
		want := map[string]Status{keyA: Known, keyB: Missing}[k]
		if st != want {
			t.Errorf("%s during the outage: %s, want %s (cached answers are served while the upstream is down)", k, st, want)
		}
	}
	if reason, _ := reg.Admit(keyA, 42, true, ""); reason != "" {
		t.Errorf("cached config during the outage: refused %q", reason)
	}

	if err := m.up.Up(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refresh after the outage", func() bool { return !u.failing.Load() })
	if st, _ := reg.Lookup(keyA); st != Known {
		t.Errorf("after the outage: %s", st)
	}
}

func TestUpstreamProjectFilesWin(t *testing.T) {
	m := startManaged(t)
	m.up.SetProjectConfig(keyA, stateJSON(99, keyA, "r1", ""))
	reg := regWith(t, Options{}, map[string]string{
		"42.json": `{"publicKeys":[{"publicKey":"` + keyA + `"}]}`,
	})
	runSource(t, reg, m, testUpstreamOptions(&fakeClock{t: time.Unix(1e9, 0)}))
	if st, e := reg.Lookup(keyA); st != Known || e.ProjectID != 42 {
		t.Fatalf("file key: %s %+v, want the file's project 42", st, e)
	}
	reg.Lookup(keyB)
	waitKnown(t, reg, keyB)
	for _, q := range m.up.ProjectConfigQueries() {
		for _, k := range q.PublicKeys {
			if k == keyA {
				t.Errorf("asked the upstream for a key a project file has")
			}
		}
	}
}

func TestUpstreamScrubbingFromFetchedConfig(t *testing.T) {
	m := startManaged(t)
	m.up.SetProjectConfig(keyA, stateJSON(42, keyA, "r1",
		`,"piiConfig":{"applications":{"$string":["@email:replace"]}}`))
	reg := NewRegistry(Options{})
	runSource(t, reg, m, testUpstreamOptions(&fakeClock{t: time.Unix(1e9, 0)}))
	reg.Lookup(keyA)
	waitKnown(t, reg, keyA)
	s, err := reg.ScrubberFor(keyA)
	if err != nil || s == nil {
		t.Fatalf("ScrubberFor: %v, %v; want the project's scrubber", s, err)
	}
}

// failingStore is a shared store that is unavailable.
type failingStore struct{}

func (failingStore) Get(context.Context, string) ([]byte, error) {
	return nil, errors.New("bucket gone")
}
func (failingStore) Put(context.Context, string, []byte) error { return errors.New("bucket gone") }

func TestUpstreamSharedBetweenProcesses(t *testing.T) {
	m := startManaged(t)
	m.up.SetProjectConfig(keyA, stateJSON(42, keyA, "r1", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := stream.Open(ctx, stream.Config{StoreDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	var (
		regs   []*Registry
		bucket *stream.KV
	)
	for i := 0; i < 2; i++ { // two processes, each binding the bucket
		kv, err := st.KeyValue(ctx, "relay_test_projects", 7*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		bucket = kv
		reg := NewRegistry(Options{})
		opts := testUpstreamOptions(clk)
		opts.Shared = kv
		runSource(t, reg, m, opts)
		regs = append(regs, reg)
	}
	regs[0].Lookup(keyA)
	regs[0].Lookup(keyB) // null upstream: shared as a miss
	waitKnown(t, regs[0], keyA)
	waitKnown(t, regs[0], keyB)
	asked := len(m.up.ProjectConfigQueries()) // 1, or 2 if the lookups fell in two batches
	// A state is served as soon as it is stored, and put in the bucket
	// just after: a waiter that looks the key up in between sees it before
	// the bucket has it. The second process is asked once it is there.
	for _, k := range []string{keyA, keyB} {
		eventually(t, "the first process's answer in the bucket", func() bool {
			b, err := bucket.Get(ctx, sharedKey(k))
			return err == nil && b != nil
		})
	}
	regs[1].Lookup(keyA)
	regs[1].Lookup(keyB)
	if s, e := waitKnown(t, regs[1], keyA); s != Known || e.ProjectID != 42 {
		t.Fatalf("second process: %s %+v", s, e)
	}
	if s, _ := waitKnown(t, regs[1], keyB); s != Missing {
		t.Fatalf("second process, null key: %s", s)
	}
	if n := len(m.up.ProjectConfigQueries()); n != asked {
		t.Fatalf("the second process sent %d upstream requests, want 0 (it reads the bucket)", n-asked)
	}

	// A stale record is not used: the second process asks the upstream.
	clk.Add(6 * time.Minute)
	regs[1].Lookup(keyA)
	eventually(t, "the second process's own refresh", func() bool { return len(m.up.ProjectConfigQueries()) >= asked+1 })
	if n := len(m.up.ProjectConfigQueries()); n != asked+1 {
		t.Fatalf("%d requests after the stale record, want %d", n, asked+1)
	}
}

// blockingStore is a shared store whose Put waits until unblock is
// closed; it holds nothing, so every key is asked upstream.
type blockingStore struct {
	putting chan struct{} // receives once per Put that has started
	unblock chan struct{}
}

func (blockingStore) Get(context.Context, string) ([]byte, error) { return nil, nil }
func (s blockingStore) Put(ctx context.Context, _ string, _ []byte) error {
	select {
	case s.putting <- struct{}{}:
	default:
	}
	select {
	case <-s.unblock:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A lookup that sees an answer while the source is still busy with it
// (sharing it, here held up) and finds it expired queues a refresh: the key
// is not left "being fetched" once its answer is visible. This is the
// window that made TestUpstreamUnchangedKeepsState fail on a loaded box,
// held open.
func TestUpstreamLookupWhileAnswerIsSharedQueuesRefresh(t *testing.T) {
	m := startManaged(t)
	m.up.SetProjectConfig(keyA, stateJSON(42, keyA, "r1", ""))
	reg := NewRegistry(Options{})
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	opts := testUpstreamOptions(clk)
	store := blockingStore{putting: make(chan struct{}, 1), unblock: make(chan struct{})}
	opts.Shared = store
	runSource(t, reg, m, opts)
	reg.Lookup(keyA)
	select {
	case <-store.putting: // the answer is stored; the fetch is not over
	case <-time.After(10 * time.Second):
		t.Fatal("the answer was never shared")
	}
	first, e := reg.Lookup(keyA)
	if first != Known {
		t.Fatalf("while the answer is shared: %s, want known", first)
	}
	clk.Add(6 * time.Minute) // past expiry, within grace: refreshed
	if st, e2 := reg.Lookup(keyA); st != Known || e2 != e {
		t.Fatalf("in grace: %s, want the cached state", st)
	}
	close(store.unblock)
	eventually(t, "the refresh", func() bool { return len(m.up.ProjectConfigQueries()) >= 2 })
	if n := len(m.up.ProjectConfigQueries()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestUpstreamSharedStoreUnavailable(t *testing.T) {
	m := startManaged(t)
	m.up.SetProjectConfig(keyA, stateJSON(42, keyA, "r1", ""))
	reg := NewRegistry(Options{})
	opts := testUpstreamOptions(&fakeClock{t: time.Unix(1e9, 0)})
	opts.Shared = failingStore{}
	runSource(t, reg, m, opts)
	reg.Lookup(keyA)
	if st, _ := waitKnown(t, reg, keyA); st != Known {
		t.Fatalf("with the bucket unavailable: %s, want the upstream's config", st)
	}
}

func TestUpstreamWaitsForRegistration(t *testing.T) {
	m := startManaged(t)
	m.up.SetProjectConfig(keyA, stateJSON(42, keyA, "r1", ""))
	reg := NewRegistry(Options{})
	u, err := NewUpstreamSource(reg, m.client, blockedAuth{}, testUpstreamOptions(&fakeClock{t: time.Unix(1e9, 0)}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	reg.Lookup(keyA)
	if err := u.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run: %v", err)
	}
	if n := len(m.up.ProjectConfigQueries()); n != 0 {
		t.Fatalf("%d requests before registration, want 0", n)
	}
}

type blockedAuth struct{}

func (blockedAuth) Wait(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
func (blockedAuth) Authenticated() bool            { return false }

func TestDecide(t *testing.T) {
	m := startManaged(t)
	m.up.SetProjectConfig(keyA, stateJSON(42, keyA, "r1", ""))
	m.up.SetProjectConfig(keyB, json.RawMessage(`{"projectId":43,"disabled":true,"publicKeys":[{"publicKey":"`+keyB+`"}]}`))
	m.up.SetProjectConfig(keyC, json.RawMessage(`{"projectId":"broken","publicKeys":[{"publicKey":"`+keyC+`"}]}`))
	m.up.SetProjectPending(keyA, 1)
	reg := NewRegistry(Options{})
	runSource(t, reg, m, testUpstreamOptions(&fakeClock{t: time.Unix(1e9, 0)}))
	tests := []struct {
		name    string
		key     string
		project uint64
		reason  string
	}{
		{"known after pending", keyA, 42, ""},
		{"known, another project", keyA, 7, ReasonProjectID},
		{"known, no project stated", keyA, 0, ""},
		{"disabled project", keyB, 43, ReasonProjectID},
		{"config does not parse: left to the scrub stage", keyC, 44, ""},
		{"null upstream", keyX, 42, ReasonProjectID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			reason, pending := reg.Decide(ctx, tt.key, tt.project)
			if pending || reason != tt.reason {
				t.Errorf("Decide = %q, pending %v; want %q", reason, pending, tt.reason)
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, pending := NewRegistry(Options{}).Decide(ctx, keyA, 42); !pending {
		// A proxy registry (no upstream source) never resolves a key.
		t.Errorf("proxy registry: not pending")
	}
}

// Keys left for a later batch when a request fails are asked for once the
// backoff has passed, without needing another lookup to wake the source.
func TestUpstreamRetriesEveryQueuedKeyAfterFailure(t *testing.T) {
	m := startManaged(t)
	m.up.SetProjectConfig(keyA, stateJSON(42, keyA, "r1", ""))
	m.up.SetProjectConfig(keyB, stateJSON(43, keyB, "r1", ""))
	reg := NewRegistry(Options{})
	opts := testUpstreamOptions(&fakeClock{t: time.Unix(1e9, 0)})
	opts.BatchSize = 1
	u, err := NewUpstreamSource(reg, m.client, m.mon, opts)
	if err != nil {
		t.Fatal(err)
	}
	reg.Lookup(keyA)
	reg.Lookup(keyB)
	m.up.Down()
	startSource(t, u)
	eventually(t, "a failed request", u.failing.Load)
	if err := m.up.Up(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{keyA, keyB} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, _ := reg.WaitKnown(ctx, k)
		cancel()
		if st != Known {
			t.Errorf("%s: %s after the upstream came back, want known", k, st)
		}
	}
}

// The cost of ingest's Admit for a key whose config came from the upstream
// (the hot path: every request asks).
func BenchmarkAdmitFetchedKey(b *testing.B) {
	reg := NewRegistry(Options{})
	opts := testUpstreamOptions(&fakeClock{t: time.Unix(1e9, 0)})
	opts.Now = time.Now
	u, err := NewUpstreamSource(reg, nopQuerier{}, blockedAuth{}, opts)
	if err != nil {
		b.Fatal(err)
	}
	u.states.Store(keyA, u.parse(keyA, stateJSON(42, keyA, "r1", ""), time.Now()))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if reason, _ := reg.Admit(keyA, 42, true, ""); reason != "" {
				b.Fatal(reason)
			}
		}
	})
}

type nopQuerier struct{}

func (nopQuerier) Query(context.Context, string, []byte, any) error { return errors.New("unused") }

// A process that is not registered (restarted while the upstream is down)
// still answers from the deployment's bucket; what the bucket lacks stays
// pending until the upstream can be asked.
func TestUpstreamSharedBeforeRegistration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := stream.Open(ctx, stream.Config{StoreDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kv, err := st.KeyValue(ctx, "relay_test_projects", 7*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	rec, _ := json.Marshal(sharedRecord{FetchedAt: clk.Now().Add(-time.Minute), State: stateJSON(42, keyA, "r1", "")})
	if err := kv.Put(ctx, sharedKey(keyA), rec); err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry(Options{})
	opts := testUpstreamOptions(clk)
	opts.Shared = kv
	u, err := NewUpstreamSource(reg, nopQuerier{}, blockedAuth{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	startSource(t, u)
	reg.Lookup(keyA)
	reg.Lookup(keyB)
	if s, e := waitKnown(t, reg, keyA); s != Known || e.ProjectID != 42 {
		t.Fatalf("key in the bucket, unregistered: %s %+v", s, e)
	}
	// A key first seen later, still unregistered, is answered too.
	if err := kv.Put(ctx, sharedKey(keyC), rec); err != nil {
		t.Fatal(err)
	}
	reg.Lookup(keyC)
	if s, _ := waitKnown(t, reg, keyC); s != Known {
		t.Fatalf("key looked up later, in the bucket, unregistered: %s", s)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer wcancel()
	if s, _ := reg.WaitKnown(wctx, keyB); s != Pending {
		t.Fatalf("key not in the bucket, unregistered: %s, want pending", s)
	}
}
