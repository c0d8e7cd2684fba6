package filter

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/testfixture"
)

// allFilters turns every filter on, so a fuzzed payload goes through all of
// them (as far as each reads it).
const allFilters = `{
	"generic":{"version":1,"filters":[
		{"id":"g-and","isEnabled":true,"condition":{"op":"and","inner":[{"op":"glob","name":"event.transaction","value":["*checkout*"]},{"op":"gt","name":"event.duration","value":5000}]}},
		{"id":"g-or","isEnabled":true,"condition":{"op":"or","inner":[{"op":"eq","name":"event.tags.team","value":["a","b"],"options":{"ignoreCase":true}},{"op":"cidr","name":"event.user.ip_address","value":["10.0.0.0/8"]}]}},
		{"id":"g-not","isEnabled":true,"condition":{"op":"not","inner":{"op":"lte","name":"event.measurements.lcp.value","value":1e9}}},
		{"id":"g-extra","isEnabled":true,"condition":{"op":"eq","name":"event.extra.a.b","value":true}},
		{"id":"g-hdr","isEnabled":true,"condition":{"op":"glob","name":"event.request.headers.x-test","value":["?x*"]}}
	]},
	"csp":{"disallowedSources":["about","*.superfish.com","chrome-extension://*","localhost:*"]},
	"clientIps":{"blacklistedIps":["10.0.0.0/8","2001:db8::/32","192.0.2.1"]},
	"releases":{"releases":["1.*","{a,b}-[0-9]?","\\*literal"]},
	"errorMessages":{"patterns":["*ChunkLoadError*","TypeError: *undefined*"]},
	"localhost":{"isEnabled":true},
	"browserExtensions":{"isEnabled":true},
	"legacyBrowsers":{"isEnabled":true,"options":["ie","edge","safari","firefox","chrome","opera","opera_mini","android","ie_pre_9","edge_pre_79"]},
	"webCrawlers":{"isEnabled":true},
	"ignoreTransactions":{"isEnabled":true,"patterns":["*health*"]}
}`

// FuzzCheck feeds random bytes as event, transaction and security payloads
// through every filter: Check must return (a reason, nothing, or
// ErrNotAnEvent) and never panic. The seeds are the recorded SDK events.
func FuzzCheck(f *testing.F) {
	s, err := Compile([]byte(allFilters))
	if err != nil {
		f.Fatal(err)
	}
	dir := testfixture.SDKDir(f)
	names, _ := filepath.Glob(filepath.Join(dir, "*.envelope"))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		env, err := envelope.Parse(b)
		if err != nil {
			continue
		}
		for _, it := range env.Items {
			if it.Type == "event" || it.Type == "transaction" {
				f.Add(append([]byte(nil), it.Payload...), uint8(0))
			}
		}
	}
	f.Add([]byte(`{"csp-report":{"blocked-uri":"about","source-file":"chrome-extension://x"}}`), uint8(2))
	f.Add([]byte(`[{"type":"csp-violation","body":{"blockedURL":"http://a.superfish.com"}}]`), uint8(2))
	f.Add([]byte(`{"exception":[null,{"value":1}],"request":{"headers":[["User-Agent","MSIE 5"],[1]]},"message":{"formatted":null}}`), uint8(1))
	f.Fuzz(func(t *testing.T, payload []byte, k uint8) {
		kind := [...]string{KindEvent, KindTransaction, KindSecurity}[int(k)%3]
		r, err := s.Check(Input{Kind: kind, Payload: payload, ClientIP: netip.MustParseAddr("192.0.2.1"), UserAgent: string(payload[:min(len(payload), 64)])})
		if err != nil && err != ErrNotAnEvent {
			t.Fatalf("unexpected error %v", err)
		}
		if err != nil && r != "" {
			t.Fatalf("a reason (%q) with an error", r)
		}
	})
}

// FuzzGlob compiles random patterns and matches them against random text:
// no panic, and a pattern without metacharacters matches itself.
func FuzzGlob(f *testing.F) {
	for _, p := range []string{"*", "a*b", "{a,b}", "[!0-4]", `\{x\}`, "[", "{", "}", `\`, "[]]", "[a-]", "**?"} {
		f.Add(p, "abc")
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		g := compileGlobs([]string{pattern})
		_ = g.match(s)
		if pattern != "" && !strings.ContainsAny(pattern, `*?[]{},\`) && !g.match(pattern) {
			t.Fatalf("literal pattern %q does not match itself", pattern)
		}
	})
}

// FuzzCompile feeds random settings documents to Compile: an error or
// settings, never a panic; compiled settings then check an event.
func FuzzCompile(f *testing.F) {
	f.Add([]byte(allFilters))
	f.Add([]byte(`{"generic":{"version":1,"filters":{"x":{"isEnabled":true,"condition":{"op":"not","inner":{"op":"not","inner":{"op":"eq","name":"event.level","value":[1,"error"]}}}}}}}`))
	f.Add([]byte(`{"legacyBrowsers":{"isEnabled":true,"options":["default","ie"]},"clientIps":{"blacklistedIps":["::/0"]}}`))
	ev := []byte(`{"level":"error","release":"1.0","request":{"url":"http://localhost/","headers":{"User-Agent":"MSIE 6.0"}},"exception":{"values":[{"type":"E","value":"fb_xd_fragment"}]}}`)
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, err := Compile(doc)
		if err != nil {
			return
		}
		if _, err := s.Check(Input{Kind: KindEvent, Payload: ev, ClientIP: netip.MustParseAddr("10.0.0.1")}); err != nil {
			t.Fatalf("Check: %v", err)
		}
	})
}

// FuzzTopMembers holds the generic getter's member split to encoding/json's:
// for any valid JSON object, the same keys with the same raw values; for
// anything else, no panic.
func FuzzTopMembers(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"b":"x\"}","c":{"d":[1,{"e":"]"}]}}`, ` { "k\u00e9" : [ ] , "a":1 ,"a":2 } `, `{"a":`, `[1]`, `{"a":"\\"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := topMembers(b)
		var want map[string]json.RawMessage
		if json.Unmarshal(b, &want) != nil || want == nil {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("%d members, encoding/json finds %d: %s", len(got), len(want), b)
		}
		for k, v := range want {
			if string(got[k]) != string(v) {
				t.Fatalf("member %q = %s, encoding/json: %s", k, got[k], v)
			}
		}
	})
}
