// Command relay-load drives a running relay over real HTTP with many
// keep-alive connections and reports its ingest throughput and latency next
// to a bare net/http server that answers 200, measured in the same run on the
// same machine. The ratio is the figure that matters: absolute numbers move
// with the machine and whatever else it is doing.
//
//	relay-load -url http://127.0.0.1:3000 -c 64 -d 10s
//
// The bare server runs as a child process (this binary with -serve-bare), so
// both targets are a separate process from the load generator and pay the
// same loopback and scheduling costs. The two are measured in turns, never
// loaded at once: 1 s windows (-slice) in the order relay, bare, bare,
// relay, relay, … until each was measured for -d — this machine's speed
// moves within seconds, and the ratio must not depend on which target ran
// in the faster second. -pair URL measures any other target in turns with
// the relay instead of the bare server (bench.sh: its own bare server).
//
// Two baselines can also be served on their own, for bench.sh to drive like
// any other target: -serve-bare (which doubles as a stand-in upstream and
// counts the envelopes it received, GET /_count) and -serve-forward UPSTREAM,
// a naive forwarder that POSTs each request synchronously to UPSTREAM and
// answers with its status — what a hand-written tunnel does.
//
// With -pid the relay's CPU time (utime+stime from /proc) is read around the
// run and reported per envelope: per delivered envelope when -count-url names
// the upstream's counter (the run then waits, after the load, until the
// upstream stops receiving), per acknowledged request otherwise. Unlike
// requests per second, that figure hardly moves with whatever else the machine
// is doing. -row NAME prints the result as one tab-separated line for
// bench.sh's table.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "relay-load:", err)
		os.Exit(1)
	}
}

type options struct {
	url          string
	conns        int
	duration     time.Duration
	warmup       time.Duration
	project      string
	key          string
	body         string
	bare         bool
	serve        bool
	forward      string
	addr         string
	delay        time.Duration
	pid          int
	countURL     string
	row          string
	pair         string
	pairPID      int
	pairRow      string
	pairCountURL string
	slice        time.Duration
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("relay-load", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.url, "url", "http://127.0.0.1:3000", "base URL of the running relay")
	fs.IntVar(&o.conns, "c", 64, "concurrent connections (one request in flight on each)")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "measured duration per target")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up per target")
	fs.StringVar(&o.project, "project", "42", "project id in the envelope URL")
	fs.StringVar(&o.key, "key", "0123456789abcdef0123456789abcdef", "DSN public key sent in X-Sentry-Auth")
	fs.StringVar(&o.body, "body", "", "envelope file to send (default: a built-in ~1.5 KB error event; event_id made unique per request)")
	fs.BoolVar(&o.bare, "bare", true, "also measure a bare net/http server answering 200, interleaved with the relay (see -slice), and print the ratio")
	fs.StringVar(&o.pair, "pair", "", "base URL of a second target to measure interleaved with -url instead of the bare server (bench.sh: the bare server it runs)")
	fs.IntVar(&o.pairPID, "pair-pid", 0, "PID of the -pair target: report its CPU time per request too")
	fs.StringVar(&o.pairRow, "pair-row", "bare", "with -row: the name of the second target's line")
	fs.StringVar(&o.pairCountURL, "pair-count-url", "", "with -pair: the -pair target's upstream counter, as -count-url is the relay's (each target needs its own upstream)")
	fs.DurationVar(&o.slice, "slice", time.Second, "with two targets: the length of one measured window; the targets take turns, never loaded at once, until each was measured for -d")
	fs.BoolVar(&o.serve, "serve-bare", false, "run the bare server on 127.0.0.1 and print its address (also usable as a stand-in upstream for the relay)")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:0", "with -serve-bare: the address to listen on (memory.sh brings the upstream back on the port the relay was given)")
	fs.DurationVar(&o.delay, "delay", 0, "with -serve-bare: answer each request only after this long (a slow upstream)")
	fs.StringVar(&o.forward, "serve-forward", "", "run a naive forwarder to this upstream URL on 127.0.0.1 and print its address")
	fs.IntVar(&o.pid, "pid", 0, "PID of the relay: report its CPU time per envelope (Linux /proc)")
	fs.StringVar(&o.countURL, "count-url", "", "with -pid: the upstream's envelope counter (a -serve-bare's http://ADDR/_count); CPU is then divided by envelopes delivered")
	fs.StringVar(&o.row, "row", "", "print only one tab-separated result line named this (for bench.sh)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.serve {
		return serveBare(o.addr, o.delay)
	}
	if o.forward != "" {
		return serveForward(o.forward)
	}
	if o.conns < 1 || o.duration <= 0 || o.slice <= 0 {
		return errors.New("-c must be ≥ 1, -d and -slice > 0")
	}
	bodies, err := makeBodies(o.body, 1024)
	if err != nil {
		return err
	}

	relayURL := strings.TrimRight(o.url, "/") + "/api/" + o.project + "/envelope/"
	var relay, bare *result
	switch {
	case o.pair != "" || o.bare:
		if o.countURL != "" && o.countURL == o.pairCountURL {
			return errors.New("-count-url and -pair-count-url must be different upstreams: each target's deliveries are counted apart")
		}
		pairURL, pairPID := strings.TrimRight(o.pair, "/"), o.pairPID
		if o.pair == "" {
			addr, pid, stop, err := startBare()
			if err != nil {
				return err
			}
			defer stop()
			pairURL, pairPID = "http://"+addr, pid
		}
		res, err := drivePair(context.Background(), [2]string{relayURL, pairURL + "/api/" + o.project + "/envelope/"}, [2]int{o.pid, pairPID}, [2]string{o.countURL, o.pairCountURL}, o, bodies)
		if err != nil {
			return err
		}
		relay, bare = res[0], res[1]
	default:
		r, err := drive(context.Background(), relayURL, o, bodies)
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		relay = r
	}
	if o.row != "" {
		// name, req/s, delivered/s, p50 µs, p99 µs, CPU µs per envelope, errors
		relay.row(out, o.row)
		if bare != nil {
			bare.row(out, o.pairRow)
		}
		return nil
	}

	fmt.Fprintf(out, "connections=%d duration=%s body≈%dB\n", o.conns, o.duration, len(bodies[0]))
	fmt.Fprintf(out, "%-6s %10s %10s %10s %10s %8s\n", "target", "req/s", "p50", "p99", "max", "errors")
	name := "bare"
	if o.pair != "" {
		name = "pair"
	}
	if bare != nil {
		bare.print(out, name)
	}
	relay.print(out, "relay")
	if relay.cpuPerEnvelope > 0 {
		what := "acknowledged request"
		if o.countURL != "" {
			what = fmt.Sprintf("delivered envelope (%.0f delivered/s)", relay.deliveredRPS)
		}
		fmt.Fprintf(out, "relay CPU: %.1f µs per %s\n", relay.cpuPerEnvelope, what)
	}
	if bare != nil && bare.cpuPerEnvelope > 0 {
		fmt.Fprintf(out, "%s CPU: %.1f µs per answered request\n", name, bare.cpuPerEnvelope)
	}
	if bare != nil && bare.rps > 0 {
		fmt.Fprintf(out, "ratio relay/%s throughput: %.2f   p50: %.2fx   p99: %.2fx\n",
			name, relay.rps/bare.rps, float64(relay.p50)/float64(max(bare.p50, 1)), float64(relay.p99)/float64(max(bare.p99, 1)))
	}
	if relay.errors > 0 {
		fmt.Fprintf(out, "relay non-200 answers by status: %v\n", relay.byStatus)
	}
	return nil
}

type result struct {
	rps           float64
	p50, p99, max time.Duration
	ok, errors    int64
	byStatus      map[int]int64
	// With -pid: the target's CPU time per envelope, in µs; with
	// -count-url also the upstream's receive rate over the measured window.
	cpuPerEnvelope float64
	deliveredRPS   float64
}

// row prints r as bench.sh reads it: name, req/s, delivered/s, p50 µs,
// p99 µs, CPU µs per envelope, errors.
func (r *result) row(w io.Writer, name string) {
	fmt.Fprintf(w, "%s\t%.0f\t%.0f\t%d\t%d\t%.1f\t%d\n", name, r.rps, r.deliveredRPS,
		r.p50.Microseconds(), r.p99.Microseconds(), r.cpuPerEnvelope, r.errors)
}

func (r *result) print(w io.Writer, name string) {
	fmt.Fprintf(w, "%-6s %10.0f %10s %10s %10s %8d\n", name, r.rps, r.p50.Round(time.Microsecond),
		r.p99.Round(time.Microsecond), r.max.Round(time.Microsecond), r.errors)
}

func send(ctx context.Context, c *http.Client, url, auth string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-sentry-envelope")
	req.Header.Set("X-Sentry-Auth", auth)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// defaultEvent is a small error event shaped like sentry-go's.
const defaultEvent = `{"contexts":{"device":{"arch":"amd64","num_cpu":2},"os":{"name":"linux"},"runtime":{"go_maxprocs":2,"go_numroutines":4,"go_os":"linux","go_arch":"amd64","name":"go","version":"go1.26.8"},"trace":{"span_id":"b0f2a1c3d4e5f607","trace_id":"8c8a7ab1f3b04b1e9f7f2c3d4e5f6a7b"}},"environment":"production","event_id":"EVENTID","level":"error","platform":"go","release":"relay-load@1.0.0","sdk":{"name":"sentry.go","version":"0.50.0","integrations":["ContextifyFrames","Environment","GlobalTags","IgnoreErrors","IgnoreTransactions","Modules"],"packages":[{"name":"sentry-go","version":"0.50.0"}]},"server_name":"load-host","user":{"id":"42","email":"user@example.com"},"modules":{"github.com/getsentry/sentry-go":"v0.50.0"},"exception":[{"type":"*errors.errorString","value":"connection reset by peer while talking to the payment service","stacktrace":{"frames":[{"function":"main","module":"main","abs_path":"/src/app/main.go","lineno":42,"in_app":true},{"function":"charge","module":"main","abs_path":"/src/app/pay.go","lineno":117,"in_app":true,"pre_context":["\tif err != nil {","\t\treturn err","\t}"],"context_line":"\treturn sentry.CaptureException(err)","post_context":["}"]}]}}],"timestamp":"2026-11-23T12:00:00.000000Z"}`

// makeBodies returns n envelopes that differ only in their event id, so the
// relay stores n distinct events rather than one repeated body.
func makeBodies(file string, n int) ([][]byte, error) {
	var tmpl []byte
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		tmpl = b
	}
	out := make([][]byte, n)
	for i := range out {
		id := make([]byte, 16)
		_, _ = rand.Read(id)
		hid := hex.EncodeToString(id)
		if tmpl != nil {
			out[i] = tmpl
			continue
		}
		ev := strings.Replace(defaultEvent, "EVENTID", hid, 1)
		out[i] = []byte(fmt.Sprintf("{\"event_id\":%q,\"sent_at\":\"2026-11-23T12:00:00.000Z\"}\n{\"type\":\"event\",\"length\":%d}\n%s\n", hid, len(ev), ev))
	}
	return out, nil
}

// serveBare is the baseline: net/http reading the body and answering 200
// with an id, as little as a server can do for the same request.
func serveBare(addr string, delay time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	var received atomic.Int64 // envelopes (POSTs) received, for -count-url
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/_count" {
			fmt.Fprintf(w, "%d\n", received.Load())
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPost {
			received.Add(1)
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"00000000000000000000000000000000"}`))
	})}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// startBare runs this binary as the bare server and returns its address, its
// PID and a function that stops it by PID.
func startBare() (string, int, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return "", 0, nil, err
	}
	cmd := exec.Command(exe, "-serve-bare")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stop()
		return "", 0, nil, fmt.Errorf("bare server did not start: %w", err)
	}
	return strings.TrimSpace(line), cmd.Process.Pid, stop, nil
}

// serveForward is the naive forwarder baseline: each request is read and
// POSTed synchronously to upstream (same path and query, same Sentry
// headers) over one shared client with 256 idle connections, and answered
// with the upstream's status and body. No queue, no durability: the least a
// relay in front of Sentry can cost.
func serveForward(upstream string) error {
	base := strings.TrimRight(upstream, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return fmt.Errorf("-serve-forward %q: want an http(s) URL", upstream)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	client := &http.Client{
		Transport: &http.Transport{
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		Timeout: 30 * time.Second,
	}
	srv := &http.Server{Handler: forwardHandler(base, client)}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// forwardHandler is serveForward's handler: base is the upstream URL
// without a trailing slash.
func forwardHandler(base string, client *http.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, h := range []string{"Content-Type", "Content-Encoding", "X-Sentry-Auth", "User-Agent"} {
			if v := r.Header.Get(h); v != "" {
				req.Header.Set(h, v)
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports (sysconf(_SC_CLK_TCK) would need
// cgo).
const clockTicks = 100

// procCPU returns the process's user+system CPU time in µs.
func procCPU(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("relay CPU time: %w", err)
	}
	return parseProcStat(string(b))
}

// parseProcStat reads utime and stime (fields 14 and 15) from a
// /proc/PID/stat line; the command name (field 2) may contain spaces and
// parentheses, so fields are counted from its closing one.
func parseProcStat(s string) (int64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("relay CPU time: malformed /proc stat line")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): utime is field 14, f[11]; stime f[12].
	if len(f) < 13 {
		return 0, errors.New("relay CPU time: short /proc stat line")
	}
	var ut, st int64
	if _, err := fmt.Sscan(f[11], &ut); err != nil {
		return 0, fmt.Errorf("relay CPU time: utime %q: %w", f[11], err)
	}
	if _, err := fmt.Sscan(f[12], &st); err != nil {
		return 0, fmt.Errorf("relay CPU time: stime %q: %w", f[12], err)
	}
	return (ut + st) * (1_000_000 / clockTicks), nil
}

// fetchCount reads a -serve-bare upstream's envelope counter.
func fetchCount(ctx context.Context, url string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("upstream count: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64))
	if err != nil {
		return 0, fmt.Errorf("upstream count: %w", err)
	}
	var n int64
	if _, err := fmt.Sscan(string(b), &n); err != nil {
		return 0, fmt.Errorf("upstream count %q: %w", b, err)
	}
	return n, nil
}

// settleCount polls the counter, which read last at since, until it has not
// moved for quiet (the relay has forwarded its backlog), at most a minute,
// and returns it and when it was last seen moving (since, if it did not).
func settleCount(ctx context.Context, url string, last int64, since time.Time, quiet time.Duration) (int64, time.Time, error) {
	moved := since
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && time.Since(moved) < quiet; {
		time.Sleep(5 * time.Millisecond)
		n, err := fetchCount(ctx, url)
		if err != nil {
			return 0, time.Time{}, err
		}
		if n != last {
			last, moved = n, time.Now()
		}
	}
	return last, moved, nil
}
