package fakesentry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/testfixture"
)

func TestParseEnvelope(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		eventID string
		items   []string // "type:payload"
		err     string
	}{
		{"header only", `{}`, "", nil, ""},
		{"header only with newline", "{}\n", "", nil, ""},
		{"hyphenated id", `{"event_id":"9EC79C33-EC99-42AB-8353-589FCB2E04DC"}`, "9ec79c33ec9942ab8353589fcb2e04dc", nil, ""},
		{"null id", `{"event_id":null}`, "", nil, ""},
		{"length, trailing newline", "{}\n{\"type\":\"event\",\"length\":2}\nab\n", "", []string{"event:ab"}, ""},
		{"length, no trailing newline", "{}\n{\"type\":\"event\",\"length\":2}\nab", "", []string{"event:ab"}, ""},
		{"length with newline inside", "{}\n{\"type\":\"attachment\",\"length\":3}\na\nb\n", "", []string{"attachment:a\nb"}, ""},
		{"no length", "{}\n{\"type\":\"event\"}\n{\"a\":1}\n{\"type\":\"session\"}\n{}", "", []string{`event:{"a":1}`, "session:{}"}, ""},
		{"item header at EOF", "{}\n{\"type\":\"event\"}", "", []string{"event:"}, ""},
		{"empty payload with length 0", "{}\n{\"type\":\"event\",\"length\":0}\n\n", "", []string{"event:"}, ""},
		{"carriage return is payload", "{}\n{\"type\":\"event\"}\nab\r\n", "", []string{"event:ab\r"}, ""},
		{"null length = no length", "{}\n{\"type\":\"event\",\"length\":null}\nab\n", "", []string{"event:ab"}, ""},
		{"empty body", "", "", nil, "not a JSON object"},
		{"header not object", `"x"`, "", nil, "not a JSON object"},
		{"header null", `null`, "", nil, "not a JSON object"},
		{"bad id", `{"event_id":"abc"}`, "", nil, "not a UUID"},
		{"id not string", `{"event_id":5}`, "", nil, "not a string"},
		{"misplaced dashes", `{"event_id":"9ec79c33e-c99-42ab-8353-589fcb2e04dc"}`, "", nil, "not a UUID"},
		{"item header garbage", "{}\nxyz\n", "", nil, "not a JSON object"},
		{"item header array", "{}\n[1]\n", "", nil, "not a JSON object"},
		{"type missing", "{}\n{}\n", "", nil, "no type"},
		{"type empty", "{}\n{\"type\":\"\"}\n", "", nil, "no type"},
		{"type not string", "{}\n{\"type\":1}\n", "", nil, "not a JSON object"},
		{"length float", "{}\n{\"type\":\"e\",\"length\":1.5}\nab\n", "", nil, "bad length"},
		{"length too big for u32", "{}\n{\"type\":\"e\",\"length\":4294967296}\n", "", nil, "bad length"},
		{"short payload", "{}\n{\"type\":\"e\",\"length\":5}\nab", "", nil, "unexpected end of file"},
		{"no newline after payload", "{}\n{\"type\":\"e\",\"length\":1}\nab", "", nil, "missing newline"},
		{"blank line for a header", "{}\n\n", "", nil, "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := parseEnvelope([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if env.eventID != tt.eventID {
				t.Fatalf("eventID %q, want %q", env.eventID, tt.eventID)
			}
			var got []string
			for _, it := range env.items {
				got = append(got, it.Type+":"+string(it.Payload))
			}
			if strings.Join(got, "|") != strings.Join(tt.items, "|") {
				t.Fatalf("items %q, want %q", got, tt.items)
			}
		})
	}
}

// TestParseSDKFixtures: every envelope a real SDK sent parses, so the fake
// never refuses what Sentry would take.
func TestParseSDKFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testfixture.SDKDir(t), "*.envelope"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		env, err := parseEnvelope(b)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		if len(env.items) == 0 {
			t.Errorf("%s: no items", filepath.Base(f))
		}
	}
}

func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte("{}\n{\"type\":\"event\",\"length\":2}\nab\n"))
	f.Add([]byte("{\"event_id\":\"9ec79c33-ec99-42ab-8353-589fcb2e04dc\"}\n{\"type\":\"event\"}\n{}"))
	f.Add([]byte("{}\n{\"type\":\"a\",\"length\":3}\na\nb\n{\"type\":\"b\"}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := parseEnvelope(b)
		if err != nil {
			return
		}
		total := len(env.header)
		for _, it := range env.items {
			if it.Type == "" {
				t.Fatal("item without type accepted")
			}
			total += len(it.Header) + len(it.Payload)
		}
		if total > len(b) {
			t.Fatalf("parsed %d bytes out of %d", total, len(b))
		}
		if env.eventID != "" && len(env.eventID) != 32 {
			t.Fatalf("event id %q", env.eventID)
		}
	})
}
