package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/testfixture"
	"github.com/relayhq/relay/scrub"
)

// Sentry's defaults for a new project ("Data Scrubber" and "Use Default
// Scrubbers" on), plus "Prevent Storing of IP Addresses" where a case needs it.
var (
	legacyDefaults   = &scrub.DataScrubbing{ScrubData: true, ScrubDefaults: true}
	legacyDefaultsIP = &scrub.DataScrubbing{ScrubData: true, ScrubDefaults: true, ScrubIPAddresses: true}
)

// rawItem is one item as found on the wire, split by a reader independent of
// internal/envelope: its header line, decoded header and payload.
type rawItem struct {
	headerLine string
	header     map[string]any
	payload    []byte
}

// splitEnvelope splits an envelope into its header line and items, honouring
// an explicit `length` and otherwise reading to the next newline. It fails
// the test on anything malformed, including a `length` that does not match.
func splitEnvelope(t *testing.T, b []byte) (string, []rawItem) {
	t.Helper()
	line := func() string {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			i = len(b)
		}
		l := string(b[:i])
		b = b[min(i+1, len(b)):]
		return l
	}
	head := line()
	if !json.Valid([]byte(head)) {
		t.Fatalf("envelope header is not JSON: %q", head)
	}
	var items []rawItem
	for len(b) > 0 {
		hl := line()
		if strings.TrimSpace(hl) == "" && len(b) == 0 {
			break
		}
		var h map[string]any
		if err := json.Unmarshal([]byte(hl), &h); err != nil {
			t.Fatalf("item header %q: %v", hl, err)
		}
		var p []byte
		if l, ok := h["length"].(float64); ok {
			n := int(l)
			if n > len(b) {
				t.Fatalf("item header %q claims %d bytes, %d left", hl, n, len(b))
			}
			p = b[:n]
			b = b[n:]
			if len(b) > 0 {
				if b[0] != '\n' {
					t.Fatalf("item %q: payload of length %d is not followed by a newline", hl, n)
				}
				b = b[1:]
			}
		} else {
			p = []byte(line())
		}
		items = append(items, rawItem{headerLine: hl, header: h, payload: p})
	}
	return head, items
}

// jsonAt decodes payload and returns the value at path (object keys, or
// array indexes as decimal strings); ok is false when the path is absent.
func jsonAt(t *testing.T, payload []byte, path ...string) (any, bool) {
	t.Helper()
	var v any
	if err := json.Unmarshal(payload, &v); err != nil {
		t.Fatalf("payload is not JSON: %v\n%s", err, payload)
	}
	return testfixture.JSONPath(v, path...)
}

// remarks returns the rule ids and types of the `_meta` remarks at metaPath
// (the path inside `_meta`, without the trailing ""), e.g. "@password:filter/s".
func remarks(t *testing.T, payload []byte, metaPath ...string) []string {
	t.Helper()
	v, ok := jsonAt(t, payload, append(metaPath, "", "rem")...)
	if !ok {
		return nil
	}
	var out []string
	for _, r := range v.([]any) {
		rr := r.([]any)
		out = append(out, fmt.Sprintf("%v/%v", rr[0], rr[1]))
	}
	return out
}

// check is one assertion on a scrubbed item payload.
type check struct {
	path []string // value path in the payload
	want any      // expected value (nil: JSON null)
	rem  []string // expected remarks at _meta + metaPath ("rule/type")
	meta []string // _meta path; defaults to path
}

func (c check) run(t *testing.T, payload []byte) {
	t.Helper()
	got, ok := jsonAt(t, payload, c.path...)
	if !ok {
		t.Errorf("%s: absent, want %v\n%s", strings.Join(c.path, "."), c.want, payload)
	} else if fmt.Sprint(got) != fmt.Sprint(c.want) {
		t.Errorf("%s = %v, want %v\n%s", strings.Join(c.path, "."), got, c.want, payload)
	}
	mp := c.meta
	if mp == nil {
		mp = c.path
	}
	if c.rem != nil {
		got := remarks(t, payload, append([]string{"_meta"}, mp...)...)
		if strings.Join(got, " ") != strings.Join(c.rem, " ") {
			t.Errorf("_meta.%s remarks %v, want %v\n%s", strings.Join(mp, "."), got, c.rem, payload)
		}
	}
}

// env builds an envelope from a header and items given as header/payload
// pairs (payloads written as given, each followed by a newline).
func env(header string, items ...string) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	b.WriteByte('\n')
	for i := 0; i+1 < len(items); i += 2 {
		b.WriteString(items[i])
		b.WriteByte('\n')
		b.WriteString(items[i+1])
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// withLen returns an item header of type typ with an explicit length for
// payload and the extra header members given ("k":v,…).
func withLen(typ, payload, extra string) string {
	if extra != "" {
		extra = "," + extra
	}
	return fmt.Sprintf(`{"type":%q,"length":%d%s}`, typ, len(payload), extra)
}

func compile(t testing.TB, cfg scrub.Config) *scrub.Scrubber {
	t.Helper()
	s, err := scrub.Compile(cfg)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	if s.Noop() {
		t.Fatalf("config %+v compiles to a no-op", cfg)
	}
	return s
}

const (
	envHeader = `{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","dsn":"https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/42","sent_at":"2026-11-23T12:00:00Z","x-unknown":[1,2]}`
	// Nothing personal in it under any configuration below.
	cleanEvent    = `{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","level":"error","message":"disk full","platform":"go","tags":{"build":"7"}}`
	secretEvent   = `{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","message":"paid with 4111 1111 1111 1111","extra":{"password":"hunter2","order":17},"request":{"headers":{"Authorization":"Bearer abc.def.ghi","Cookie":"sessionid=s3cr3t; theme=dark"}},"user":{"id":"u1","ip_address":"203.0.113.7"}}`
	sessionItem   = `{"sid":"7c7b6585f26846b2b9d04e5e3ef7b1b6","status":"ok","attrs":{"release":"password@1.0","ip_address":"203.0.113.7"}}`
	clientReport  = `{"timestamp":1700000000,"discarded_events":[{"reason":"queue_overflow","category":"error","quantity":1}]}`
	binaryPayload = "\x00\x01password=hunter2\xff\xfe\n\n"
	logPayload    = `{"items":[{"timestamp":1700000000.5,"trace_id":"5b8efff798038103d269b633813fc60c","level":"info","body":"paid with 4111 1111 1111 1111","attributes":{"password":{"type":"string","value":"hunter2"},"client.address":{"type":"string","value":"203.0.113.7"},"http.status":{"type":"integer","value":200}}}]}`
	spanV2Payload = `{"items":[{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"6e0c63257de34c92","name":"db","start_timestamp":1,"end_timestamp":2,"attributes":{"db.password":{"type":"string","value":"hunter2"},"db.system":{"type":"string","value":"postgresql"}}}]}`
	spanV1Payload = `{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"6e0c63257de34c92","op":"db","start_timestamp":1,"timestamp":2,"data":{"password":"hunter2","rows":3}}`
	metricPayload = `{"items":[{"timestamp":1700000000,"trace_id":"5b8efff798038103d269b633813fc60c","name":"checkout","type":"counter","value":1,"attributes":{"api_key":{"type":"string","value":"k-123"}}}]}`
	txPayload     = `{"type":"transaction","transaction":"/checkout","start_timestamp":1,"timestamp":2,"contexts":{"trace":{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"6e0c63257de34c92"}},"extra":{"secret":"s3"}}`
	logText       = "GET / from 10.1.2.3\niban DE89370400440532013000\n"
	viewHierarchy = `{"rendering_system":"android_view_system","windows":[{"type":"com.example.Login","identifier":"203.0.113.7","children":[]}]}`
)

// An advanced piiConfig that reaches attachments by name and masks IBANs.
const attachmentPII = `{"applications":{"$attachments.'app.log'":["@ip:mask","@iban:mask"],"$string":["@iban:mask"]}}`

func TestScrubStage(t *testing.T) {
	type itemWant struct {
		same   bool    // payload byte-for-byte as sent (and the item's wire segment, when it had a length)
		checks []check // assertions on a changed payload
		absent []string
	}
	cases := []struct {
		name  string
		cfg   scrub.Config
		in    []byte
		items []itemWant // one per item, in order; nil: whole envelope unchanged
		xff   string     // ForwardedFor after the stage
		err   string     // substring of the expected error
	}{
		{
			name: "nothing to scrub: envelope untouched, no lengths added",
			cfg:  scrub.Config{DataScrubbing: legacyDefaultsIP},
			in: env(envHeader,
				`{"type":"event"}`, cleanEvent,
				withLen("attachment", binaryPayload, `"filename":"core.bin"`), binaryPayload,
				`{"type":"session"}`, sessionItem,
				`{"type":"client_report"}`, clientReport),
		},
		{
			name: "legacy defaults never touch sessions, client reports or attachments",
			cfg:  scrub.Config{DataScrubbing: legacyDefaultsIP},
			in: env(envHeader,
				`{"type":"session"}`, sessionItem,
				withLen("attachment", binaryPayload, `"filename":"app.log"`), binaryPayload,
				withLen("attachment", logText, `"filename":"app.log"`), logText,
				`{"type":"client_report"}`, clientReport),
		},
		{
			name: "changed event gets its length, other items byte for byte",
			cfg:  scrub.Config{DataScrubbing: legacyDefaults},
			in: env(envHeader,
				`{"type":"event","content_type":"application/json"}`, secretEvent,
				withLen("attachment", binaryPayload, `"filename":"core.bin","attachment_type":"event.attachment"`), binaryPayload,
				withLen("client_report", clientReport, ""), clientReport),
			items: []itemWant{
				{checks: []check{
					{path: []string{"message", "formatted"}, want: "paid with [creditcard]", rem: []string{"@creditcard:replace/s"}},
					{path: []string{"extra", "password"}, want: "[Filtered]", rem: []string{"@password:filter/s"}},
					{path: []string{"extra", "order"}, want: 17},
					{path: []string{"request", "headers", "Authorization"}, want: "[Filtered]", rem: []string{"@bearer:filter/s"}},
					// Relay's normalisation moves the Cookie header into request.cookies.
					{path: []string{"request", "cookies", "0", "1"}, want: "[Filtered]", rem: []string{"@anything:filter/s"}},
					{path: []string{"request", "cookies", "1", "1"}, want: "dark"},
					// Without scrubIpAddresses the IP stays.
					{path: []string{"user", "ip_address"}, want: "203.0.113.7"},
				}, absent: []string{"4111", "hunter2", "abc.def", "s3cr3t"}},
				{same: true},
				{same: true},
			},
		},
		{
			name: "scrubIpAddresses removes the IP and the forwarded client address",
			cfg:  scrub.Config{DataScrubbing: legacyDefaultsIP},
			in: env(envHeader,
				withLen("event", secretEvent, ""), secretEvent),
			items: []itemWant{{checks: []check{
				{path: []string{"user", "ip_address"}, want: nil, rem: []string{"@ip:replace/s", "@anything:remove/x"}},
				{path: []string{"user", "id"}, want: "u1"},
			}, absent: []string{"203.0.113.7"}}},
		},
		{
			name: "scrubIpAddresses drops X-Forwarded-For even when the envelope is clean",
			cfg:  scrub.Config{DataScrubbing: legacyDefaultsIP},
			in:   env(envHeader, `{"type":"event"}`, cleanEvent),
		},
		{
			name: "transaction",
			cfg:  scrub.Config{DataScrubbing: legacyDefaults},
			in:   env(envHeader, `{"type":"transaction"}`, txPayload, `{"type":"client_report"}`, clientReport),
			items: []itemWant{
				{checks: []check{{path: []string{"extra", "secret"}, want: "[Filtered]", rem: []string{"@password:filter/s"}}}},
				{same: true},
			},
		},
		{
			name: "log attributes by name, the client address removed",
			cfg:  scrub.Config{DataScrubbing: legacyDefaultsIP},
			in:   env(envHeader, `{"type":"log","item_count":1,"content_type":"application/vnd.sentry.items.log+json"}`, logPayload),
			items: []itemWant{{checks: []check{
				{path: []string{"items", "0", "attributes", "password", "value"}, want: "[Filtered]",
					meta: []string{"attributes", "password", "value"}, rem: nil},
				{path: []string{"items", "0", "_meta", "attributes", "password", "value", "", "rem", "0", "0"}, want: "@password:filter"},
				{path: []string{"items", "0", "attributes", "client.address", "value"}, want: nil},
				{path: []string{"items", "0", "_meta", "attributes", "client.address", "value", "", "rem", "0", "0"}, want: "@anything:remove"},
				{path: []string{"items", "0", "attributes", "http.status", "value"}, want: 200},
				// $log.body gets only the replace-only rules (doc §2.2).
				{path: []string{"items", "0", "body"}, want: "paid with [creditcard]"},
				{path: []string{"items", "0", "_meta", "body", "", "rem", "0", "0"}, want: "@creditcard:replace"},
			}, absent: []string{"hunter2", "203.0.113.7", "4111"}}},
		},
		{
			name: "span v2 container",
			cfg:  scrub.Config{DataScrubbing: legacyDefaults},
			in:   env(envHeader, `{"type":"span","item_count":1,"content_type":"application/vnd.sentry.items.span.v2+json"}`, spanV2Payload),
			items: []itemWant{{checks: []check{
				{path: []string{"items", "0", "attributes", "db.password", "value"}, want: "[Filtered]"},
				{path: []string{"items", "0", "_meta", "attributes", "db.password", "value", "", "rem", "0", "0"}, want: "@password:filter"},
				{path: []string{"items", "0", "attributes", "db.system", "value"}, want: "postgresql"},
			}, absent: []string{"hunter2"}}},
		},
		{
			name: "standalone span (v1)",
			cfg:  scrub.Config{DataScrubbing: legacyDefaults},
			in:   env(envHeader, `{"type":"span"}`, spanV1Payload),
			items: []itemWant{{checks: []check{
				{path: []string{"data", "password"}, want: "[Filtered]", rem: []string{"@password:filter/s"}},
				{path: []string{"data", "rows"}, want: 3},
			}}},
		},
		{
			name: "trace metric attributes",
			cfg:  scrub.Config{DataScrubbing: legacyDefaults},
			in:   env(envHeader, `{"type":"trace_metric","item_count":1}`, metricPayload),
			items: []itemWant{{checks: []check{
				{path: []string{"items", "0", "attributes", "api_key", "value"}, want: "[Filtered]"},
				{path: []string{"items", "0", "value"}, want: 1},
			}, absent: []string{"k-123"}}},
		},
		{
			name: "advanced config: the named text attachment is masked in place, others kept",
			cfg:  scrub.Config{PIIConfig: []byte(attachmentPII)},
			in: env(envHeader,
				withLen("attachment", logText, `"filename":"app.log","content_type":"text/plain"`), logText,
				withLen("attachment", logText, `"filename":"other.log"`), logText,
				`{"type":"event"}`, `{"extra":{"acct":"DE89370400440532013000"}}`),
			items: []itemWant{
				{}, // checked below: same length, masked
				{same: true},
				{checks: []check{{path: []string{"extra", "acct"}, want: "**********************", rem: []string{"@iban:mask/m"}}}},
			},
		},
		{
			name: "view hierarchy attachments are scrubbed as JSON by the advanced config",
			cfg:  scrub.Config{PIIConfig: []byte(`{"applications":{"$string":["@ip:replace"]}}`)},
			in: env(envHeader,
				withLen("attachment", viewHierarchy, `"filename":"view-hierarchy.json","attachment_type":"event.view_hierarchy","content_type":"application/json"`), viewHierarchy),
			items: []itemWant{{checks: []check{
				{path: []string{"windows", "0", "identifier"}, want: "[ip]"},
				{path: []string{"windows", "0", "type"}, want: "com.example.Login"},
			}}},
		},
		{
			name: "unparsable event payload is an error, not forwarded unscrubbed",
			cfg:  scrub.Config{DataScrubbing: legacyDefaults},
			in:   env(envHeader, `{"type":"client_report"}`, clientReport, `{"type":"event"}`, `{"message":"password=hunter2"`),
			err:  "item 1 (event)",
		},
		{
			name: "event payload that is not an object is an error",
			cfg:  scrub.Config{DataScrubbing: legacyDefaults},
			in:   env(envHeader, `{"type":"event"}`, `["password","hunter2"]`),
			err:  "item 0 (event)",
		},
		{
			name: "unparsable log payload is an error",
			cfg:  scrub.Config{DataScrubbing: legacyDefaults},
			in:   env(envHeader, `{"type":"log","item_count":1}`, `{"items":[{"body":`),
			err:  "item 0 (log)",
		},
		{
			name: "unparsable envelope is an error",
			cfg:  scrub.Config{DataScrubbing: legacyDefaults},
			in:   []byte("{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"event\",\"length\":500}\n{}\n"),
			err:  "parse envelope",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := NewScrubStage(compile(t, tc.cfg))
			in := append([]byte(nil), tc.in...)
			m := &stream.Message{Envelope: in, ForwardedFor: "203.0.113.7, 10.0.0.1", RemoteAddr: "10.0.0.1"}
			v, err := st.Process(context.Background(), m)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.err)
				}
				if !bytes.Equal(m.Envelope, tc.in) || m.ForwardedFor == "" {
					t.Errorf("a failed stage changed the message")
				}
				return
			}
			if err != nil {
				t.Fatalf("Process: %v", err)
			}
			if v.Dropped() {
				t.Fatalf("scrub dropped the envelope (%s)", v.Reason())
			}
			wantXFF := "203.0.113.7, 10.0.0.1"
			if tc.cfg.DataScrubbing != nil && tc.cfg.DataScrubbing.ScrubIPAddresses {
				wantXFF = ""
			}
			if m.ForwardedFor != wantXFF {
				t.Errorf("ForwardedFor = %q, want %q", m.ForwardedFor, wantXFF)
			}
			if m.RemoteAddr != "10.0.0.1" {
				t.Errorf("RemoteAddr changed to %q", m.RemoteAddr)
			}
			if tc.items == nil {
				// Not re-serialised: the very bytes received (no `length` added).
				if !bytes.Equal(m.Envelope, tc.in) || &m.Envelope[0] != &in[0] {
					t.Fatalf("unchanged envelope was re-serialised:\n%s", m.Envelope)
				}
				return
			}
			if bytes.Equal(m.Envelope, tc.in) {
				t.Fatalf("envelope unchanged, want scrubbed")
			}
			inHead, inItems := splitEnvelope(t, tc.in)
			head, items := splitEnvelope(t, m.Envelope)
			if head != inHead {
				t.Errorf("envelope header %s, want it as sent: %s", head, inHead)
			}
			if len(items) != len(tc.items) || len(inItems) != len(items) {
				t.Fatalf("%d items out of %d, want %d", len(items), len(inItems), len(tc.items))
			}
			for i, w := range tc.items {
				got, sent := items[i], inItems[i]
				if got.header["type"] != sent.header["type"] {
					t.Errorf("item %d: type %v, want %v", i, got.header["type"], sent.header["type"])
				}
				if l, ok := got.header["length"].(float64); !ok || int(l) != len(got.payload) {
					t.Errorf("item %d: header %s, want length %d", i, got.headerLine, len(got.payload))
				}
				if w.same {
					if !bytes.Equal(got.payload, sent.payload) {
						t.Errorf("item %d changed:\n%q\nwant\n%q", i, got.payload, sent.payload)
					}
					if _, had := sent.header["length"]; had && got.headerLine != sent.headerLine {
						t.Errorf("item %d header %s, want it as sent: %s", i, got.headerLine, sent.headerLine)
					}
					continue
				}
				if w.checks != nil {
					for _, c := range w.checks {
						c.run(t, got.payload)
					}
				}
				for _, a := range w.absent {
					if bytes.Contains(got.payload, []byte(a)) {
						t.Errorf("item %d still holds %q:\n%s", i, a, got.payload)
					}
				}
			}
			if strings.HasPrefix(tc.name, "advanced config: the named text attachment") {
				got := items[0].payload
				want := "GET / from ********\niban **********************\n"
				if string(got) != want || len(got) != len(logText) {
					t.Errorf("attachment = %q, want %q (same length as sent)", got, want)
				}
			}
			// The relay's own parser reads the result, with the same items.
			e, err := envelope.Parse(m.Envelope)
			if err != nil {
				t.Fatalf("scrubbed envelope does not parse: %v\n%s", err, m.Envelope)
			}
			for i, it := range e.Items {
				if !bytes.Equal(it.Payload, items[i].payload) {
					t.Errorf("item %d: envelope.Parse and the independent split disagree", i)
				}
			}
		})
	}
}

// Every captured request of the real SDKs goes through the stage with
// Sentry's default scrubbing: the result is a valid envelope with the same
// items, an unchanged envelope is not re-serialised, changed items are valid
// JSON with `_meta`, and scrubbing again changes nothing (what is scrubbed
// stays scrubbed, e.g. for a redelivered message).
func TestScrubStageSDKFixtures(t *testing.T) {
	dir := testfixture.SDKDir(t)
	names, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	clientRe := regexp.MustCompile(`sentry_client=([^,&\s]+)`)
	for _, cfg := range []struct {
		name string
		ds   *scrub.DataScrubbing
	}{{"defaults", legacyDefaults}, {"defaults+ip", legacyDefaultsIP}} {
		st := NewScrubStage(compile(t, scrub.Config{DataScrubbing: cfg.ds}))
		var n, changed int
		for _, path := range names {
			name := filepath.Base(path)
			var body []byte
			switch {
			case strings.HasSuffix(name, ".envelope"):
				if body, err = os.ReadFile(path); err != nil {
					t.Fatal(err)
				}
			case strings.Contains(name, ".store.") && !strings.HasSuffix(name, ".headers") && !strings.HasSuffix(name, ".gz"):
				raw, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				hdrs, err := os.ReadFile(path + ".headers")
				if err != nil {
					t.Fatal(err)
				}
				client := ""
				if m := clientRe.FindSubmatch(hdrs); m != nil {
					client = string(m[1])
				}
				e, err := envelope.FromStoreBody(raw, client)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				body = e.AppendTo(nil)
			default:
				continue
			}
			n++
			t.Run(cfg.name+"/"+name, func(t *testing.T) {
				sent, err := envelope.Parse(body)
				if err != nil {
					t.Fatalf("fixture does not parse: %v", err)
				}
				in := append([]byte(nil), body...)
				m := &stream.Message{Envelope: in}
				if _, err := st.Process(context.Background(), m); err != nil {
					t.Fatalf("Process: %v", err)
				}
				if bytes.Equal(m.Envelope, body) {
					if &m.Envelope[0] != &in[0] {
						t.Errorf("unchanged envelope was copied")
					}
					return
				}
				changed++
				got, err := envelope.Parse(m.Envelope)
				if err != nil {
					t.Fatalf("scrubbed envelope does not parse: %v", err)
				}
				if len(got.Items) != len(sent.Items) {
					t.Fatalf("%d items, want %d", len(got.Items), len(sent.Items))
				}
				if h := strings.SplitN(string(m.Envelope), "\n", 2)[0]; h != strings.SplitN(string(body), "\n", 2)[0] {
					t.Errorf("envelope header changed: %s", h)
				}
				_, split := splitEnvelope(t, m.Envelope)
				for i, it := range got.Items {
					was := sent.Items[i]
					if it.Type != was.Type {
						t.Errorf("item %d: type %q, want %q", i, it.Type, was.Type)
					}
					if l, ok := split[i].header["length"].(float64); !ok || int(l) != len(it.Payload) {
						t.Errorf("item %d (%s): header %s, want length %d", i, it.Type, split[i].headerLine, len(it.Payload))
					}
					if bytes.Equal(it.Payload, was.Payload) {
						continue
					}
					if it.Type == "attachment" {
						t.Errorf("item %d: legacy settings changed an attachment", i)
						continue
					}
					if !json.Valid(it.Payload) {
						t.Errorf("item %d (%s): scrubbed payload is not JSON:\n%s", i, it.Type, it.Payload)
					}
					if !bytes.Contains(it.Payload, []byte(`"_meta"`)) {
						t.Errorf("item %d (%s): changed without _meta:\n%s", i, it.Type, it.Payload)
					}
				}
				again := &stream.Message{Envelope: m.Envelope}
				if _, err := st.Process(context.Background(), again); err != nil {
					t.Fatalf("second pass: %v", err)
				}
				if !bytes.Equal(again.Envelope, m.Envelope) {
					t.Errorf("scrubbing twice changed the envelope again:\nonce:  %s\ntwice: %s", m.Envelope, again.Envelope)
				}
			})
		}
		if n < 60 {
			t.Fatalf("only %d fixtures found in %s", n, dir)
		}
		t.Logf("%s: %d of %d fixtures changed", cfg.name, changed, n)
	}
}

// The stage is shared by every consumer goroutine.
func TestScrubStageConcurrent(t *testing.T) {
	st := NewScrubStage(compile(t, scrub.Config{DataScrubbing: legacyDefaultsIP}))
	in := env(envHeader, `{"type":"event"}`, secretEvent, `{"type":"client_report"}`, clientReport)
	want := &stream.Message{Envelope: append([]byte(nil), in...)}
	if _, err := st.Process(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 50 {
				m := &stream.Message{Envelope: append([]byte(nil), in...)}
				if _, err := st.Process(context.Background(), m); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(m.Envelope, want.Envelope) {
					errs <- fmt.Errorf("concurrent result differs:\n%s\nwant\n%s", m.Envelope, want.Envelope)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkScrubStage measures the whole stage (envelope parse, scrub,
// re-serialisation) per envelope over the captured SDK envelopes, and over
// an SDK error event that carries personal data (every one changed).
func BenchmarkScrubStage(b *testing.B) {
	dir := testfixture.SDKDir(b)
	names, err := filepath.Glob(filepath.Join(dir, "*.envelope"))
	if err != nil {
		b.Fatal(err)
	}
	var fixtures [][]byte
	for _, n := range names {
		body, err := os.ReadFile(n)
		if err != nil {
			b.Fatal(err)
		}
		fixtures = append(fixtures, body)
	}
	goEvent, err := os.ReadFile(filepath.Join(dir, "go-event-exception.envelope"))
	if err != nil {
		b.Fatal(err)
	}
	e, err := envelope.Parse(goEvent)
	if err != nil {
		b.Fatal(err)
	}
	e.Items[0].SetPayload(append([]byte(`{"user":{"ip_address":"203.0.113.7"},"extra":{"password":"hunter2"},`), e.Items[0].Payload[1:]...))
	piiEvent := e.AppendTo(nil)

	for _, set := range []struct {
		name   string
		bodies [][]byte
	}{{"sdk-envelopes", fixtures}, {"pii-event", [][]byte{piiEvent}}} {
		for _, c := range []struct {
			name string
			ds   *scrub.DataScrubbing
		}{{"defaults", legacyDefaults}, {"defaults+ip", legacyDefaultsIP}} {
			st := NewScrubStage(compile(b, scrub.Config{DataScrubbing: c.ds}))
			b.Run(set.name+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					for _, body := range set.bodies {
						m := stream.Message{Envelope: body}
						if _, err := st.Process(context.Background(), &m); err != nil {
							b.Fatal(err)
						}
						n++
					}
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "envelopes/s")
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(n), "µs/envelope")
			})
		}
	}
}
