package scrub

import (
	"strings"
	"testing"
)

func TestParseSelectorDisplay(t *testing.T) {
	cases := []struct{ in, want string }{
		{"foo", "foo"},
		{"$string", "$string"},
		{"$bool", "$boolean"},
		{"$list", "$array"},
		{"$exception.value", "$error.value"},
		{"$request.headers.user-agent", "$http.headers.user-agent"},
		{"$stacktrace", "$stack"},
		{"$frame.vars", "$frame.vars"},
		{"extra.**", "extra.**"},
		{"**.0", "**.0"},
		{"*.cookies.sentrysid", "*.cookies.sentrysid"},
		{"extra.'special key'", "extra.'special key'"},
		{"extra.'it''s'", "extra.'it''s'"},
		{"'foo'", "foo"},
		{"a.'b.c'", "a.'b.c'"},
		{"a | b", "a || b"},
		{"a & b", "a && b"},
		{"a && b || c", "a && b || c"},
		{"a && (b || c)", "a && (b || c)"},
		{"~a", "!a"},
		{"!(!a)", "!(!a)"},
		{"!a || !b", "!a || !b"},
		{"!(a && !b)", "!(a && !b)"},
		{"  a   &&   b  ", "a && b"},
		{"($string || $number || $array || $object) && !(debug_meta.** || $frame.filename)", "($string || $number || $array || $object) && !(debug_meta.** || $frame.filename)"},
		{"freeform", "$string"},
		{"email", "$string"},
		{"sensitive", "$string"},
		{"text", "$string"},
		{"databag", "$object"},
		{"container", "$object"},
		{"$log.body", "$log.body"},
		{"$trace_metric", "$trace_metric"},
		{"$sdk.client_ip", "$sdk.client_ip"},
		{"attributes.'client.address'", "attributes.'client.address'"},
		{"0.1", "0.1"},
		{"_a-b", "_a-b"},
	}
	for _, c := range cases {
		sel, err := ParseSelector(c.in)
		if err != nil {
			t.Errorf("ParseSelector(%q): %v", c.in, err)
			continue
		}
		if got := sel.String(); got != c.want {
			t.Errorf("ParseSelector(%q).String() = %q, want %q", c.in, got, c.want)
		}
		// the display form parses back to the same selector
		again, err := ParseSelector(sel.String())
		if err != nil || compareSelectors(sel, again) != 0 {
			t.Errorf("round trip of %q failed: %v", c.in, err)
		}
	}
}

func TestParseSelectorErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", `invalid selector "": expected a path item but the selector ended at offset 0`},
		{"* && foo", `invalid selector "* && foo": wildcard must be part of a path at offset 0`},
		{"*", `invalid selector "*": wildcard must be part of a path at offset 0`},
		{"$frame.**.foo.**", `invalid selector "$frame.**.foo.**": deep wildcard used more than once`},
		{"$nope", `invalid selector "$nope": unknown value type $nope at offset 0`},
		{"$", `invalid selector "$": expected a value type name after '$' at offset 0`},
		{"foo.", `invalid selector "foo.": expected a path item but the selector ended at offset 4`},
		{"foo bar", `invalid selector "foo bar": unexpected "bar" at offset 4`},
		{"(foo", `invalid selector "(foo": missing ')' at offset 4`},
		{"foo)", `invalid selector "foo)": unexpected ")" at offset 3`},
		{"'unterminated", `invalid selector "'unterminated": unterminated quoted key at offset 0`},
		{"''", `invalid selector "''": empty quoted key at offset 0`},
		{"a && ", `invalid selector "a && ": expected a path item but the selector ended at offset 5`},
		{"a..b", `invalid selector "a..b": unexpected ".b", expected a key, index, '*', '**', '$type' or '(' at offset 2`},
		{"2abc", `invalid selector "2abc": unexpected "abc" at offset 1`},
		{"a\tb", `invalid selector "a\tb": unexpected "\tb" at offset 1`},
		{"$String", `invalid selector "$String": unknown value type $String at offset 0`},
	}
	for _, c := range cases {
		_, err := ParseSelector(c.in)
		if err == nil {
			t.Errorf("ParseSelector(%q): expected an error", c.in)
			continue
		}
		if err.Error() != c.want {
			t.Errorf("ParseSelector(%q) error\n got  %s\n want %s", c.in, err, c.want)
		}
	}
}

// path builds states root → leaf from "type:key" segments; key "#n" is an
// array index.
func path(segs ...string) []state {
	out := []state{{index: -1, vt: mask(vtEvent)}}
	for _, s := range segs {
		ty, key, _ := strings.Cut(s, ":")
		st := state{index: -1}
		if strings.HasPrefix(key, "#") {
			st.index = int(key[1] - '0')
		} else {
			st.key = key
		}
		for _, t := range strings.Split(ty, "+") {
			if t != "" {
				st.vt |= mask(vtByName[t])
			}
		}
		out = append(out, st)
	}
	return withAncestors(out)
}

func TestSelectorMatching(t *testing.T) {
	// relay-pii selector.rs tests, doc §6.3
	foo0 := path("user:user", "object:extra", "array:foo", "string:#0")
	userExtra := path("user:user", "object:extra")
	userExtraFoo := path("user:user", "object:extra", "array:foo")
	cases := []struct {
		sel   string
		p     []state
		pii   piiLevel
		match bool
	}{
		{"$user.extra.foo.**", foo0, piiTrue, true},
		{"$user.**", foo0, piiTrue, true},
		{"$event.**", foo0, piiTrue, true},
		{"$user.**.0", foo0, piiTrue, true},
		{"$user.$object.**.0", foo0, piiTrue, true},
		{"(**.0 | absolutebogus)", foo0, piiTrue, true},
		{"(~$object)", foo0, piiTrue, true},
		{"($object.** & (~absolutebogus))", foo0, piiTrue, true},
		{"$user.extra.foo.*", foo0, piiTrue, true},
		{"$user.extra.foo.0", foo0, piiTrue, true},
		{"$user.extra.foo.*", foo0, piiMaybe, true},
		{"$user.extra.foo.0", foo0, piiMaybe, true},
		{"$user.extra.foo.**", foo0, piiMaybe, false},
		{"$user.extra.foo.1", foo0, piiTrue, false},
		{"$user.extra.bar.**", foo0, piiTrue, false},
		{"$user.**.1", foo0, piiTrue, false},
		{"($object | absolutebogus)", foo0, piiTrue, false},
		{"(~$object.**)", foo0, piiTrue, false},
		{"$string", foo0, piiMaybe, false},
		{"$string", foo0, piiFalse, false},
		{"user.extra", userExtra, piiMaybe, true},
		{"$user.extra", userExtra, piiMaybe, true},
		{"(** || user.*) && !(foo.bar.baz || a.b.c)", userExtra, piiMaybe, true},
		{"($array & $object.*)", userExtraFoo, piiTrue, true},
		{"**.$array", userExtraFoo, piiTrue, true},
		{"($object & $object.*)", userExtraFoo, piiTrue, false},
		{"EXTRA.FOO", userExtraFoo, piiTrue, true}, // keys compare case-insensitively
		{"extra.foo.0.x", foo0, piiTrue, false},    // deeper than the path
		{"$frame.vars.**", path("frame:#0", "object:vars"), piiTrue, false},
		{"$frame.vars.**", path("frame:#0", "object:vars", "string:a"), piiTrue, true},
		{"$user.extra", path("user:user", "object:extra"), piiMaybe, true},
		{"$object.extra", path("user:user", "object:extra"), piiMaybe, false},
		{"$log.body", withAncestors([]state{{index: -1}, {index: -1, vt: mask(vtOurLog)}, {key: "body", index: -1, vt: mask(vtString)}}), piiMaybe, true},
		{"$log.body", withAncestors([]state{{index: -1, vt: mask(vtOurLog)}, {key: "body", index: -1, vt: mask(vtString)}}), piiMaybe, false},
		{"EXTRA.**", foo0, piiTrue, true},
	}
	for _, c := range cases {
		sel, err := ParseSelector(c.sel)
		if err != nil {
			t.Fatalf("%s: %v", c.sel, err)
		}
		if got := sel.matches(c.p, c.pii); got != c.match {
			t.Errorf("%s on %v (pii %d): got %v, want %v", c.sel, c.p, c.pii, got, c.match)
		}
	}
}

func TestSelectorOrder(t *testing.T) {
	// doc §5.4: And < Or < Not < Path; Type < Index < Key < * < **.
	ordered := []string{
		"a && b", "a || b", "!a", "$string", "$number", "$object", "$user", "0", "1", "a", "b", "*.a", "**",
	}
	for i := 1; i < len(ordered); i++ {
		a, _ := ParseSelector(ordered[i-1])
		b, _ := ParseSelector(ordered[i])
		if compareSelectors(a, b) >= 0 {
			t.Errorf("%q should sort before %q", ordered[i-1], ordered[i])
		}
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct{ cfg, want string }{
		{`{"applications":{"$nope":["@ip"]}}`, `scrub: piiConfig: applications: invalid selector "$nope": unknown value type $nope at offset 0`},
		{`{"applications":{"$string":"@ip"}}`, `scrub: piiConfig: applications["$string"]: expected an array of rule ids`},
		{`{"rules":{"r":{"type":"pattern"}}}`, "scrub: piiConfig: rule \"r\": missing field `pattern`"},
		{`{"rules":{"r":{"pattern":"x"}}}`, "scrub: piiConfig: rule \"r\": missing field `type`"},
		{`{"rules":{"r":{"type":"redact_pair"}}}`, "scrub: piiConfig: rule \"r\": missing field `keyPattern`"},
		{`[1]`, `scrub: piiConfig: expected an object`},
		{`{`, `scrub: piiConfig: invalid JSON at offset 1: expected object key`},
	}
	for _, c := range cases {
		_, err := Compile(Config{PIIConfig: []byte(c.cfg)})
		if err == nil || err.Error() != c.want {
			t.Errorf("Compile(%s): got %v, want %s", c.cfg, err, c.want)
		}
	}
	// an invalid user regex is accepted and does nothing, as in Relay
	s, err := Compile(Config{PIIConfig: []byte(`{"rules":{"r":{"type":"pattern","pattern":"(unclosed"}},"applications":{"$string":["r"]}}`)})
	if err != nil {
		t.Fatal(err)
	}
	in := []byte(`{"extra":{"a":"(unclosed"}}`)
	if _, changed, err := s.ScrubEvent(in); changed || err != nil {
		t.Fatalf("changed=%v err=%v", changed, err)
	}
}
