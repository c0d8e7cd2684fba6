package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/testfixture"
)

// Sentry's defaults for a new project plus "Prevent Storing of IP Addresses".
const scrubDefaultsYAML = `scrub:
  data_scrubbing:
    scrub_data: true
    scrub_defaults: true
    scrub_ip_addresses: true
`

// The README's "PII scrubbing" example: keep readmeScrubYAML, readmeSample
// and readmeScrubOutput identical to the README's config.yml, sample.json
// and the output printed there.
const readmeScrubYAML = `scrub:
  pii_config:
    applications:
      # remove a field of your own from ` + "`extra`" + `
      extra.customer_note: ["@anything:remove"]
      # mask every IBAN in any string that may hold personal data
      $string: ["@iban:mask"]
`

const readmeSample = `{
  "event_id": "c7f3e2a1b9d84c6f8e0a1b2c3d4e5f60",
  "level": "error",
  "message": "Refund failed",
  "extra": {
    "customer_note": "Call me on +49 30 1234567 after 6pm",
    "refund": "Refund to DE89370400440532013000 failed: account closed",
    "order_id": 1234
  }
}
`

const readmeScrubOutput = `{
  "event_id": "c7f3e2a1b9d84c6f8e0a1b2c3d4e5f60",
  "level": "error",
  "message": "Refund failed",
  "extra": {
    "customer_note": null,
    "refund": "Refund to ********************** failed: account closed",
    "order_id": 1234
  },
  "_meta": {
    "extra": {
      "customer_note": {
        "": {
          "rem": [
            [
              "@anything:remove",
              "x"
            ]
          ]
        }
      },
      "refund": {
        "": {
          "rem": [
            [
              "@iban:mask",
              "m",
              10,
              32
            ]
          ],
          "len": 55
        }
      }
    }
  }
}
`

// scrubbedField is what a scrubbed field must look like upstream: its value
// and the remarks Sentry writes for it in `_meta` ("rule_id/type", in order).
type scrubbedField struct {
	path    []string
	want    any // nil: JSON null (removed)
	remarks []string
	meta    []string // path under _meta when it differs from path
}

func checkScrubbed(t *testing.T, payload []byte, fields []scrubbedField) {
	t.Helper()
	var doc any
	if err := json.Unmarshal(payload, &doc); err != nil {
		t.Fatalf("upstream payload is not JSON: %v\n%s", err, payload)
	}
	for _, f := range fields {
		name := strings.Join(f.path, ".")
		got, ok := testfixture.JSONPath(doc, f.path...)
		if !ok {
			t.Errorf("%s: absent upstream, want %v", name, f.want)
		} else if fmt.Sprint(got) != fmt.Sprint(f.want) {
			t.Errorf("%s = %v upstream, want %v", name, got, f.want)
		}
		mp := f.meta
		if mp == nil {
			mp = f.path
		}
		rem, ok := testfixture.JSONPath(doc, append(append([]string{"_meta"}, mp...), "", "rem")...)
		if !ok {
			t.Errorf("%s: no _meta remark upstream, want %v", name, f.remarks)
			continue
		}
		var ids []string
		for _, r := range rem.([]any) {
			rr := r.([]any)
			ids = append(ids, fmt.Sprintf("%v/%v", rr[0], rr[1]))
		}
		if strings.Join(ids, " ") != strings.Join(f.remarks, " ") {
			t.Errorf("_meta.%s remarks %v, want %v", strings.Join(mp, "."), ids, f.remarks)
		}
	}
}

// eventPayload returns the event item of the upstream envelope with id.
func eventPayload(t *testing.T, up *fakesentry.Server, id string) (fakesentry.Received, []byte) {
	t.Helper()
	for _, r := range up.Received() {
		if r.EventID != id {
			continue
		}
		for _, it := range r.Items {
			if it.Type == "event" {
				return r, it.Payload
			}
		}
	}
	t.Fatalf("no event item for %s upstream", id)
	return fakesentry.Received{}, nil
}

// The real sentry-go SDK sends an event holding a credit card number, a
// password (in a custom context), an Authorization header, a session cookie and the user's IP
// through the running relay with Sentry's default scrubbing; the fake Sentry
// receives all five scrubbed, with `_meta` saying which rule did it, and no
// X-Forwarded-For from which Sentry could infer the IP again.
func TestScrubSentryGoThroughRelay(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	defer up.Close()
	p := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL(), extra: scrubDefaultsYAML})

	const (
		card   = "4111 1111 1111 1111"
		pass   = "correct horse battery staple"
		bearer = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl"
		sessID = "b7f1c0ffee5e551011d"
		ip     = "203.0.113.7"
	)
	cookie := "sessionid=" + sessID + "; theme=dark"
	client, err := sentry.NewClient(sentry.ClientOptions{
		Dsn:            fmt.Sprintf("http://%s@%s/%s", testKey, p.addr, testProject),
		Transport:      sentry.NewHTTPSyncTransport(),
		SendDefaultPII: true,
		BeforeSend: func(ev *sentry.Event, _ *sentry.EventHint) *sentry.Event {
			// What an HTTP handler's event carries with SendDefaultPII, set
			// here as is so that nothing of the SDK's own filtering applies.
			ev.Request = &sentry.Request{
				URL:     "https://shop.example.com/checkout",
				Method:  "POST",
				Cookies: cookie,
				Headers: map[string]string{
					"Authorization": bearer,
					"Cookie":        cookie,
					"Content-Type":  "application/json",
				},
			}
			ev.User = sentry.User{IPAddress: ip}
			// sentry-go 0.50 has no `extra` any more (SetExtra became
			// SetContext); a custom context is where its users put such data.
			if ev.Contexts == nil {
				ev.Contexts = map[string]sentry.Context{}
			}
			ev.Contexts["checkout"] = sentry.Context{"password": pass, "order_id": 1234}
			return ev
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	hub := sentry.NewHub(client, sentry.NewScope())
	id := hub.CaptureMessage("payment with card " + card + " declined")
	if id == nil {
		t.Fatal("sentry-go dropped the event")
	}
	if !hub.Flush(10 * time.Second) {
		t.Fatal("sentry-go did not flush")
	}
	waitDelivered(t, up.EventIDs, []string{string(*id)}, 30*time.Second)

	r, payload := eventPayload(t, up, string(*id))
	for _, secret := range []string{card, pass, "eyJhbGciOiJIUzI1NiJ9", sessID, ip} {
		if bytes.Contains(r.Body, []byte(secret)) {
			t.Errorf("upstream envelope still holds %q:\n%s", secret, r.Body)
		}
	}
	checkScrubbed(t, payload, []scrubbedField{
		{path: []string{"message", "formatted"}, want: "payment with card [creditcard] declined", remarks: []string{"@creditcard:replace/s"}},
		{path: []string{"contexts", "checkout", "password"}, want: "[Filtered]", remarks: []string{"@password:filter/s"}},
		// The bearer rule sorts before the password rule (doc §5.4).
		{path: []string{"request", "headers", "Authorization"}, want: "[Filtered]", remarks: []string{"@bearer:filter/s"}},
		// Relay parses cookies into pairs; session cookies are filtered by name.
		{path: []string{"request", "cookies", "0", "1"}, want: "[Filtered]", remarks: []string{"@anything:filter/s"}},
		{path: []string{"user", "ip_address"}, want: nil, remarks: []string{"@ip:replace/s", "@anything:remove/x"}},
	})
	var doc any
	if err := json.Unmarshal(payload, &doc); err != nil {
		t.Fatal(err)
	}
	for _, keep := range []struct {
		path []string
		want any
	}{
		{[]string{"contexts", "checkout", "order_id"}, 1234},
		{[]string{"request", "cookies", "1", "0"}, "theme"},
		{[]string{"request", "cookies", "1", "1"}, "dark"},
		{[]string{"request", "url"}, "https://shop.example.com/checkout"},
		{[]string{"request", "headers", "Content-Type"}, "application/json"},
	} {
		if got, _ := testfixture.JSONPath(doc, keep.path...); fmt.Sprint(got) != fmt.Sprint(keep.want) {
			t.Errorf("%s = %v, want it kept as %v", strings.Join(keep.path, "."), got, keep.want)
		}
	}
	if _, ok := testfixture.JSONPath(doc, "request", "headers", "Cookie"); ok {
		t.Errorf("the Cookie header was forwarded; Relay moves it into request.cookies")
	}
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		t.Errorf("upstream got X-Forwarded-For %q although IP addresses are scrubbed", xff)
	}
	if err := p.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// The README's pii_config, written in YAML in config.yml, removes the
// custom field and masks the IBAN of an event sent through the running
// relay; what arrives upstream is exactly what `relay scrub` shows for it.
func TestScrubPIIConfigThroughRelay(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	defer up.Close()
	dir := t.TempDir()
	p := startRelay(t, dir, relayConfig{upstream: up.URL(), extra: readmeScrubYAML})

	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(readmeSample)); err != nil {
		t.Fatal(err)
	}
	const id = "c7f3e2a1b9d84c6f8e0a1b2c3d4e5f60"
	ev := compact.Bytes()
	body := fmt.Appendf(nil, "{\"event_id\":%q}\n{\"type\":\"event\",\"length\":%d}\n%s\n", id, len(ev), ev)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, got, err := postEnvelope(ctx, p.url(), body)
	if err != nil || st != 200 || got != id {
		t.Fatalf("relay answered %d %q, %v", st, got, err)
	}
	waitDelivered(t, up.EventIDs, []string{id}, 30*time.Second)
	r, payload := eventPayload(t, up, id)
	if bytes.Contains(r.Body, []byte("DE89370400440532013000")) || bytes.Contains(r.Body, []byte("+49 30")) {
		t.Errorf("upstream envelope still holds the IBAN or the note:\n%s", r.Body)
	}
	checkScrubbed(t, payload, []scrubbedField{
		{path: []string{"extra", "customer_note"}, want: nil, remarks: []string{"@anything:remove/x"}},
		{path: []string{"extra", "refund"}, want: "Refund to ********************** failed: account closed", remarks: []string{"@iban:mask/m"}},
	})
	// Without scrub_ip_addresses the client's address is forwarded as usual.
	if xff := r.Header.Get("X-Forwarded-For"); xff != "127.0.0.1" {
		t.Errorf("upstream got X-Forwarded-For %q, want the client's address", xff)
	}

	// `relay scrub --compact` on the same config prints what was forwarded.
	out := runScrubCmd(t, dir, readmeSample, "--compact")
	if strings.TrimSuffix(out, "\n") != string(payload) {
		t.Errorf("relay scrub --compact printed\n%s\nbut the relay forwarded\n%s", out, payload)
	}
	if err := p.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// `relay --config DIR scrub sample.json` prints the README's output for the
// README's sample, byte for byte.
func TestScrubCommandOnReadmeSample(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, relayConfig{upstream: "https://sentry.example.com/", extra: readmeScrubYAML})
	if out := runScrubCmd(t, dir, readmeSample); out != readmeScrubOutput {
		t.Errorf("relay scrub printed\n%s\nwant (as in the README)\n%s", out, readmeScrubOutput)
	}
}

// runScrubCmd runs `relay --config dir scrub [flags] FILE` on sample and
// returns its standard output; it fails the test on an error exit or any
// standard error output.
func runScrubCmd(t *testing.T, dir, sample string, flags ...string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "sample.json")
	if err := os.WriteFile(file, []byte(sample), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{"--config", dir, "scrub"}, flags...), file)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, relayBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("relay %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("relay scrub wrote to standard error:\n%s", stderr.String())
	}
	return stdout.String()
}

// BenchmarkScrubWorkerKeepsUp drives the running relay with 64 connections
// for a few seconds, with scrubbing off and with Sentry's defaults (every
// event carries personal data, so every one is scrubbed and re-serialised),
// and reports the ingest rate next to the rate at which the fake Sentry
// received the events, and how long after the load stopped the last one
// arrived ("lag-s"). A worker that keeps up shows upstream/s ≈ ingest/s and a
// lag near zero. "relay-cpu-µs/event" is the relay process's CPU time (user
// + system, from /proc) per event, which a busy machine distorts less. Run: go test -run '^$' -bench ScrubWorkerKeepsUp -benchtime 1x ./e2e/
func BenchmarkScrubWorkerKeepsUp(b *testing.B) {
	fixture, err := os.ReadFile(filepath.Join(testfixture.SDKDir(b), "go-event-exception.envelope"))
	if err != nil {
		b.Fatal(err)
	}
	lines := bytes.SplitN(fixture, []byte("\n"), 3)
	var hdr struct {
		EventID string `json:"event_id"`
	}
	if err := json.Unmarshal(lines[0], &hdr); err != nil {
		b.Fatal(err)
	}
	payload := bytes.TrimSuffix(lines[2], []byte("\n"))
	// Personal data Sentry's defaults remove: a password and the user's IP.
	payload = append([]byte(`{"user":{"ip_address":"203.0.113.7"},"extra":{"password":"hunter2"},`), payload[1:]...)
	const conns, loadFor = 64, 5 * time.Second
	for _, c := range []struct{ name, yaml string }{
		{"off", ""},
		{"defaults+ip", scrubDefaultsYAML},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				up := fakesentry.New(fakesentry.Options{})
				p := startRelay(b, b.TempDir(), relayConfig{upstream: up.URL(), extra: c.yaml})
				ctx, cancel := context.WithTimeout(context.Background(), loadFor)
				var acked atomic.Int64
				var wg sync.WaitGroup
				cpu0 := procCPU(b, p.cmd.Process.Pid) // not counting start-up
				start := time.Now()
				for range conns {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for ctx.Err() == nil {
							id := envelope.NewEventID()
							ev := bytes.ReplaceAll(payload, []byte(hdr.EventID), []byte(id))
							body := fmt.Appendf(nil, "{\"event_id\":%q}\n{\"type\":\"event\",\"length\":%d}\n%s\n", id, len(ev), ev)
							if st, _, err := postEnvelope(ctx, p.url(), body); err == nil && st == 200 {
								acked.Add(1)
							}
						}
					}()
				}
				wg.Wait()
				cancel()
				loadEnd := time.Now()
				n := acked.Load()
				deadline := time.Now().Add(2 * time.Minute)
				for int64(up.Count()) < n && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				done := time.Now()
				if got := int64(up.Count()); got < n {
					b.Fatalf("upstream received %d of %d acknowledged events", got, n)
				}
				b.ReportMetric(float64(n)/loadEnd.Sub(start).Seconds(), "ingest/s")
				b.ReportMetric(float64(n)/done.Sub(start).Seconds(), "upstream/s")
				b.ReportMetric(done.Sub(loadEnd).Seconds(), "lag-s")
				b.ReportMetric(float64((procCPU(b, p.cmd.Process.Pid)-cpu0).Microseconds())/float64(n), "relay-cpu-µs/event")
				if err := p.term(10 * time.Second); err != nil {
					b.Fatal(err)
				}
				up.Close()
			}
		})
	}
}

// procCPU returns the CPU time (user + system) process pid has used so far.
func procCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatalf("read process stats: %v", err)
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the line, in clock ticks (USER_HZ = 100 on Linux).
	rest := b[bytes.LastIndexByte(b, ')')+2:]
	f := strings.Fields(string(rest))
	var ut, st int64
	if _, err := fmt.Sscan(f[11], &ut); err != nil {
		tb.Fatalf("utime %q: %v", f[11], err)
	}
	if _, err := fmt.Sscan(f[12], &st); err != nil {
		tb.Fatalf("stime %q: %v", f[12], err)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// The README shows exactly the example these tests run: the config, the
// sample and the output, so the documentation cannot drift from behaviour.
func TestReadmeShowsTheTestedScrubExample(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(testfixture.Root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"config.yml":  readmeScrubYAML,
		"sample.json": readmeSample,
		"output":      readmeScrubOutput,
	} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README.md does not show the tested %s:\n%s", name, want)
		}
	}
}
