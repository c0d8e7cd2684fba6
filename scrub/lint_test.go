package scrub

import (
	"slices"
	"testing"
)

func TestLint(t *testing.T) {
	for _, tc := range []struct {
		name string
		pii  string
		want []string
	}{
		{"none", ``, nil},
		{"valid", `{"rules":{"r":{"type":"pattern","pattern":"\\d+","redaction":{"method":"remove"}}},"applications":{"$string":["r","@email:replace"]}}`, nil},
		{
			"everything that does nothing",
			`{"rules":{
				"bad_re":{"type":"pattern","pattern":"(unclosed"},
				"bad_key":{"type":"redact_pair","keyPattern":"[x"},
				"odd":{"type":"emial"},
				"many":{"type":"multiple","rules":["bad_re","nope"]},
				"al":{"type":"alias","rule":"@emial"}},
			  "applications":{"$string":["@email:replace","@emial:replace"],"extra.a":["many"]}}`,
			[]string{
				`rules["al"]: rule "@emial" does not exist (neither in rules nor built in); nothing is applied for it`,
				`rules["bad_key"]: keyPattern "[x" does not compile (error parsing regexp: missing closing ]: ` + "`[x`" + `); the rule does nothing`,
				`rules["bad_re"]: pattern "(unclosed" does not compile (error parsing regexp: missing closing ): ` + "`(unclosed`" + `); the rule does nothing`,
				`rules["many"]: rule "nope" does not exist (neither in rules nor built in); nothing is applied for it`,
				`rules["odd"]: unknown type "emial"; the rule does nothing`,
				`applications["$string"]: rule "@emial:replace" does not exist (neither in rules nor built in); nothing is applied for it`,
			},
		},
	} {
		got, err := Lint([]byte(tc.pii))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
	if _, err := Lint([]byte(`{"rules":[]}`)); err == nil {
		t.Error("a piiConfig that does not parse: no error")
	}
}
