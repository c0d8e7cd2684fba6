package envelope

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// jsonDepth returns the deepest nesting of objects/arrays in a valid JSON text.
func jsonDepth(b []byte) int {
	depth, max, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString && c == '"':
			inString = false
		case inString:
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				max = depth
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return max
}

// checkScanner asserts that the scanner accepts exactly what serde_json accepts as one JSON value
// surrounded by whitespace: valid JSON (encoding/json's view) that is valid UTF-8 and nested at
// most 127 deep.
func checkScanner(t *testing.T, in []byte) {
	t.Helper()
	i := skipSpace(in, 0)
	end, err := scanValue(in, i, 0)
	ok := err == nil && skipSpace(in, end) == len(in)
	want := json.Valid(in) && utf8.Valid(in) && jsonDepth(in) <= maxDepth
	if ok != want {
		t.Fatalf("scanner accepts %q = %v (err %v), reference says %v", in, ok, err, want)
	}
	if err != nil && (err.pos < 0 || err.pos > len(in)) {
		t.Fatalf("error position %d outside the input", err.pos)
	}
}

func TestScanner(t *testing.T) {
	for _, in := range []string{
		`{}`, `[]`, `""`, `0`, `-0`, `1.5e-3`, `-12.0E+7`, `true`, `false`, `null`, ` {"a" : [1, 2, {"b":null}] } `,
		`"\u00e9\n\"\\\/\b\f\r\t"`, `"é€😀"`, `{"a":"b","c":{"d":[true,false]}}`,
		// invalid
		``, ` `, `{`, `}`, `[`, `{"a"}`, `{"a":}`, `{a:1}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{"a":1 "b":2}`, `01`, `1.`,
		`.5`, `1e`, `1e+`, `-`, `--1`, `+1`, `tru`, `nul`, `falsey`, `"abc`, `"\x"`, `"\u12"`, `"\u12g4"`, "\"a\x01\"",
		"\"\xff\"", "\"\xed\xa0\x80\"", `NaN`, `Infinity`, `{"a":1}}`, `[1]]`, `"a" "b"`, `{"a":[}`, "\"\xc3\"",
		`{"":0}`, `[[[]]]`,
		`[` + strings.Repeat("[", 126) + strings.Repeat("]", 126) + `]`,
		`[` + strings.Repeat("[", 127) + strings.Repeat("]", 127) + `]`,
	} {
		checkScanner(t, []byte(in))
	}
}

func TestObjIter(t *testing.T) {
	in := []byte(` { "a" : 1 , "b\u0063":{"x":[1,2]}, "":"e" ,"d":null}`)
	it := objIter{b: in}
	if !it.open(1) {
		t.Fatal(it.err)
	}
	var keys, vals []string
	for it.next() {
		keys = append(keys, it.keyString())
		vals = append(vals, string(in[it.valStart:it.valEnd]))
	}
	if it.err != nil {
		t.Fatal(it.err.msg)
	}
	if strings.Join(keys, "|") != "a|bc||d" || strings.Join(vals, "|") != `1|{"x":[1,2]}|"e"|null` {
		t.Errorf("keys %q vals %q", keys, vals)
	}
	if it.end != len(in) {
		t.Errorf("end %d, want %d", it.end, len(in))
	}
}

func TestParseU32(t *testing.T) {
	for in, want := range map[string]uint32{"0": 0, "7": 7, "4294967295": 4294967295, "-0": 0} {
		if got, msg := parseU32([]byte(in)); msg != "" || got != want {
			t.Errorf("parseU32(%s) = %d, %q", in, got, msg)
		}
	}
	for _, in := range []string{"4294967296", "-1", "1.0", "1e3", `"1"`, "null", "true", "[]", "99999999999999999999999"} {
		if _, msg := parseU32([]byte(in)); msg == "" {
			t.Errorf("parseU32(%s) accepted", in)
		}
	}
}
