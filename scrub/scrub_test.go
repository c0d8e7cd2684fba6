package scrub

import (
	"bytes"
	"compress/zlib"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
)

func mustCompile(t *testing.T, c Config) *Scrubber {
	t.Helper()
	s, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func scrubJSON(t *testing.T, s *Scrubber, in string) (map[string]any, string) {
	t.Helper()
	out, _, err := s.ScrubEvent([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("invalid output %s: %v", out, err)
	}
	return doc, string(out)
}

func TestNoopScrubber(t *testing.T) {
	for _, c := range []Config{{}, {PIIConfig: []byte("  ")}, {PIIConfig: []byte("null")}, {DataScrubbing: &DataScrubbing{}},
		{DataScrubbing: &DataScrubbing{ScrubDefaults: true}}, {PIIConfig: []byte(`{"applications":{}}`)}} {
		s := mustCompile(t, c)
		if !s.Noop() {
			t.Errorf("%+v: expected a no-op scrubber", c)
		}
		in := []byte(`{"extra":{"password":"x"}}`)
		out, changed, err := s.ScrubEvent(in)
		if err != nil || changed || &out[0] != &in[0] {
			t.Errorf("%+v: changed=%v err=%v", c, changed, err)
		}
	}
	var nilS *Scrubber
	if !nilS.Noop() {
		t.Error("nil scrubber must be a no-op")
	}
}

func TestUnchangedPartsKeepTheirBytes(t *testing.T) {
	s := mustCompile(t, Config{DataScrubbing: simple})
	in := `{ "message" : "x\u00e9y" ,"extra":{"n": 1.50e+3, "password" : "hunter2", "ok":[1, 2 ,3]},"release":"a\/b"}`
	out, changed, err := s.ScrubEvent([]byte(in))
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	for _, frag := range []string{`"message":"x\u00e9y"`, `1.50e+3`, `[1, 2 ,3]`, `"release":"a\/b"`, `"password":"[Filtered]"`} {
		if !strings.Contains(string(out), frag) {
			t.Errorf("output lost %q: %s", frag, out)
		}
	}
}

func TestIncomingMetaIsKeptAndRespected(t *testing.T) {
	s := mustCompile(t, Config{DataScrubbing: simple})
	// The SDK already redacted the first 10 bytes; that chunk must not be
	// re-redacted, its remark must survive next to ours, and meta for a
	// field that is gone must be carried over.
	in := `{"extra":{"a":"[Filtered] 4571234567890111"},"_meta":{"extra":{"a":{"":{"rem":[["sdk","s",0,10]],"len":30}},"gone":{"":{"err":["invalid_data"]}}},"user":{"":{"err":["x"]}}}}`
	doc, out := scrubJSON(t, s, in)
	if got := doc["extra"].(map[string]any)["a"]; got != "[Filtered] [Filtered]" {
		t.Fatalf("a = %v (%s)", got, out)
	}
	m, _ := lookupEntry(doc["_meta"], []string{"extra", "a"})
	if !jsonEqual(m, `{"rem":[["sdk","s",0,10],["@creditcard:filter","s",11,21]],"len":30}`) {
		t.Fatalf("meta = %s", mustJSON(m))
	}
	if g, _ := lookupEntry(doc["_meta"], []string{"extra", "gone"}); !jsonEqual(g, `{"err":["invalid_data"]}`) {
		t.Fatalf("detached meta lost: %s", out)
	}
	if g, _ := lookupEntry(doc["_meta"], []string{"user"}); !jsonEqual(g, `{"err":["x"]}`) {
		t.Fatalf("detached meta lost: %s", out)
	}
}

func TestCookieHeaderNormalisation(t *testing.T) {
	s := mustCompile(t, Config{DataScrubbing: simple})
	// sentry-go with SendDefaultPII: cookies as a string and a Cookie header.
	doc, out := scrubJSON(t, s, `{"request":{"url":"http://x/","cookies":"session=abc; theme=dark; csrftoken=zzz","headers":{"Cookie":"session=abc; theme=dark","Authorization":"Bearer abc.def","Accept":"*/*"}}}`)
	req := doc["request"].(map[string]any)
	h := req["headers"].(map[string]any)
	if _, ok := h["Cookie"]; ok {
		t.Fatalf("Cookie header kept: %s", out)
	}
	if h["Authorization"] != "[Filtered]" || h["Accept"] != "*/*" {
		t.Fatalf("headers: %s", out)
	}
	if !jsonEqual(req["cookies"], `[["session","[Filtered]"],["theme","dark"],["csrftoken","[Filtered]"]]`) {
		t.Fatalf("cookies: %s", out)
	}
	// no request.cookies: the header becomes the cookies
	doc, out = scrubJSON(t, s, `{"request":{"headers":[["Cookie","sessionid=1; a=b"],["X","y"]]}}`)
	req = doc["request"].(map[string]any)
	if !jsonEqual(req["headers"], `[["X","y"]]`) || !jsonEqual(req["cookies"], `[["sessionid","[Filtered]"],["a","b"]]`) {
		t.Fatalf("got %s", out)
	}
}

func TestBulkCookieStringInSpanData(t *testing.T) {
	s := mustCompile(t, Config{DataScrubbing: &DataScrubbing{ScrubData: true, ScrubDefaults: true}})
	doc, out := scrubJSON(t, s, `{"spans":[{"span_id":"a","data":{"http.request.header.cookie":"session=abc; language=en; session__17=x"}}]}`)
	v, _ := lookup(doc, "spans/0/data/http.request.header.cookie")
	if v != "session=[Filtered]; language=en; session__17=[Filtered]" {
		t.Fatalf("got %v (%s)", v, out)
	}
	m, _ := metaAt(doc, "spans/0/data/http.request.header.cookie", false)
	if !jsonEqual(m, `{"rem":[["@cookies:filter","s",8,18],["@cookies:filter","s",45,55]],"len":39}`) {
		t.Fatalf("meta %s", mustJSON(m))
	}
}

func TestScrubIPAddresses(t *testing.T) {
	s := mustCompile(t, Config{DataScrubbing: &DataScrubbing{ScrubIPAddresses: true}})
	if !s.ScrubsIPAddresses() {
		t.Fatal("ScrubsIPAddresses")
	}
	doc, out := scrubJSON(t, s, `{"user":{"ip_address":"{{auto}}","id":"7"},"sdk":{"name":"x","client_ip":"1.2.3.4"},"request":{"env":{"REMOTE_ADDR":"::1"}},"extra":{"peer":"from 10.1.2.3:443"}}`)
	for _, p := range []string{"user/ip_address", "sdk/client_ip", "request/env/REMOTE_ADDR"} {
		if v, ok := lookup(doc, p); !ok || v != nil {
			t.Errorf("%s = %v (%s)", p, v, out)
		}
	}
	if v, _ := lookup(doc, "extra/peer"); v != "from [ip]:443" {
		t.Errorf("extra/peer = %v", v)
	}
}

func TestMessageAliasOfLogentry(t *testing.T) {
	s := mustCompile(t, Config{DataScrubbing: simple})
	doc, out := scrubJSON(t, s, `{"message":"mail jane@example.com, password hunter2"}`)
	if v, _ := lookup(doc, "message/formatted"); v != "mail [email], password hunter2" {
		t.Fatalf("got %s", out)
	}
	if m, _ := metaAt(doc, "message/formatted", false); !jsonEqual(m, `{"rem":[["@email:replace","s",5,12]],"len":39}`) {
		t.Fatalf("meta %s", out)
	}
	in := []byte(`{"message":"nothing to see"}`)
	if o, changed, _ := s.ScrubEvent(in); changed || &o[0] != &in[0] {
		t.Fatal("an unchanged message must stay as it is")
	}
	doc, out = scrubJSON(t, s, `{"message":{"formatted":"card 4111-1111-1111-1111","message":"card %s"}}`)
	if v, _ := lookup(doc, "message/formatted"); v != "card [creditcard]" {
		t.Fatalf("got %s", out)
	}
}

func TestBareValuesArrays(t *testing.T) {
	s := mustCompile(t, Config{DataScrubbing: simple})
	doc, out := scrubJSON(t, s, `{"exception":[{"type":"E","stacktrace":{"frames":[{"vars":{"password":"x"}}]}}],"breadcrumbs":[{"message":"token=abc"}]}`)
	if v, _ := lookup(doc, "exception/0/stacktrace/frames/0/vars/password"); v != "[Filtered]" {
		t.Fatalf("got %s", out)
	}
	if v, _ := lookup(doc, "breadcrumbs/0/message"); v != "[Filtered]" {
		t.Fatalf("got %s", out)
	}
}

func TestPIIFlags(t *testing.T) {
	// Generic selectors reach only pii=true fields (doc §8, §9.1).
	s := mustCompile(t, Config{PIIConfig: []byte(`{"applications":{"$string":["@anything:replace"]}}`)})
	in := `{"transaction":"t","release":"r","server_name":"host","culprit":"c","tags":{"a":"b"},"extra":{"a":"b"},
		"user":{"id":"1","segment":"s","geo":{"city":"c","country_code":"DE"}},"request":{"url":"u","method":"GET","fragment":"f"},
		"contexts":{"os":{"name":"Linux"},"device":{"name":"d"},"custom":{"k":"v"}},"logentry":{"message":"m","formatted":"f"},
		"exception":{"values":[{"type":"T","value":"v","module":"m"}]},"unknown_top":"u","modules":{"a":"1"},"fingerprint":["x"]}`
	doc, out := scrubJSON(t, s, in)
	filtered := []string{"server_name", "extra/a", "user/id", "user/geo/city", "user/geo/country_code", "request/fragment", "contexts/custom/k",
		"logentry/formatted", "exception/values/0/value", "unknown_top"}
	kept := []string{"transaction", "release", "culprit", "tags/a", "user/segment", "request/url", "request/method",
		"contexts/os/name", "contexts/device/name", "logentry/message", "exception/values/0/type", "exception/values/0/module", "modules/a", "fingerprint/0"}
	for _, p := range filtered {
		if v, _ := lookup(doc, p); v != "[Filtered]" {
			t.Errorf("%s = %v, want [Filtered]", p, v)
		}
	}
	for _, p := range kept {
		if v, _ := lookup(doc, p); v == "[Filtered]" {
			t.Errorf("%s was scrubbed", p)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

func TestScrubItemTypes(t *testing.T) {
	s := mustCompile(t, Config{DataScrubbing: simple})
	cases := []struct {
		typ, in, path, want string
	}{
		{"transaction", `{"type":"transaction","extra":{"password":"x"}}`, "extra/password", "[Filtered]"},
		{"feedback", `{"contexts":{"feedback":{"message":"m"}},"extra":{"secret":"x"}}`, "extra/secret", "[Filtered]"},
		{"replay_event", `{"type":"replay_event","urls":["https://u:p@x/"],"extra":{"auth":"x"}}`, "urls/0", "https://u:[Filtered]@x/"},
		{"log", `{"items":[{"body":"card 4111 1111 1111 1111","attributes":{"password":{"type":"string","value":"x"},"n":{"type":"integer","value":3}}}]}`, "items/0/attributes/password/value", "[Filtered]"},
		{"log", `{"items":[{"body":"card 4111 1111 1111 1111","attributes":{}}]}`, "items/0/body", "card [creditcard]"},
		{"trace_metric", `{"items":[{"name":"m","attributes":{"api_key":{"type":"string","value":"k"}}}]}`, "items/0/attributes/api_key/value", "[Filtered]"},
		{"span", `{"span_id":"a","data":{"password":"x"}}`, "data/password", "[Filtered]"},
	}
	for _, c := range cases {
		out, changed, err := s.ScrubItem(Item{Type: c.typ}, []byte(c.in))
		if err != nil || !changed {
			t.Errorf("%s %s: changed=%v err=%v", c.typ, c.path, changed, err)
			continue
		}
		var doc any
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatalf("%s: %v", c.typ, err)
		}
		if v, _ := lookup(doc, c.path); v != c.want {
			t.Errorf("%s: %s = %v, want %q (%s)", c.typ, c.path, v, c.want, out)
		}
	}
	for _, typ := range []string{"session", "sessions", "client_report", "check_in", "profile", "statsd", "user_report", "replay_video"} {
		in := []byte(`{"extra":{"password":"x"}}`)
		if out, changed, _ := s.ScrubItem(Item{Type: typ}, in); changed || &out[0] != &in[0] {
			t.Errorf("%s must pass through", typ)
		}
	}
	if _, _, err := s.ScrubItem(Item{Type: "event"}, []byte(`[1]`)); err == nil {
		t.Error("expected an error for a non-object event")
	}
	if _, _, err := s.ScrubEvent([]byte(`{"a":`)); err == nil {
		t.Error("expected an error for invalid JSON")
	}
}

func TestScrubEventMeta(t *testing.T) {
	s := mustCompile(t, Config{DataScrubbing: simple})
	res, err := s.ScrubEventMeta([]byte(`{"extra":{"password":"hunter2"}}`))
	if err != nil || !res.Changed {
		t.Fatal(err)
	}
	if string(res.Event) != `{"extra":{"password":"[Filtered]"}}` {
		t.Fatalf("event %s", res.Event)
	}
	if string(res.Meta) != `{"extra":{"password":{"":{"rem":[["@password:filter","s",0,10]],"len":7}}}}` {
		t.Fatalf("meta %s", res.Meta)
	}
}

func TestRedactionMethodsOnKeyMatch(t *testing.T) {
	cfg := func(method string) Config {
		return Config{PIIConfig: []byte(`{"rules":{"r":{"type":"redact_pair","keyPattern":"^secret$","redaction":{"method":"` + method + `"}}},"applications":{"$string":["r"]}}`)}
	}
	for _, c := range []struct{ method, want, meta string }{
		{"replace", `"[Filtered]"`, `{"rem":[["r","s",0,10]],"len":5}`},
		{"mask", `"*****"`, `{"rem":[["r","m",0,5]],"len":5}`},
		{"hash", `"` + hashHex("hello") + `"`, `{"rem":[["r","p",0,40]],"len":5}`},
		{"remove", `null`, `{"rem":[["r","x"]]}`},
		{"default", `null`, `{"rem":[["r","x"]]}`},
	} {
		doc, out := scrubJSON(t, mustCompile(t, cfg(c.method)), `{"extra":{"secret":"hello"}}`)
		v, _ := lookup(doc, "extra/secret")
		m, _ := metaAt(doc, "extra/secret", false)
		if !jsonEqual(v, c.want) || !jsonEqual(m, c.meta) {
			t.Errorf("%s: %s", c.method, out)
		}
	}
}

func TestMultipleAndAliasRules(t *testing.T) {
	pii := `{"rules":{
		"both":{"type":"multiple","rules":["@email","@creditcard:mask"],"hideInner":true,"redaction":{"method":"replace","text":"[x]"}},
		"visible":{"type":"multiple","rules":["@email:replace","@ip:replace"]},
		"al":{"type":"alias","rule":"visible","hideInner":true},
		"loop":{"type":"alias","rule":"loop"}},
		"applications":{"extra.a":["both"],"extra.b":["al"],"extra.c":["loop","@nope"]}}`
	s := mustCompile(t, Config{PIIConfig: []byte(pii)})
	doc, out := scrubJSON(t, s, `{"extra":{"a":"me@x.org 4111111111111111","b":"me@x.org 1.2.3.4","c":"me@x.org"}}`)
	if v, _ := lookup(doc, "extra/a"); v != "[x] [x]" {
		t.Errorf("a = %v (%s)", v, out)
	}
	if m, _ := metaAt(doc, "extra/a", false); !jsonEqual(m, `{"rem":[["both","s",0,3],["both","s",4,7]],"len":25}`) {
		t.Errorf("a meta %s", mustJSON(m))
	}
	if v, _ := lookup(doc, "extra/b"); v != "[email] [ip]" {
		t.Errorf("b = %v (%s)", v, out)
	}
	if m, _ := metaAt(doc, "extra/b", false); !jsonEqual(m, `{"rem":[["al","s",0,7],["al","s",8,12]],"len":16}`) {
		t.Errorf("b meta %s", mustJSON(m))
	}
	if v, _ := lookup(doc, "extra/c"); v != "me@x.org" {
		t.Errorf("c = %v", v)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := mustCompile(t, Config{DataScrubbing: simple, PIIConfig: []byte(tenRules)})
	events := sdkEvents(t)
	want := make([]string, len(events))
	for i, e := range events {
		out, _, err := s.ScrubEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = string(out)
	}
	done := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for r := 0; r < 5; r++ {
				for i, e := range events {
					out, _, err := s.ScrubEvent(e)
					if err != nil || string(out) != want[i] {
						done <- fmt.Errorf("event %d differs under concurrency (err %v)", i, err)
						return
					}
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseDataScrubbing(t *testing.T) {
	ds, err := ParseDataScrubbing([]byte(`{"scrubData":true,"scrubDefaults":true,"scrubIpAddresses":true,"sensitiveFields":["a"],"excludeFields":["b"]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := DataScrubbing{ScrubData: true, ScrubDefaults: true, ScrubIPAddresses: true, SensitiveFields: []string{"a"}, ExcludeFields: []string{"b"}}
	if mustJSON(*ds) != mustJSON(want) {
		t.Fatalf("got %+v", ds)
	}
	if _, err := ParseDataScrubbing([]byte(`{"scrubData":"yes"}`)); err == nil {
		t.Fatal("expected an error")
	}
}

func TestLegacyConversionSelectors(t *testing.T) {
	// doc §2.2: the canonical conversion of scrubData+scrubDefaults+scrubIpAddresses.
	cfg := legacyToConfig(simple)
	var got []string
	for _, a := range cfg.apps {
		got = append(got, a.sel.String()+" → "+strings.Join(a.ids, ","))
	}
	if !strings.HasPrefix(got[0], "($string || $number || $array || $object) && !(debug_meta.** || $frame.filename || $frame.abs_path || $logentry.formatted || $error.value || $http.headers.user-agent) → @common:filter,@ip:replace") {
		t.Errorf("main application: %s", got[0])
	}
	if got[1] != "$http.env.REMOTE_ADDR || $user.ip_address || $sdk.client_ip || $span.sentry_tags.'user.ip' || attributes.'client.address' → @anything:remove" {
		t.Errorf("known IP application: %s", got[1])
	}
	if !strings.HasPrefix(got[2], "$logentry.formatted || $log.body || $span.data.'gen_ai.input.messages' || attributes.'gen_ai.input.messages'.value") ||
		!strings.HasSuffix(got[2], "@email:replace,@creditcard:replace,@iban:replace,@usssn:replace,@bearer:replace") {
		t.Errorf("replace-only application: %s", got[2])
	}
	if legacyToConfig(&DataScrubbing{}) != nil || legacyToConfig(&DataScrubbing{ScrubDefaults: true}) != nil {
		t.Error("all-default settings must convert to no config")
	}
	ipOnly := legacyToConfig(&DataScrubbing{ScrubIPAddresses: true})
	if len(ipOnly.apps) != 2 {
		t.Errorf("scrubIpAddresses only: %d applications", len(ipOnly.apps))
	}
}

func TestReplayRecording(t *testing.T) {
	s := mustCompile(t, Config{DataScrubbing: simple, PIIConfig: []byte(`{"applications":{"$string":["@email:replace"]}}`)})
	rrweb := `[{"type":2,"data":{"node":{"textContent":"me@example.com"}}},` +
		`{"type":5,"timestamp":1,"data":{"tag":"breadcrumb","payload":{"description":"GET /?password=1 from 10.0.0.1","data":{"password":"x","to":"me@example.com","n":4},"category":"me@example.com"}}}]`
	for _, compressed := range []bool{false, true} {
		body := []byte(rrweb)
		if compressed {
			var b bytes.Buffer
			zw := zlib.NewWriter(&b)
			zw.Write(body)
			zw.Close()
			body = b.Bytes()
		}
		in := append([]byte("{\"segment_id\":0}\n"), body...)
		out, changed, err := s.ScrubItem(Item{Type: "replay_recording"}, in)
		if err != nil || !changed {
			t.Fatalf("compressed=%v: changed=%v err=%v", compressed, changed, err)
		}
		header, rest, _ := bytes.Cut(out, []byte("\n"))
		if string(header) != `{"segment_id":0}` {
			t.Fatalf("header %q", header)
		}
		if compressed {
			zr, err := zlib.NewReader(bytes.NewReader(rest))
			if err != nil {
				t.Fatal(err)
			}
			if rest, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		var doc any
		if err := json.Unmarshal(rest, &doc); err != nil {
			t.Fatalf("%v: %s", err, rest)
		}
		for path, want := range map[string]any{
			"1/data/payload/description":   "[Filtered]",
			"1/data/payload/data/password": "[Filtered]",
			"1/data/payload/data/to":       "[email]",
			"1/data/payload/category":      "me@example.com", // only description and data are scrubbed
			"0/data/node/textContent":      "me@example.com", // only custom events
		} {
			if v, _ := lookup(doc, path); v != want {
				t.Errorf("compressed=%v: %s = %v, want %v (%s)", compressed, path, v, want, rest)
			}
		}
		if strings.Contains(string(rest), "_meta") {
			t.Errorf("recording got _meta: %s", rest)
		}
	}
	// unchanged recordings are passed through as they are
	in := []byte("{\"segment_id\":0}\n[{\"type\":5,\"data\":{\"payload\":{\"description\":\"ok\"}}}]")
	if out, changed, err := s.ScrubItem(Item{Type: "replay_recording"}, in); err != nil || changed || &out[0] != &in[0] {
		t.Errorf("changed=%v err=%v", changed, err)
	}
	if _, _, err := s.ScrubItem(Item{Type: "replay_recording"}, []byte("{}\nnot json")); err == nil {
		t.Error("expected an error for a broken recording")
	}
}

// The end-to-end case, at the library level: a sentry-go style event
// (SendDefaultPII) with a card number in the message, a password in extra, an
// Authorization header, a session cookie and the user's IP.
func TestSentryGoStyleEvent(t *testing.T) {
	s := mustCompile(t, Config{DataScrubbing: &DataScrubbing{ScrubData: true, ScrubDefaults: true, ScrubIPAddresses: true}})
	in := `{"event_id":"0123456789abcdef0123456789abcdef","level":"error","platform":"go","message":"payment with card 4111 1111 1111 1111 failed",
		"extra":{"password":"hunter2","order":42},"user":{"ip_address":"203.0.113.9"},
		"request":{"url":"http://shop/pay","method":"POST","cookies":"session=s3cr3t; theme=dark","headers":{"Authorization":"Basic dXNlcjpwYXNz","Cookie":"session=s3cr3t; theme=dark","User-Agent":"Go-http-client/1.1"}},
		"sdk":{"name":"sentry.go","version":"0.50.0"}}`
	doc, out := scrubJSON(t, s, in)
	checks := map[string]any{
		"message/formatted":             "payment with card [creditcard] failed",
		"extra/password":                "[Filtered]",
		"extra/order":                   float64(42),
		"user/ip_address":               nil,
		"request/headers/Authorization": "[Filtered]",
		"request/headers/User-Agent":    "Go-http-client/1.1",
		"request/cookies/0/1":           "[Filtered]",
		"request/cookies/1/1":           "dark",
		"request/url":                   "http://shop/pay",
	}
	for p, want := range checks {
		if v, _ := lookup(doc, p); v != want {
			t.Errorf("%s = %v, want %v", p, v, want)
		}
	}
	if _, ok := lookup(doc, "request/headers/Cookie"); ok {
		t.Error("Cookie header kept")
	}
	for p, want := range map[string]string{
		"message/formatted":             `{"rem":[["@creditcard:replace","s",18,30]],"len":44}`,
		"extra/password":                `{"rem":[["@password:filter","s",0,10]],"len":7}`,
		"user/ip_address":               `{"rem":[["@ip:replace","s",0,4],["@anything:remove","x"]],"len":11}`,
		"request/headers/Authorization": `{"rem":[["@password:filter","s",0,10]],"len":18}`,
		"request/cookies/0/1":           `{"rem":[["@anything:filter","s",0,10]],"len":6}`,
	} {
		if m, _ := metaAt(doc, p, false); !jsonEqual(m, want) {
			t.Errorf("meta %s = %s, want %s", p, mustJSON(m), want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

func TestStringPairListsAreContainers(t *testing.T) {
	s := mustCompile(t, Config{PIIConfig: []byte(`{"applications":{"request.cookies":["@anything:remove"],"$string":["@email"]}}`)})
	doc, out := scrubJSON(t, s, `{"request":{"cookies":"a=b; c=d","query_string":"mail=me@example.com&x=1"}}`)
	if v, ok := lookup(doc, "request/cookies"); !ok || v != nil {
		t.Fatalf("cookies not removed: %s", out)
	}
	if m, _ := metaAt(doc, "request/cookies", false); !jsonEqual(m, `{"rem":[["@anything:remove","x"]]}`) {
		t.Fatalf("meta: %s", out)
	}
	if v, _ := lookup(doc, "request/query_string"); !jsonEqual(v, `[["mail","[email]"],["x","1"]]`) {
		t.Fatalf("query: %s", out)
	}
}

func TestAdvancedRunsBeforeLegacy(t *testing.T) {
	// The advanced config runs first; the legacy pass sees its redactions and
	// does not redact them again. Safe fields only exempt the legacy rules.
	s := mustCompile(t, Config{
		DataScrubbing: &DataScrubbing{ScrubData: true, ScrubDefaults: true, ExcludeFields: []string{"note"}},
		PIIConfig:     []byte(`{"applications":{"$string":["@email:replace"]}}`),
	})
	doc, out := scrubJSON(t, s, `{"extra":{"note":"me@x.org 4111111111111111","other":"me@x.org 4111111111111111"}}`)
	if v, _ := lookup(doc, "extra/note"); v != "[email] 4111111111111111" {
		t.Errorf("note = %v (%s)", v, out)
	}
	if v, _ := lookup(doc, "extra/other"); v != "[email] [Filtered]" {
		t.Errorf("other = %v (%s)", v, out)
	}
	if m, _ := metaAt(doc, "extra/other", false); !jsonEqual(m, `{"rem":[["@email:replace","s",0,7],["@creditcard:filter","s",8,18]],"len":25}`) {
		t.Errorf("meta %s", mustJSON(m))
	}
}
