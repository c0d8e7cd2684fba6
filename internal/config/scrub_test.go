package config

import (
	"strings"
	"testing"
)

func TestPIIConfigJSON(t *testing.T) {
	tests := []struct {
		name, yaml, want, wantErr string
	}{
		{
			name: "absent",
			yaml: "scrub:\n  data_scrubbing:\n    scrub_data: true\n",
			want: "",
		},
		{
			name: "yaml, key order kept",
			yaml: `
scrub:
  pii_config:
    rules:
      zz_custom:
        type: pattern
        pattern: 'secret-\d+'
        redaction:
          method: replace
          text: "[gone]"
      aa_iban:
        type: iban
        redaction: {method: mask}
    applications:
      "$string": [zz_custom, aa_iban]
      "extra.'my field' && !$object": ["@anything:remove"]
`,
			want: `{"rules":{"zz_custom":{"type":"pattern","pattern":"secret-\\d+","redaction":{"method":"replace","text":"[gone]"}},"aa_iban":{"type":"iban","redaction":{"method":"mask"}}},"applications":{"$string":["zz_custom","aa_iban"],"extra.'my field' \u0026\u0026 !$object":["@anything:remove"]}}`,
		},
		{
			name: "inline JSON as copied from Sentry",
			yaml: `
scrub:
  pii_config: {"rules": {"r": {"type": "redact_pair", "keyPattern": "foo"}}, "applications": {"**": ["r"]}, "vars": {"hashKey": null}}
`,
			want: `{"rules":{"r":{"type":"redact_pair","keyPattern":"foo"}},"applications":{"**":["r"]},"vars":{"hashKey":null}}`,
		},
		{
			name: "scalars",
			yaml: "scrub:\n  pii_config:\n    a: [1, -2, 2.5, true, false, ~, \"1\", 0x10, 18446744073709551615]\n",
			want: `{"a":[1,-2,2.5,true,false,null,"1",16,18446744073709551615]}`,
		},
		{
			name: "aliases",
			yaml: "scrub:\n  pii_config:\n    rules:\n      a: &r {type: email}\n      b: *r\n",
			want: `{"rules":{"a":{"type":"email"},"b":{"type":"email"}}}`,
		},
		{
			name:    "duplicate key",
			yaml:    "scrub:\n  pii_config:\n    rules: {}\n    rules: {}\n",
			wantErr: `line 4: key "rules" given twice (first on line 3)`,
		},
		{
			name:    "merge key",
			yaml:    "scrub:\n  pii_config:\n    <<: {a: 1}\n",
			wantErr: "merge keys (<<) are not supported",
		},
		{
			name:    "non-scalar key",
			yaml:    "scrub:\n  pii_config:\n    ? [a]\n    : 1\n",
			wantErr: "a mapping key must be a plain value",
		},
		{
			name:    "nan",
			yaml:    "scrub:\n  pii_config:\n    a: .nan\n",
			wantErr: ".nan has no JSON form",
		},
		{
			name:    "binary",
			yaml:    "scrub:\n  pii_config:\n    a: !!binary aGVsbG8=\n",
			wantErr: "value of type !!binary has no JSON form",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.yaml)
			got, err := c.Scrub.PIIConfigJSON()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				if verr := c.Validate(); verr == nil || !strings.Contains(verr.Error(), tt.wantErr) {
					t.Fatalf("Validate = %v, want it to report %q", verr, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestPIIConfigSelfAlias(t *testing.T) {
	// An alias cycle must end in an error, not a stack overflow.
	c := mustLoad(t, "scrub:\n  pii_config: &a\n    x: *a\n")
	if _, err := c.Scrub.PIIConfigJSON(); err == nil || !strings.Contains(err.Error(), "nested too deeply") {
		t.Fatalf("error = %v", err)
	}
}

func TestDataScrubbingSentryJSON(t *testing.T) {
	c := mustLoad(t, "scrub:\n  data_scrubbing:\n    scrub_data: true\n    scrub_ip_addresses: true\n    sensitive_fields: [iban]\n")
	got, err := c.Scrub.DataScrubbing.SentryJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"scrubData":true,"scrubDefaults":false,"scrubIpAddresses":true,"sensitiveFields":["iban"],"excludeFields":[]}`
	if string(got) != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

func TestPIIConfigAliasBomb(t *testing.T) {
	c := mustLoad(t, `scrub:
  pii_config:
    a: &a [x, x, x, x, x, x, x, x, x, x]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
`)
	if _, err := c.Scrub.PIIConfigJSON(); err == nil || !strings.Contains(err.Error(), "too large once aliases are expanded") {
		t.Fatalf("error = %v", err)
	}
}
