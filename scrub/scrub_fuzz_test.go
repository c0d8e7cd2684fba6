package scrub

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func FuzzSelector(f *testing.F) {
	for _, s := range []string{
		"$string", "extra.**", "a && b || !c", "(a | b) & ~c", "*.cookies.'csrf-token'",
		"extra.'it''s'", "$frame.**.foo.**", "* && foo", "$nope", "((a)", "0.1.2", "**.$array",
		knownIPFields, dataScrubberIgnore,
	} {
		f.Add(s)
	}
	paths := [][]state{
		path("user:user", "object:extra", "array:foo", "string:#0"),
		path("object:extra", "string:a"),
		{{index: -1, vt: mask(vtEvent)}},
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			if _, ok := err.(*SelectorError); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		again, err := ParseSelector(sel.String())
		if err != nil {
			t.Fatalf("display form %q of %q does not parse: %v", sel.String(), s, err)
		}
		// Nested ORs/ANDs print without parentheses (as in Relay), so the
		// structure may flatten; the display form must be stable.
		if again.String() != sel.String() {
			t.Fatalf("display not stable: %q → %q → %q", s, sel.String(), again.String())
		}
		for _, p := range paths {
			for _, pii := range []piiLevel{piiFalse, piiMaybe, piiTrue} {
				sel.matches(p, pii)
			}
		}
	})
}

var fuzzScrubber = func() *Scrubber {
	s, err := Compile(Config{
		DataScrubbing: &DataScrubbing{ScrubData: true, ScrubDefaults: true, ScrubIPAddresses: true},
		PIIConfig:     []byte(`{"applications":{"$string":["@creditcard:mask"],"extra.**":["@email:replace"]}}`),
	})
	if err != nil {
		panic(err)
	}
	return s
}()

var binScrubber = func() *Scrubber {
	s, err := Compile(Config{PIIConfig: []byte(`{"applications":{"$binary":["@ip:hash","@creditcard","@email:mask","@password"]}}`)})
	if err != nil {
		panic(err)
	}
	return s
}()

// FuzzScrub: arbitrary JSON, used as a whole event and as the value of
// `extra`. The scrubber never panics, the output is valid JSON, and under
// `extra` (all pii=true) no credit card number, e-mail address or
// password-like value survives and no sensitive key keeps a value.
func FuzzScrub(f *testing.F) {
	for _, s := range []string{
		`{"password":"x","card":"4571 2345 6789 0111","ok":"fine"}`,
		`[["authorization","Bearer abc"],["x","my_password"]]`,
		`{"a":{"b":[1,2,{"api_key":{"x":1}}]},"mail":"me@example.com"}`,
		`"John 4571234567890111!"`,
		`{"request":{"headers":{"Cookie":"session=abc; x=1"},"cookies":"a=b","query_string":"password=1&a=2"},"user":{"ip_address":"1.2.3.4"}}`,
		`{"_meta":{"extra":{"a":{"":{"rem":[["x","s",0,3]],"len":9}}}},"extra":{"a":"abc 4571234567890111"}}`,
		`{"logentry":{"formatted":"Bearer abc 4111-1111-1111-1111"},"message":"hi"}`,
		`{"contexts":{"x":{"password":"1"},"trace":{"data":{"p":{"password":"x"}}}}}`,
		`{"spans":[{"data":{"gen_ai.prompt":"a@b.cc 4111111111111111"}}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := fuzzScrubber
		out, _, err := s.ScrubEvent(b)
		if err == nil && !json.Valid(out) {
			t.Fatalf("invalid JSON output for %q: %q", b, out)
		}
		// the other item kinds never panic and keep their format
		for _, it := range []Item{{Type: "log"}, {Type: "span"}, {Type: "trace_metric"}, {Type: "replay_event"},
			{Type: "attachment", AttachmentType: "event.view_hierarchy"}} {
			if out, changed, err := s.ScrubItem(it, b); err == nil && changed && !json.Valid(out) {
				t.Fatalf("%s: invalid JSON output for %q: %q", it.Type, b, out)
			}
		}
		rec := append([]byte("{\"segment_id\":0}\n"), b...)
		if out, changed, err := s.ScrubItem(Item{Type: "replay_recording"}, rec); err == nil && changed && !json.Valid(out[bytes.IndexByte(out, '\n')+1:]) {
			t.Fatalf("recording: invalid JSON output for %q", b)
		}
		bin, changed := scrubBytes(binScrubber.advanced, "f.txt", b)
		if changed && len(bin) != len(b) {
			t.Fatalf("attachment length changed for %q", b)
		}
		if !json.Valid(b) {
			return
		}
		ev := append(append([]byte(`{"extra":`), b...), '}')
		out, _, err = s.ScrubEvent(ev)
		if err != nil {
			return // nesting too deep
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON output for %q: %q", ev, out)
		}
		var doc map[string]any
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber() // numbers beyond float64 are valid JSON
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		checkScrubbed(t, doc["extra"], "", false, 0, out)
	})
}

func checkScrubbed(t *testing.T, v any, key string, keyed bool, depth int, out []byte) {
	t.Helper()
	sensitiveKey := keyed && key != "" && (rePassword.MatchString(key) || reToken.MatchString(key))
	switch x := v.(type) {
	case nil, bool:
	case string:
		if skipString(x) {
			return
		}
		if sensitiveKey && x != "[Filtered]" {
			t.Fatalf("value %q under sensitive key %q survived: %s", x, key, out)
		}
		if reCreditCard.MatchString(x) {
			t.Fatalf("credit card survived in %q: %s", x, out)
		}
		// extra.** selects everything below extra, not extra itself
		if loc := reEmail.FindStringIndex(x); loc != nil && depth > 0 {
			t.Fatalf("e-mail survived in %q: %s", x, out)
		}
		if rePassword.MatchString(x) && x != "[Filtered]" {
			t.Fatalf("password-like value survived: %q: %s", x, out)
		}
	case json.Number:
		if sensitiveKey {
			t.Fatalf("number under sensitive key %q survived: %s", key, out)
		}
	case []any:
		if sensitiveKey {
			t.Fatalf("array under sensitive key %q survived: %s", key, out)
		}
		for _, e := range x {
			if p, ok := e.([]any); ok && len(p) == 2 {
				if k, ok := p[0].(string); ok {
					// a pair: the value was first processed keyed by p[0]
					if rePassword.MatchString(k) || reToken.MatchString(k) {
						checkScrubbed(t, p[1], k, true, depth+2, out)
						continue
					}
				}
			}
			checkScrubbed(t, e, "", false, depth+1, out)
		}
	case map[string]any:
		if sensitiveKey {
			t.Fatalf("object under sensitive key %q survived: %s", key, out)
		}
		for k, e := range x {
			checkScrubbed(t, e, k, true, depth+1, out)
		}
	}
}

// FuzzFastMatchers: the hand-written matchers and prefilters agree with the
// regexes they stand in for.
func FuzzFastMatchers(f *testing.F) {
	for _, s := range []string{"password", "x-api-key", "TOKEN:", "token x=", "otp", "Two-Factor", "not_a_two_factor",
		"author", "AUTHORIZATION", "my tokenized=1", "::1 ::1", "a ::1\n[fe80::1%eth0]", "x:y: 2001:db8::1 ab:cd:ef:01", "1.2.3.4:80 ::ffff:1.2.3.4", "prIvate_Key", "\u212a", "Bearer x", "DE89370400440532013000", "ORD-123456"} {
		f.Add(s)
	}
	user := []string{"ORD-[0-9]{6,}", "(?i)cookie|secret[-_]?key", "sk_(live|test)_[A-Za-z0-9]{16,}", "(?i)(ab)c", "foo", "x+y"}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isPassword(s), rePassword.MatchString(s); got != want {
			t.Fatalf("isPassword(%q) = %v, regex says %v", s, got, want)
		}
		if got, want := isToken(s), reToken.MatchString(s); got != want {
			t.Fatalf("isToken(%q) = %v, regex says %v", s, got, want)
		}
		for _, c := range []struct {
			re  func(string) bool
			pre func(string) bool
			n   string
		}{
			{reIPv4.MatchString, preIPv4, "ipv4"}, {reIPv6.MatchString, preIPv6, "ipv6"},
			{rePEMKey.MatchString, prePEM, "pem"}, {reURLAuth.MatchString, preURLAuth, "urlauth"},
			{reURLAuthOld.MatchString, preURLAuth, "urlauth-legacy"}, {reBearer.MatchString, preBearer, "bearer"},
			{reToken.MatchString, preToken, "token"},
		} {
			if c.re(s) && !c.pre(s) {
				t.Fatalf("prefilter %s rejects %q which the regex matches", c.n, s)
			}
		}
		// findIPv6 windows long strings; pad the input past its threshold.
		for _, long := range []string{s, strings.Repeat(" ", 512) + s, s + strings.Repeat(" x", 300), strings.Repeat(s+" ", 1+512/(len(s)+1))} {
			got, want := findIPv6(long), reIPv6.FindAllStringSubmatchIndex(long, -1)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("findIPv6(%q) = %v, regex %v", long, got, want)
			}
		}
		var ft features
		computeFeatures(&ft, s)
		for _, c := range []struct {
			re   func(string) bool
			feat func(*features) bool
			n    string
		}{
			{reCreditCard.MatchString, fCreditCard, "creditcard"}, {reIBAN.MatchString, fIBAN, "iban"},
			{reIPv4.MatchString, fIPv4, "ipv4"}, {reIPv6.MatchString, fIPv6, "ipv6"},
			{reEmail.MatchString, fEmail, "email"}, {reUSSSN.MatchString, fUSSSN, "usssn"},
			{reIMEI.MatchString, fIMEI, "imei"}, {reMAC.MatchString, fMAC, "mac"},
			{reUUID.MatchString, fUUID, "uuid"}, {rePEMKey.MatchString, fPEM, "pem"},
			{reURLAuth.MatchString, fURLAuth, "urlauth"}, {reURLAuthOld.MatchString, fURLAuth, "urlauth-legacy"},
			{reUserPath.MatchString, fUserPath, "userpath"}, {reBearer.MatchString, fBearer, "bearer"},
		} {
			if c.re(s) && !c.feat(&ft) {
				t.Fatalf("feature gate %s rejects %q which the regex matches", c.n, s)
			}
		}
		for _, p := range user {
			pre := literalPrefilter(p)
			re, _ := compileUserRegex(p)
			if pre != nil && re.MatchString(s) && !pre(s) {
				t.Fatalf("literal prefilter of %q rejects %q", p, s)
			}
		}
	})
}
