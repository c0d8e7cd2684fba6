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
// same loopback and scheduling costs.
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
	"slices"
	"strings"
	"sync"
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
	url      string
	conns    int
	duration time.Duration
	warmup   time.Duration
	project  string
	key      string
	body     string
	bare     bool
	serve    bool
	delay    time.Duration
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
	fs.BoolVar(&o.bare, "bare", true, "also measure a bare net/http server answering 200, and print the ratio")
	fs.BoolVar(&o.serve, "serve-bare", false, "run the bare server on 127.0.0.1 and print its address (also usable as a stand-in upstream for the relay)")
	fs.DurationVar(&o.delay, "delay", 0, "with -serve-bare: answer each request only after this long (a slow upstream)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.serve {
		return serveBare(o.delay)
	}
	if o.conns < 1 || o.duration <= 0 {
		return errors.New("-c must be ≥ 1 and -d > 0")
	}
	bodies, err := makeBodies(o.body, 1024)
	if err != nil {
		return err
	}

	var bare *result
	if o.bare {
		addr, stop, err := startBare()
		if err != nil {
			return err
		}
		bare, err = drive(context.Background(), "http://"+addr+"/api/"+o.project+"/envelope/", o, bodies)
		stop()
		if err != nil {
			return fmt.Errorf("bare server: %w", err)
		}
	}
	relay, err := drive(context.Background(), strings.TrimRight(o.url, "/")+"/api/"+o.project+"/envelope/", o, bodies)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}

	fmt.Fprintf(out, "connections=%d duration=%s body≈%dB\n", o.conns, o.duration, len(bodies[0]))
	fmt.Fprintf(out, "%-6s %10s %10s %10s %10s %8s\n", "target", "req/s", "p50", "p99", "max", "errors")
	if bare != nil {
		bare.print(out, "bare")
	}
	relay.print(out, "relay")
	if bare != nil && bare.rps > 0 {
		fmt.Fprintf(out, "ratio relay/bare throughput: %.2f   p50: %.2fx   p99: %.2fx\n",
			relay.rps/bare.rps, float64(relay.p50)/float64(max(bare.p50, 1)), float64(relay.p99)/float64(max(bare.p99, 1)))
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
}

func (r *result) print(w io.Writer, name string) {
	fmt.Fprintf(w, "%-6s %10.0f %10s %10s %10s %8d\n", name, r.rps, r.p50.Round(time.Microsecond),
		r.p99.Round(time.Microsecond), r.max.Round(time.Microsecond), r.errors)
}

// drive runs o.conns loops, each with its own keep-alive connection and one
// request in flight, for the warm-up and then the measured duration.
func drive(ctx context.Context, url string, o options, bodies [][]byte) (*result, error) {
	tr := &http.Transport{
		MaxIdleConns:        o.conns,
		MaxIdleConnsPerHost: o.conns,
		MaxConnsPerHost:     o.conns,
		DisableCompression:  true,
		IdleConnTimeout:     30 * time.Second,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	auth := "Sentry sentry_key=" + o.key + ", sentry_version=7, sentry_client=relay-load/1.0"

	// A quick probe so a wrong URL fails at once instead of after -d.
	if st, err := send(ctx, client, url, auth, bodies[0]); err != nil {
		return nil, err
	} else if st != http.StatusOK {
		return nil, fmt.Errorf("probe request answered %d", st)
	}

	var (
		measuring atomic.Bool
		stop      atomic.Bool
		wg        sync.WaitGroup
		mu        sync.Mutex
		lats      []time.Duration
		ok, bad   int64
		byStatus  = map[int]int64{}
		firstErr  error
	)
	for i := 0; i < o.conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<14)
			var lok, lbad int64
			lstatus := map[int]int64{}
			var lerr error
			for n := i; !stop.Load(); n += o.conns {
				t0 := time.Now()
				st, err := send(ctx, client, url, auth, bodies[n%len(bodies)])
				d := time.Since(t0)
				if !measuring.Load() {
					continue
				}
				switch {
				case err != nil:
					lbad++
					if lerr == nil {
						lerr = err
					}
				case st != http.StatusOK:
					lbad++
					lstatus[st]++
				default:
					lok++
					local = append(local, d)
				}
			}
			mu.Lock()
			lats = append(lats, local...)
			ok += lok
			bad += lbad
			for k, v := range lstatus {
				byStatus[k] += v
			}
			if firstErr == nil {
				firstErr = lerr
			}
			mu.Unlock()
		}(i)
	}
	time.Sleep(o.warmup)
	measuring.Store(true)
	start := time.Now()
	time.Sleep(o.duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	if ok == 0 {
		return nil, fmt.Errorf("no request succeeded (first error: %v, statuses: %v)", firstErr, byStatus)
	}
	slices.Sort(lats)
	return &result{
		rps:      float64(ok) / elapsed.Seconds(),
		p50:      lats[len(lats)/2],
		p99:      lats[len(lats)*99/100],
		max:      lats[len(lats)-1],
		ok:       ok,
		errors:   bad,
		byStatus: byStatus,
	}, nil
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
func serveBare(delay time.Duration) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
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

// startBare runs this binary as the bare server and returns its address and
// a function that stops it by PID.
func startBare() (string, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(exe, "-serve-bare")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("bare server did not start: %w", err)
	}
	return strings.TrimSpace(line), stop, nil
}
