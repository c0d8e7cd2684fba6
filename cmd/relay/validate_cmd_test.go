package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/credentials"
)

const (
	keyA = "a94ae32be2584e0bbd7a4cbb95971fee"
	keyB = "b94ae32be2584e0bbd7a4cbb95971fee"
)

// A pii_config whose pattern rule has no pattern: it does not compile.
const badPIIConfig = `scrub:
  pii_config:
    rules:
      broken:
        type: pattern
        redaction:
          method: remove
    applications:
      "$string": ["broken"]
`

func TestConfigValidate(t *testing.T) {
	type file struct{ name, content string }
	proxy := file{"config.yml", "relay:\n  mode: proxy\n"}
	goodProject := file{"projects/42.json", `{"projectId": 42, "publicKeys": [{"publicKey": "` + keyA + `"}]}`}
	for _, tc := range []struct {
		name      string
		files     []file
		withCreds bool
		env       map[string]string
		// want: one entry per expected problem line, each matched by substrings in order
		// of appearance; nil: valid.
		want [][]string
	}{
		{name: "valid proxy folder with a project", files: []file{proxy, goodProject}},
		{name: "empty folder in proxy mode from the environment", env: map[string]string{"RELAY_MODE": "proxy"}},
		{name: "managed with credentials", withCreds: true},
		{
			name: "managed without credentials",
			want: [][]string{{"credentials.json", "managed mode needs credentials"}},
		},
		{
			name:  "every config.yml problem, with lines",
			files: []file{{"config.yml", "relay:\n  mode: proxy\n  prot: 3000\nhttp:\n  encoding: lzma\n"}},
			want:  [][]string{{"config.yml:3: relay.prot: unknown key", `did you mean "port"`}},
		},
		{
			name:  "meaning problems are listed together",
			files: []file{{"config.yml", "relay:\n  mode: proxy\n  port: 70000\nhttp:\n  encoding: lzma\n"}},
			want: [][]string{
				{"config.yml:3: relay.port:", "not a port number"},
				{"config.yml:5: http.encoding:", `"lzma" is not one of`},
			},
		},
		{
			name:  "scrub rule that does not compile",
			files: []file{{"config.yml", "relay:\n  mode: proxy\n" + badPIIConfig}},
			want:  [][]string{{"config.yml:4: scrub.pii_config:", "broken"}},
		},
		{
			// Sentry Relay accepts these and the rule does nothing; the relay runs with
			// them, validate names them.
			name: "scrub rules that do nothing",
			files: []file{{"config.yml", "relay:\n  mode: proxy\nscrub:\n  pii_config:\n    rules:\n      r:\n        type: pattern\n        pattern: \"(unclosed\"\n    applications:\n      $string: [\"r\", \"@emial:replace\"]\n"},
				{"projects/42.json", "{\"projectId\": 42, \"publicKeys\": [{\"publicKey\": \"" + keyA + "\"}],\n \"config\": {\"piiConfig\": {\"applications\": {\"$string\": [\"@ibna\"]}}}}"}},
			want: [][]string{
				{"config.yml:4: scrub.pii_config:", `rules["r"]: pattern "(unclosed" does not compile`},
				{"config.yml:4: scrub.pii_config:", `rule "@emial:replace" does not exist`},
				{"projects/42.json:2: config.piiConfig:", `rule "@ibna" does not exist`},
			},
		},
		{
			name:  "broken credentials.json",
			files: []file{proxy, {"credentials.json", `{"secret_key": 1}`}},
			want:  [][]string{{"/credentials.json: "}},
		},
		{
			name: "project file problems, each named",
			files: []file{
				proxy,
				goodProject,
				{"projects/43.json", "{\n  \"projectId\": 43,\n  \"publicKeys\": [{\"publicKey\": \"" + keyA + "\"}]\n}"},
				{"projects/44.json", "{\n  \"projectId\": \"x\"\n}"},
				{"projects/45.json", "{\n  \"projectId\": 45,\n  \"publicKeys\": [{\"publicKey\": \"" + keyB + "\"}],\n  \"config\": {\n    \"piiConfig\": {\"rules\": {\"r\": {\"type\": \"pattern\", \"redaction\": {\"method\": \"remove\"}}}, \"applications\": {\"$string\": [\"r\"]}}\n  }\n}"},
				{"projects/46.json", `{"projectId": 46, "publicKeys": []}`},
				{"projects/no-id.json", `{"publicKeys": [{"publicKey": "c94ae32be2584e0bbd7a4cbb95971fee"}]}`},
				{"projects/47.json", "{\n  \"projectId\": 47,\n  \"publicKeys\": [{\"publicKey\": \"d94ae32be2584e0bbd7a4cbb95971fee\"}],\n  \"config\": {\"filterSettings\": {\"generic\": 3}}\n}"},
				{"projects/README.txt", "not a project file"},
			},
			want: [][]string{
				{"projects/43.json:3: publicKeys[0].publicKey:", keyA, "projects/42.json"},
				{"projects/44.json:2:", "projectId"},
				{"projects/45.json:5:", "config.piiConfig", "refuses this project's keys"},
				{"projects/46.json:", "publicKeys: none"},
				{"projects/47.json:4:", "config.filterSettings", "unfiltered"},
				{"projects/no-id.json:", "projectId: missing"},
			},
		},
		{
			name: "a broken config.yml does not hide the other files' problems",
			files: []file{
				{"config.yml", "relay: [\n"},
				{"projects/44.json", "{\"projectId\": \"x\"}"},
			},
			want: [][]string{{"config.yml:"}, {"projects/44.json:1:", "projectId"}},
		},
		{
			name:  "TLS files that are not there",
			files: []file{{"config.yml", "relay:\n  mode: proxy\n  tls_port: 3443\n  tls_cert_path: cert.pem\n  tls_key_path: key.pem\n"}},
			want:  [][]string{{"relay.tls_cert_path", "cert.pem"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				writeFile(t, filepath.Join(dir, f.name), f.content)
			}
			if tc.withCreds {
				creds, err := credentials.Generate()
				if err != nil {
					t.Fatal(err)
				}
				if err := creds.Save(dir, false); err != nil {
					t.Fatal(err)
				}
			}
			r := run(t, runOpts{env: tc.env}, "-c", dir, "config", "validate")
			if tc.want == nil {
				if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "is valid") {
					t.Fatalf("exit %d, stdout %q, stderr %q; want valid", r.code, r.stdout, r.stderr)
				}
				return
			}
			if r.code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", r.code, r.stderr)
			}
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			if !strings.HasPrefix(lines[0], "error: config folder ") {
				t.Fatalf("first line %q", lines[0])
			}
			problems := lines[1:]
			if len(problems) != len(tc.want) {
				t.Fatalf("%d problems, want %d:\n%s", len(problems), len(tc.want), r.stderr)
			}
			for i, want := range tc.want {
				for _, w := range want {
					if !strings.Contains(problems[i], w) {
						t.Errorf("problem %d %q does not contain %q", i+1, problems[i], w)
					}
				}
			}
		})
	}
}
