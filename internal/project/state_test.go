package project

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const key = "a94ae32be2584e0bbd7a4cbb95971fee"
	tests := []struct {
		name    string
		doc     string
		wantErr string // substring; "" = parses
		check   func(t *testing.T, s *State)
	}{
		{"minimal static file", `{"publicKeys":[{"publicKey":"` + key + `","isEnabled":true}],"config":{"allowedDomains":["*"]}}`, "",
			func(t *testing.T, s *State) {
				if len(s.PublicKeys) != 1 || s.PublicKeys[0].PublicKey != key || !s.PublicKeys[0].Enabled() {
					t.Errorf("keys = %+v", s.PublicKeys)
				}
				if s.ProjectID != 0 || s.Disabled {
					t.Errorf("projectId %d disabled %v", s.ProjectID, s.Disabled)
				}
			}},
		{"full state, unknown fields kept", `{"projectId":42,"slug":"web","rev":"r1","lastChange":"2026-11-01T10:00:00Z","organizationId":7,
			"publicKeys":[{"publicKey":"` + key + `","numericId":9}],"futureField":{"x":1},
			"config":{"allowedDomains":["example.com"],"quotas":[{"id":"q"}],"piiConfig":{"applications":{"$string":["@ip"]}},
			"datascrubbingSettings":{"scrubData":true},"filterSettings":{"localhost":{"isEnabled":true}}}}`, "",
			func(t *testing.T, s *State) {
				if s.ProjectID != 42 || s.Slug != "web" || s.Rev != "r1" || s.OrganizationID != 7 || s.LastChange == nil {
					t.Errorf("state = %+v", s)
				}
				if s.PublicKeys[0].NumericID != 9 || !s.PublicKeys[0].Enabled() {
					t.Errorf("key = %+v", s.PublicKeys[0])
				}
				c := s.Config
				if len(c.AllowedDomains) != 1 || c.AllowedDomains[0] != "example.com" || c.PIIConfig == nil || c.DataScrubbingSettings == nil || c.FilterSettings == nil {
					t.Errorf("config = %+v", c)
				}
				if !strings.Contains(string(s.Raw), `"futureField"`) || !strings.Contains(string(c.Raw), `"quotas"`) {
					t.Errorf("raw JSON lost unknown fields: %s / %s", s.Raw, c.Raw)
				}
			}},
		{"allowedDomains absent means all", `{"publicKeys":[],"config":{}}`, "",
			func(t *testing.T, s *State) {
				if len(s.Config.AllowedDomains) != 1 || s.Config.AllowedDomains[0] != "*" {
					t.Errorf("allowedDomains = %q", s.Config.AllowedDomains)
				}
			}},
		{"no config at all means all domains", `{"disabled":true}`, "",
			func(t *testing.T, s *State) {
				if !s.Disabled || len(s.Config.AllowedDomains) != 1 {
					t.Errorf("state = %+v", s)
				}
			}},
		{"allowedDomains empty rejects all", `{"config":{"allowedDomains":[]}}`, "",
			func(t *testing.T, s *State) {
				if s.Config.AllowedDomains == nil || len(s.Config.AllowedDomains) != 0 {
					t.Errorf("allowedDomains = %#v", s.Config.AllowedDomains)
				}
			}},
		{"null scrubbing settings are none", `{"config":{"piiConfig":null,"datascrubbingSettings":null}}`, "",
			func(t *testing.T, s *State) {
				if s.Config.PIIConfig != nil || s.Config.DataScrubbingSettings != nil {
					t.Errorf("config = %+v", s.Config)
				}
			}},
		{"disabled key", `{"publicKeys":[{"publicKey":"` + key + `","isEnabled":false}]}`, "",
			func(t *testing.T, s *State) {
				if s.PublicKeys[0].Enabled() {
					t.Error("isEnabled:false reads as enabled")
				}
			}},
		{"empty", "  \n", "empty document", nil},
		{"not JSON", `{"publicKeys":`, "not valid JSON", nil},
		{"not an object", `[1,2]`, "the document: expected an object, got a JSON array", nil},
		{"projectId a string", `{"projectId":"42"}`, "projectId: expected a number, got a JSON string", nil},
		{"allowedDomains a string", `{"config":{"allowedDomains":"*"}}`, "config.allowedDomains: expected a list, got a JSON string", nil},
		{"disabled a string", `{"disabled":"yes"}`, "disabled: expected true or false", nil},
		{"short key", `{"publicKeys":[{"publicKey":"abc"}]}`, `publicKeys[0].publicKey: "abc" is not a 32-character DSN key`, nil},
		{"too large", `{"slug":"` + strings.Repeat("x", MaxStateSize) + `"}`, "more than the", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.doc))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, s)
		})
	}
}

func TestLooseKeys(t *testing.T) {
	const k1, k2 = "a94ae32be2584e0bbd7a4cbb95971fee", "b94ae32be2584e0bbd7a4cbb95971fee"
	got := looseKeys([]byte(`{"projectId":"wrong","publicKeys":[{"publicKey":"` + k1 + `"},{"publicKey":5},{"publicKey":"` + k2 + `"}],"config":7}`))
	if len(got) != 2 || got[0] != k1 || got[1] != k2 {
		t.Errorf("looseKeys = %q", got)
	}
	if got := looseKeys([]byte(`{"publicKeys":[`)); got != nil {
		t.Errorf("looseKeys of broken JSON = %q", got)
	}
}
