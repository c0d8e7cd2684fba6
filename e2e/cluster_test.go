package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relayhq/relay/internal/fakesentry"
)

// The cluster tests run the deployment the relay is designed for: a
// three-node NATS cluster (separate nats-server processes, built from the
// module the relay depends on), an R3 stream, two ingest processes and three
// worker processes of the real binary (relay run --role ingest|worker).

var (
	natsBinOnce sync.Once
	natsBin     string
	natsBinErr  error
)

// natsServerBin builds the nats-server binary once per test run.
func natsServerBin(t *testing.T) string {
	t.Helper()
	natsBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "relay-e2e-nats-")
		if err != nil {
			natsBinErr = err
			return
		}
		natsBin = filepath.Join(dir, "nats-server")
		out, err := exec.Command("go", "build", "-o", natsBin, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsBinErr = fmt.Errorf("go build nats-server: %w\n%s", err, out)
		}
	})
	if natsBinErr != nil {
		t.Fatal(natsBinErr)
	}
	return natsBin
}

// natsNode is one nats-server process of the cluster.
type natsNode struct {
	t          *testing.T
	name       string
	port       int
	conf, dir  string
	cmd        *exec.Cmd
	log        *bytes.Buffer
	mu         sync.Mutex
	done       chan struct{}
	clientURLs string
}

type natsCluster struct {
	t     *testing.T
	nodes []*natsNode
}

// startNATSCluster starts three clustered nats-server processes with
// JetStream on 127.0.0.1 and waits until JetStream has a meta leader.
func startNATSCluster(t *testing.T) *natsCluster {
	t.Helper()
	bin := natsServerBin(t)
	c := &natsCluster{t: t}
	clusterPorts := []int{freePort(t), freePort(t), freePort(t)}
	var routes []string
	for _, p := range clusterPorts {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	for i := range 3 {
		n := &natsNode{t: t, name: fmt.Sprintf("n%d", i+1), port: freePort(t), dir: t.TempDir()}
		n.conf = filepath.Join(n.dir, "nats.conf")
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream {
  store_dir: %q
  max_file_store: 1GB
  max_memory_store: 64MB
}
cluster {
  name: relay
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, n.name, n.port, filepath.Join(n.dir, "js"), clusterPorts[i], strings.Join(routes, ", "))
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		n.start(bin)
	}
	c.waitJetStream(90 * time.Second)
	return c
}

func (n *natsNode) start(bin string) {
	n.t.Helper()
	n.log = &bytes.Buffer{}
	n.done = make(chan struct{})
	n.cmd = exec.Command(bin, "-c", n.conf)
	w := &lockedWriter{mu: &n.mu, w: n.log}
	n.cmd.Stdout, n.cmd.Stderr = w, w
	if err := n.cmd.Start(); err != nil {
		n.t.Fatalf("start nats-server %s: %v", n.name, err)
	}
	done := n.done
	cmd := n.cmd
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	n.t.Cleanup(n.kill9)
}

// kill9 kills the node by PID with SIGKILL and reaps it.
func (n *natsNode) kill9() {
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

func (c *natsCluster) url() string {
	var us []string
	for _, n := range c.nodes {
		us = append(us, fmt.Sprintf("nats://127.0.0.1:%d", n.port))
	}
	return strings.Join(us, ",")
}

// waitJetStream waits until the cluster answers JetStream requests (a meta
// leader is elected).
func (c *natsCluster) waitJetStream(limit time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		nc, err := nats.Connect(c.url(), nats.Timeout(2*time.Second))
		if err == nil {
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
			nc.Close()
			if err == nil {
				return
			}
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	for _, n := range c.nodes {
		n.mu.Lock()
		c.t.Logf("nats %s:\n%s", n.name, n.log.String())
		n.mu.Unlock()
	}
	c.t.Fatalf("JetStream cluster not ready after %s: %v", limit, last)
}

// clusterRelay is a relay process with a role, on its own config directory
// (and so its own spool) and port.
func startRoleRelay(t *testing.T, role, upstream, natsURL string) *relayProc {
	t.Helper()
	dir := t.TempDir()
	port := writeConfig(t, dir, relayConfig{upstream: upstream, extra: fmt.Sprintf(`jetstream:
  url: %s
  replicas: 3
  ack_wait: 5s
`, natsURL)})
	p := launchRole(t, dir, port, role)
	if err := p.waitReady(90 * time.Second); err != nil {
		p.kill9()
		t.Fatalf("%s relay did not become ready: %v\n%s", role, err, p.logs())
	}
	return p
}

// launchRole starts `relay --config dir run --role role` without waiting.
func launchRole(t *testing.T, dir string, port int, role string) *relayProc {
	t.Helper()
	p := &relayProc{t: t, dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port), log: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	p.cmd = exec.Command(relayBin, "--config", dir, "run", "--role", role)
	w := &lockedWriter{mu: p.mu, w: p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.Env = append(os.Environ(), "RELAY_LOG_LEVEL=info")
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start relay: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill9() })
	return p
}

// restart starts the process again on the same directory and port.
func (p *relayProc) restartRole(role string) *relayProc {
	p.t.Helper()
	q := launchRole(p.t.(*testing.T), p.dir, mustPort(p.t, p.addr), role)
	if err := q.waitReady(90 * time.Second); err != nil {
		q.kill9()
		p.t.Fatalf("restarted %s relay did not become ready: %v\n%s", role, err, q.logs())
	}
	return q
}

// deployment is the whole cluster setup of one test.
type deployment struct {
	up      *fakesentry.Server
	nats    *natsCluster
	ingest  []*relayProc
	workers []*relayProc
}

func startDeployment(t *testing.T) *deployment {
	t.Helper()
	d := &deployment{up: fakesentry.New(fakesentry.Options{})}
	t.Cleanup(d.up.Close)
	d.nats = startNATSCluster(t)
	// The first process creates the R3 stream; the others find it.
	d.ingest = append(d.ingest, startRoleRelay(t, "ingest", d.up.URL(), d.nats.url()))
	d.ingest = append(d.ingest, startRoleRelay(t, "ingest", d.up.URL(), d.nats.url()))
	for range 3 {
		d.workers = append(d.workers, startRoleRelay(t, "worker", d.up.URL(), d.nats.url()))
	}
	return d
}

// load sends events to the ingest processes round-robin from a few
// goroutines until stopped, recording every 200 in the ledger and counting
// the answers by status.
type load struct {
	l       *ledger
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	answers map[int]int
	noRetry atomic.Int64 // 503s without Retry-After
}

func startLoad(d *deployment, senders int) *load {
	ld := &load{l: &ledger{}, stop: make(chan struct{}), answers: map[int]int{}}
	for g := range senders {
		ld.wg.Add(1)
		go func() {
			defer ld.wg.Done()
			for i := g; ; i++ {
				select {
				case <-ld.stop:
					return
				default:
				}
				st, retryAfter := sendOne(d.ingest[i%len(d.ingest)].url(), ld.l)
				ld.mu.Lock()
				ld.answers[st]++
				ld.mu.Unlock()
				if st == http.StatusServiceUnavailable && retryAfter == "" {
					ld.noRetry.Add(1)
				}
				if st != http.StatusOK {
					time.Sleep(50 * time.Millisecond)
				} else {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	return ld
}

func (ld *load) end() {
	close(ld.stop)
	ld.wg.Wait()
}

func (ld *load) count(status int) int {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.answers[status]
}

// sendOne posts one new event; a 200 goes into the ledger. It returns the
// status (0 on a transport error) and the Retry-After header.
func sendOne(base string, l *ledger) (int, string) {
	id, body := eventEnvelope("cluster")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/"+testProject+"/envelope/", bytes.NewReader(body))
	if err != nil {
		return 0, ""
	}
	req.Header.Set("Content-Type", "application/x-sentry-envelope")
	req.Header.Set("X-Sentry-Auth", "Sentry sentry_key="+testKey+", sentry_version=7, sentry_client=e2e/1.0")
	resp, err := sendClient.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode == http.StatusOK {
		if !bytes.Contains(b, []byte(id)) {
			panic(fmt.Sprintf("relay answered %s for event %s", b, id))
		}
		l.add(id)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// waitAccepted waits until the load has had n more 200s than before.
func (ld *load) waitAccepted(t *testing.T, what string, n int, limit time.Duration) {
	t.Helper()
	start := ld.count(http.StatusOK)
	deadline := time.Now().Add(limit)
	for ld.count(http.StatusOK) < start+n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: only %d envelopes accepted in %s", what, ld.count(http.StatusOK)-start, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkLedger waits for every acknowledged event at the fake Sentry and
// reports the duplicates.
func checkClusterLedger(t *testing.T, d *deployment, ld *load) {
	t.Helper()
	want := ld.l.ids()
	waitDelivered(t, d.up.EventIDs, want, 180*time.Second)
	dups := duplicates(d.up.EventIDs())
	t.Logf("ledger: %d acknowledged, all delivered; %d duplicate deliveries; answers by status %v", len(want), dups, ld.answers)
}

// Under load: kill -9 one NATS node, then one worker, then restart both.
// Every acknowledged event reaches the fake Sentry; duplicates are counted.
func TestClusterKillNodeAndWorker(t *testing.T) {
	d := startDeployment(t)
	ld := startLoad(d, 4)
	defer func() {
		select {
		case <-ld.stop:
		default:
			ld.end()
		}
	}()
	ld.waitAccepted(t, "before the faults", 100, 60*time.Second)

	d.nats.nodes[0].kill9()
	t.Logf("killed nats %s", d.nats.nodes[0].name)
	ld.waitAccepted(t, "with one NATS node down", 100, 90*time.Second)

	d.workers[0].kill9()
	t.Log("killed worker 0")
	ld.waitAccepted(t, "with one NATS node and one worker down", 100, 90*time.Second)

	d.nats.nodes[0].start(natsServerBin(t))
	d.workers[0] = d.workers[0].restartRole("worker")
	t.Log("restarted both")
	ld.waitAccepted(t, "after the restarts", 100, 90*time.Second)
	ld.end()

	if n := ld.noRetry.Load(); n > 0 {
		t.Errorf("%d answers of 503 without Retry-After", n)
	}
	for st, n := range ld.answers {
		if st != http.StatusOK && st != http.StatusServiceUnavailable {
			t.Errorf("%d answers with status %d (want only 200 or 503)", n, st)
		}
	}
	checkClusterLedger(t, d, ld)
}

// All NATS nodes down for 10 s: ingest answers 503 with Retry-After, never
// 200, and recovers by itself once the cluster is back; everything
// acknowledged before is delivered.
func TestClusterAllNodesDown(t *testing.T) {
	d := startDeployment(t)
	ld := startLoad(d, 4)
	defer func() {
		select {
		case <-ld.stop:
		default:
			ld.end()
		}
	}()
	ld.waitAccepted(t, "before the outage", 100, 60*time.Second)

	// Killed under load: what was acknowledged up to here must arrive.
	for _, n := range d.nats.nodes {
		n.kill9()
	}
	ld.end()
	t.Log("killed every nats node")
	// Every request that starts now, while no node runs, must be refused.
	var (
		during  ledger
		mu      sync.Mutex
		sent    int
		refused int
		probes  sync.WaitGroup
	)
	downUntil := time.Now().Add(10 * time.Second)
	for g := range 4 {
		probes.Add(1)
		go func() {
			defer probes.Done()
			for i := g; time.Now().Before(downUntil); i++ {
				p := d.ingest[i%len(d.ingest)]
				st, retryAfter := sendOne(p.url(), &during)
				mu.Lock()
				sent++
				switch {
				case st == http.StatusOK:
					t.Errorf("ingest %s answered 200 while every NATS node was down", p.addr)
				case st == http.StatusServiceUnavailable && retryAfter == "":
					t.Errorf("ingest %s answered 503 without Retry-After", p.addr)
				case st == http.StatusServiceUnavailable:
					refused++
				default:
					t.Errorf("ingest %s answered %d while every NATS node was down (want 503)", p.addr, st)
				}
				mu.Unlock()
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	probes.Wait()
	t.Logf("during the outage: %d requests, %d answered 503 with Retry-After", sent, refused)
	if refused == 0 {
		t.Fatal("no request was answered during the outage")
	}

	for _, n := range d.nats.nodes {
		n.start(natsServerBin(t))
	}
	// Recovery by itself: no process is restarted.
	after := &load{l: ld.l, stop: make(chan struct{}), answers: map[int]int{}}
	deadline := time.Now().Add(120 * time.Second)
	for ok := 0; ok < 20; {
		if time.Now().After(deadline) {
			t.Fatalf("ingest did not recover within 120s of the cluster coming back (answers %v)", after.answers)
		}
		st, _ := sendOne(d.ingest[ok%2].url(), ld.l)
		after.answers[st]++
		if st == http.StatusOK {
			ok++
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, p := range append(append([]*relayProc{}, d.ingest...), d.workers...) {
		if p.exited() {
			t.Errorf("relay %s exited during the outage: %v\n%s", p.addr, p.err, p.logs())
		}
		if n := strings.Count(p.logs(), "jetstream unavailable: ingest answers 503"); n > 2 {
			t.Errorf("relay %s logged the outage %d times (want once per change of state)", p.addr, n)
		}
	}
	checkClusterLedger(t, d, ld)
}
