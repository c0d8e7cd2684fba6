package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

const scrubConfigYAML = `scrub:
  data_scrubbing:
    scrub_data: true
    scrub_defaults: true
    sensitive_fields: [my_custom_field]
  pii_config:
    rules:
      iban_mask:
        type: iban
        redaction: {method: mask}
    applications:
      "$string": [iban_mask]
`

const scrubEvent = `{"message":"iban DE89370400440532013000","extra":{"password":"hunter2","my_custom_field":"x","fine":"ok"}}`

func TestScrubCommand(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "config.yml"), scrubConfigYAML)
	event := filepath.Join(dir, "event.json")
	writeFile(t, event, scrubEvent)

	for name, r := range map[string]result{
		"stdin":      run(t, runOpts{stdin: scrubEvent}, "-c", dir, "scrub"),
		"stdin dash": run(t, runOpts{stdin: scrubEvent}, "-c", dir, "scrub", "-", "--compact"),
		"file":       run(t, runOpts{}, "-c", dir, "scrub", event),
	} {
		t.Run(name, func(t *testing.T) {
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			// A scrubbed top-level message string comes back as a LogEntry
			// object, as Sentry normalises it, so its _meta can point at
			// message.formatted.
			var out struct {
				Message struct {
					Formatted string `json:"formatted"`
				} `json:"message"`
				Extra map[string]string `json:"extra"`
				Meta  map[string]any    `json:"_meta"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
			}
			if out.Message.Formatted != "iban **********************" {
				t.Errorf("message %q", out.Message.Formatted)
			}
			if out.Extra["password"] != "[Filtered]" || out.Extra["my_custom_field"] != "[Filtered]" || out.Extra["fine"] != "ok" {
				t.Errorf("extra %v", out.Extra)
			}
			for _, rule := range []string{"iban_mask", "@password:filter", "strip-fields"} {
				if !strings.Contains(r.stdout, `"`+rule+`"`) {
					t.Errorf("_meta does not name rule %s:\n%s", rule, r.stdout)
				}
			}
		})
	}
}

func TestScrubCommandNothingConfigured(t *testing.T) {
	r := run(t, runOpts{stdin: scrubEvent}, "-c", t.TempDir(), "scrub", "--compact")
	if r.code != 0 || strings.TrimSpace(r.stdout) != scrubEvent {
		t.Fatalf("%+v", r)
	}
	if !strings.Contains(r.stderr, "configures no scrubbing") {
		t.Fatalf("no note: %q", r.stderr)
	}
}

func TestScrubCommandErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "config.yml"), scrubConfigYAML)
	bad := t.TempDir()
	writeFile(t, filepath.Join(bad, "config.yml"), "scrub:\n  pii_config:\n    applications:\n      \"$string &&\": [\"@ip\"]\n")
	for _, tt := range []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"not json", "{nope", []string{"-c", dir, "scrub"}, 1, "standard input is not valid JSON"},
		{"not an object", "[1]", []string{"-c", dir, "scrub"}, 1, "standard input: scrub: payload is not a JSON object"},
		{"missing file", "", []string{"-c", dir, "scrub", filepath.Join(dir, "nope.json")}, 1, "nope.json: no such file or directory"},
		{"two files", "", []string{"-c", dir, "scrub", "a", "b"}, 2, "takes one FILE (or -), got 2 arguments"},
		{"bad type", scrubEvent, []string{"-c", dir, "scrub", "--type", "session"}, 2, `--type: "session" is not one of`},
		{"bad pii config", scrubEvent, []string{"-c", bad, "scrub"}, 1, filepath.Join(bad, "config.yml") + ":2: scrub.pii_config: scrub: piiConfig: applications: invalid selector"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, runOpts{stdin: tt.stdin}, tt.args...)
			oneErrorLine(t, r, tt.code, tt.want)
		})
	}
}

// --key scrubs with the key's project settings, which replace the scrub
// section, as the worker does; other keys get the scrub section.
func TestScrubCommandProjectKey(t *testing.T) {
	const key, other, broken = "0123456789abcdef0123456789abcdef", "ffffffffffffffffffffffffffffffff", "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "config.yml"), scrubConfigYAML)
	writeFile(t, filepath.Join(dir, "projects", "42.json"), `{"publicKeys":[{"publicKey":"`+key+`"}],
		"config":{"piiConfig":{"applications":{"extra.fine":["@anything:remove"]}}}}`)
	writeFile(t, filepath.Join(dir, "projects", "43.json"), `{"publicKeys":[{"publicKey":"`+broken+`"}],
		"config":{"piiConfig":{"applications":{"extra.fine":"@anything:remove"}}}}`)

	r := run(t, runOpts{stdin: scrubEvent}, "-c", dir, "scrub", "--key", key, "--compact")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, `"fine":null`) || !strings.Contains(r.stdout, `"password":"hunter2"`) {
		t.Errorf("not scrubbed by the project's settings alone:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, filepath.Join("projects", "42.json")) {
		t.Errorf("the note does not name the project file: %q", r.stderr)
	}

	r = run(t, runOpts{stdin: scrubEvent}, "-c", dir, "scrub", "--key", other, "--compact")
	if r.code != 0 || !strings.Contains(r.stdout, `"password":"[Filtered]"`) || !strings.Contains(r.stdout, `"fine":"ok"`) {
		t.Errorf("a key without a project file did not get the scrub section: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = run(t, runOpts{stdin: scrubEvent}, "-c", dir, "scrub", "--key", broken)
	oneErrorLine(t, r, 1, "--key: project 43 (")
}
