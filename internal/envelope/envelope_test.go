package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/testfixture"
)

// indexedEnvelope is one row of the recorded traffic's INDEX.md describing an envelope capture.
type indexedEnvelope struct {
	name     string
	types    []string
	noLength []bool // the item arrived without a `length` header
	size     int
}

// loadIndex reads the envelope rows of INDEX.md, e.g.
// | `go-attachment.envelope` | … | ['event', 'attachment(no length)'] | 1932 |
func loadIndex(t testing.TB) []indexedEnvelope {
	t.Helper()
	row := regexp.MustCompile("^\\| `([^`]+\\.envelope)`.*\\| \\[([^\\]]*)\\] \\| (\\d+) \\|$")
	var out []indexedEnvelope
	for _, line := range strings.Split(string(testfixture.SDKFile(t, "INDEX.md")), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		size, _ := strconv.Atoi(m[3])
		ie := indexedEnvelope{name: m[1], size: size}
		for _, f := range strings.Split(m[2], ",") {
			f = strings.Trim(strings.TrimSpace(f), "'")
			typ, noLen := strings.CutSuffix(f, "(no length)")
			ie.types = append(ie.types, typ)
			ie.noLength = append(ie.noLength, noLen)
		}
		out = append(out, ie)
	}
	if len(out) < 40 {
		t.Fatalf("INDEX.md: found only %d envelope rows", len(out))
	}
	return out
}

// fixtureEnvelopes returns the names and bytes of every *.envelope capture.
func fixtureEnvelopes(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(testfixture.SDKDir(t), "*.envelope"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no envelope fixtures: %v", err)
	}
	out := make(map[string][]byte, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

func itemTypes(e *Envelope) []string {
	var types []string
	for _, it := range e.Items {
		types = append(types, it.Type)
	}
	return types
}

func TestParseFixturesMatchIndex(t *testing.T) {
	files := fixtureEnvelopes(t)
	index := loadIndex(t)
	listed := map[string]bool{}
	for _, ie := range index {
		listed[ie.name] = true
		t.Run(ie.name, func(t *testing.T) {
			body, ok := files[ie.name]
			if !ok {
				t.Fatalf("listed in INDEX.md but missing")
			}
			if len(body) != ie.size {
				t.Errorf("size %d, INDEX.md says %d", len(body), ie.size)
			}
			e, err := Parse(body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := itemTypes(e); !slices.Equal(got, ie.types) {
				t.Fatalf("item types %v, INDEX.md says %v", got, ie.types)
			}
			for i, it := range e.Items {
				if it.explicitLength == ie.noLength[i] {
					t.Errorf("item %d (%s): explicit length %v, INDEX.md says no length = %v",
						i, it.Type, it.explicitLength, ie.noLength[i])
				}
			}
			if !e.Unchanged() {
				t.Errorf("freshly parsed envelope reports changes")
			}
			// Payloads alias the input, no copies.
			for i, it := range e.Items {
				if len(it.Payload) > 0 && !aliases(body, it.Payload) {
					t.Errorf("item %d payload does not alias the body", i)
				}
			}
		})
	}
	for name := range files {
		if !listed[name] {
			t.Errorf("%s is not listed in INDEX.md", name)
		}
	}
}

// aliases reports whether sub lies inside buf's memory.
func aliases(buf, sub []byte) bool {
	for i := range buf {
		if &buf[i] == &sub[0] {
			return true
		}
	}
	return false
}

func TestFixtureHeaders(t *testing.T) {
	files := fixtureEnvelopes(t)
	for name, body := range files {
		e, err := Parse(body)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// The header's event_id, when there is one, is the normalised form of what was sent.
		var hdr map[string]any
		line, _, _ := bytes.Cut(body, []byte("\n"))
		if err := json.Unmarshal(line, &hdr); err != nil {
			t.Fatalf("%s: header: %v", name, err)
		}
		if id, ok := hdr["event_id"].(string); ok {
			want := strings.ToLower(strings.ReplaceAll(id, "-", ""))
			if e.Header.EventID != want {
				t.Errorf("%s: EventID %q, want %q", name, e.Header.EventID, want)
			}
		} else if e.Header.EventID != "" {
			t.Errorf("%s: EventID %q without event_id in the header", name, e.Header.EventID)
		}
		dsn, _ := hdr["dsn"].(string)
		if e.Header.DSN != dsn {
			t.Errorf("%s: DSN %q, want %q", name, e.Header.DSN, dsn)
		}
		if strings.Contains(name, "tunnel") && e.Header.DSN == "" {
			t.Errorf("%s: tunnel envelope without dsn", name)
		}
		if got := e.HeaderString("sent_at"); got != stringOr(hdr["sent_at"]) {
			t.Errorf("%s: HeaderString(sent_at) = %q", name, got)
		}
	}
}

func stringOr(v any) string {
	s, _ := v.(string)
	return s
}

func TestRoundTripFixtures(t *testing.T) {
	for name, body := range fixtureEnvelopes(t) {
		t.Run(name, func(t *testing.T) {
			e, err := Parse(body)
			if err != nil {
				t.Fatal(err)
			}
			out := e.AppendTo(nil)
			checkRoundTrip(t, e, out)

			// The envelope header is written byte for byte.
			if line, _, _ := bytes.Cut(out, []byte("\n")); !bytes.Equal(line, e.rawHeader) {
				t.Errorf("envelope header rewritten:\n got %s\nwant %s", line, e.rawHeader)
			}
			// Relay's framing is a fixed point: serialising the re-parsed envelope changes nothing.
			e2, err := Parse(out)
			if err != nil {
				t.Fatal(err)
			}
			if out2 := e2.AppendTo(nil); !bytes.Equal(out, out2) {
				t.Errorf("second serialisation differs")
			}
			// Envelopes already in Relay's form (every length explicit, final newline) come out
			// identical.
			explicit := true
			for _, it := range e.Items {
				explicit = explicit && it.explicitLength
			}
			// (A last payload running to the end of the body gets Relay's terminating newline.)
			if explicit && !bytes.Equal(out, body) && !bytes.Equal(out, append(slices.Clip(body), '\n')) {
				t.Errorf("an envelope in Relay's form was changed by AppendTo")
			}
		})
	}
}

// checkRoundTrip parses out and checks it carries e's items: same types, byte-identical payloads,
// an explicit length on every item, every other item-header key kept with its value.
func checkRoundTrip(t *testing.T, e *Envelope, out []byte) {
	t.Helper()
	got, err := Parse(out)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, out)
	}
	if got.Header.EventID != e.Header.EventID || got.Header.DSN != e.Header.DSN {
		t.Errorf("header changed: %+v → %+v", e.Header, got.Header)
	}
	if len(got.Items) != len(e.Items) {
		t.Fatalf("%d items, want %d", len(got.Items), len(e.Items))
	}
	for i, it := range got.Items {
		want := e.Items[i]
		if it.Type != want.Type {
			t.Errorf("item %d: type %q, want %q", i, it.Type, want.Type)
		}
		if !bytes.Equal(it.Payload, want.Payload) {
			t.Errorf("item %d (%s): payload differs", i, it.Type)
		}
		if !it.explicitLength {
			t.Errorf("item %d (%s): no explicit length after AppendTo", i, it.Type)
		}
		var before, after map[string]any
		if err := json.Unmarshal(want.rawHeader, &before); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(it.rawHeader, &after); err != nil {
			t.Fatal(err)
		}
		if after["length"] != float64(len(want.Payload)) {
			t.Errorf("item %d: length %v, payload has %d bytes", i, after["length"], len(want.Payload))
		}
		delete(before, "length")
		delete(after, "length")
		before["type"] = want.Type
		if !jsonEqual(before, after) {
			t.Errorf("item %d: header keys changed:\n got %s\nwant %s", i, it.rawHeader, want.rawHeader)
		}
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestParseValid covers the grammar corners of relay-protocol.md §3.1 that Relay accepts.
func TestParseValid(t *testing.T) {
	const id = `"9ec79c33ec9942ab8353589fcb2e04dc"`
	tests := []struct {
		name     string
		in       string
		eventID  string
		types    []string
		payloads []string
	}{
		{name: "header only without newline", in: `{"event_id":` + id + `}`, eventID: "9ec79c33ec9942ab8353589fcb2e04dc"},
		{name: "header only with newline", in: `{}` + "\n"},
		{name: "empty header object", in: "{}\n" + `{"type":"session"}` + "\n{}", types: []string{"session"}, payloads: []string{"{}"}},
		{name: "leading whitespace before header", in: " \r\n\t{}\n" + `{"type":"a"}` + "\nx", types: []string{"a"}, payloads: []string{"x"}},
		{name: "leading whitespace before item header", in: "{}\n \t" + `{"type":"a"}` + "\nx", types: []string{"a"}, payloads: []string{"x"}},
		{name: "header spans lines", in: "{\n\"event_id\":\n" + id + "\n}\n" + `{"type":"a"}` + "\nx", eventID: "9ec79c33ec9942ab8353589fcb2e04dc", types: []string{"a"}, payloads: []string{"x"}},
		{name: "item header at EOF", in: "{}\n" + `{"type":"attachment"}`, types: []string{"attachment"}, payloads: []string{""}},
		{name: "length 0 at EOF", in: "{}\n" + `{"type":"attachment","length":0}`, types: []string{"attachment"}, payloads: []string{""}},
		{name: "length payload at EOF", in: "{}\n" + `{"type":"attachment","length":5}` + "\nhello", types: []string{"attachment"}, payloads: []string{"hello"}},
		{name: "length payload with newlines", in: "{}\n" + `{"type":"event","length":7}` + "\n{\n\"a\"}\n\n", types: []string{"event"}, payloads: []string{"{\n\"a\"}\n"}},
		{name: "CR is payload data", in: "{}\n" + `{"type":"a"}` + "\nab\r\n" + `{"type":"b","length":3}` + "\n\r\r\r", types: []string{"a", "b"}, payloads: []string{"ab\r", "\r\r\r"}},
		{name: "empty implicit payloads", in: "{}\n" + `{"type":"a"}` + "\n\n" + `{"type":"b"}` + "\n\n", types: []string{"a", "b"}, payloads: []string{"", ""}},
		{name: "empty length payloads", in: "{}\n" + `{"type":"a","length":0}` + "\n\n" + `{"type":"b","length":0}` + "\n", types: []string{"a", "b"}, payloads: []string{"", ""}},
		{name: "length null means implicit", in: "{}\n" + `{"type":"a","length":null}` + "\nabc\n", types: []string{"a"}, payloads: []string{"abc"}},
		{name: "keys are case-sensitive", in: "{}\n" + `{"type":"a","Length":1}` + "\nabc", types: []string{"a"}, payloads: []string{"abc"}},
		{name: "escaped key", in: "{}\n" + `{"typ\u0065":"ev\u0065nt"}` + "\nx", types: []string{"event"}, payloads: []string{"x"}},
		{name: "unknown item type kept", in: "{}\n" + `{"type":"brand_new","whatever":[1,{"x":null}]}` + "\nx", types: []string{"brand_new"}, payloads: []string{"x"}},
		{name: "dashed uppercase event_id", in: `{"event_id":"9EC79C33-EC99-42AB-8353-589FCB2E04DC"}`, eventID: "9ec79c33ec9942ab8353589fcb2e04dc"},
		{name: "braced event_id", in: `{"event_id":"{9ec79c33-ec99-42ab-8353-589fcb2e04dc}"}`, eventID: "9ec79c33ec9942ab8353589fcb2e04dc"},
		{name: "null event_id", in: `{"event_id":null}`},
		{name: "header fields of the right types", in: `{"dsn":"https://e12d836b15bb49d7bbf99e64295d995b:@sentry.io/42","client":"sentry/js","version":7,"origin":"http://localhost/","remote_addr":"127.0.0.1","forwarded_for":"8.8.8.8","user_agent":"x","no_cache":true,"retention":90,"sent_at":"2026-11-22T18:03:24.132Z","trace":{"a":[1,2]},"sdk":null}`},
		{name: "item flags of the right types", in: "{}\n" + `{"type":"span","item_count":2,"content_type":"application/vnd.sentry.items.span.v2+json","filename":null,"platform":"node","sampled":false,"metrics_extracted":true,"routing_hint":"9ec79c33ec9942ab8353589fcb2e04dc"}` + "\n{}", types: []string{"span"}, payloads: []string{"{}"}},
		{name: "nesting 127 deep", in: `{"x":` + strings.Repeat("[", 126) + strings.Repeat("]", 126) + "}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if e.Header.EventID != tt.eventID {
				t.Errorf("EventID %q, want %q", e.Header.EventID, tt.eventID)
			}
			if got := itemTypes(e); !slices.Equal(got, tt.types) {
				t.Errorf("types %q, want %q", got, tt.types)
			}
			for i, it := range e.Items {
				if i < len(tt.payloads) && string(it.Payload) != tt.payloads[i] {
					t.Errorf("payload %d = %q, want %q", i, it.Payload, tt.payloads[i])
				}
			}
			out := e.AppendTo(nil)
			checkRoundTrip(t, e, out)
			if n := bytes.Count(out, []byte("\n")); n < 1+2*len(e.Items) {
				t.Errorf("output has %d lines:\n%s", n, out)
			}
			if line, _, _ := bytes.Cut(out, []byte("\n")); !json.Valid(line) {
				t.Errorf("header line is not one JSON line: %q", line)
			}
		})
	}
}

// TestParseErrors: what Relay rejects, with its cause texts.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		cause  error
		detail string // substring of the detail ("" = no detail expected)
		offset int    // -1 = not checked
	}{
		{"empty body", "", ErrMissingHeader, "", 0},
		{"only whitespace", " \n\t\r\n", ErrMissingHeader, "", 5},
		{"header not JSON", "hello\n", ErrInvalidHeader, "expected value at line 1 column 1", 0},
		{"header truncated", `{"event_id":`, ErrInvalidHeader, "EOF while parsing a value", -1},
		{"header unterminated object", `{"a":1` + "\n" + `{"type":"event"}`, ErrInvalidHeader, "expected `,` or `}` at line 2 column 1", -1},
		{"header is an array", "[]\n", ErrInvalidHeader, "invalid type: sequence, expected a JSON object", -1},
		{"header trailing comma", `{"a":1,}`, ErrInvalidHeader, "trailing comma", -1},
		{"header invalid UTF-8", "{\"a\":\"\xff\"}", ErrInvalidHeader, "invalid unicode code point", -1},
		{"header control character", "{\"a\":\"\x01\"}", ErrInvalidHeader, "control character", -1},
		{"header nested too deep", `{"x":` + strings.Repeat("[", 127) + strings.Repeat("]", 127) + "}", ErrInvalidHeader, "recursion limit exceeded", -1},
		{"garbage after header", "{}x\n", ErrMissingNewline, "", 2},
		{"CRLF after header", "{}\r\n", ErrMissingNewline, "", 2},
		{"event_id not a UUID", `{"event_id":"not-a-uuid"}`, ErrInvalidHeader, `invalid event_id "not-a-uuid": not a UUID`, -1},
		{"event_id 31 hex", `{"event_id":"9ec79c33ec9942ab8353589fcb2e04d"}`, ErrInvalidHeader, "not a UUID", -1},
		{"event_id number", `{"event_id":42}`, ErrInvalidHeader, "invalid type: number", -1},
		{"duplicate event_id", `{"event_id":null,"event_id":null}`, ErrInvalidHeader, "duplicate field `event_id`", -1},
		{"dsn not a DSN", `{"dsn":"nope"}`, ErrInvalidHeader, "invalid dsn", -1},
		{"dsn with a short key", `{"dsn":"https://abc@sentry.io/42"}`, ErrInvalidHeader, "32 characters", -1},
		{"sent_at not a date", `{"sent_at":"yesterday"}`, ErrInvalidHeader, "sent_at", -1},
		{"version too large", `{"version":70000}`, ErrInvalidHeader, "expected u16", -1},
		{"remote_addr not an IP", `{"remote_addr":"localhost"}`, ErrInvalidHeader, "remote_addr", -1},
		{"item header not JSON", "{}\nhello\n", ErrInvalidItemHeader, "expected value at line 1 column 1", 3},
		{"item header bad literal", "{}\nnot json\n", ErrInvalidItemHeader, "expected ident at line 1 column 2", 4},
		{"item header missing type", "{}\n" + `{"length":2}` + "\nab", ErrInvalidItemHeader, "missing field `type` at line 1 column 12", -1},
		{"item type case-sensitive key", "{}\n" + `{"Type":"event"}` + "\nab", ErrInvalidItemHeader, "missing field `type`", -1},
		{"item type null", "{}\n" + `{"type":null}` + "\n", ErrInvalidItemHeader, "invalid type: null, expected an envelope item type", -1},
		{"item type number", "{}\n" + `{"type":1}` + "\n", ErrInvalidItemHeader, "invalid type: number", -1},
		{"item header is a string", "{}\n\"event\"\n", ErrInvalidItemHeader, "invalid type: string", -1},
		{"length negative", "{}\n" + `{"type":"a","length":-1}` + "\n", ErrInvalidItemHeader, "expected u32", -1},
		{"length float", "{}\n" + `{"type":"a","length":1.0}` + "\nx", ErrInvalidItemHeader, "floating point", -1},
		{"length string", "{}\n" + `{"type":"a","length":"1"}` + "\nx", ErrInvalidItemHeader, "invalid type: string, expected u32", -1},
		{"length over u32", "{}\n" + `{"type":"a","length":4294967296}` + "\nx", ErrInvalidItemHeader, "expected u32", -1},
		{"duplicate length", "{}\n" + `{"type":"a","length":1,"length":2}` + "\nx", ErrInvalidItemHeader, "duplicate field `length`", -1},
		{"item_count float", "{}\n" + `{"type":"log","item_count":1.5}` + "\nx", ErrInvalidItemHeader, "floating point", -1},
		{"content_type number", "{}\n" + `{"type":"a","content_type":5}` + "\nx", ErrInvalidItemHeader, "content_type", -1},
		{"sampled not a bool", "{}\n" + `{"type":"a","sampled":"yes"}` + "\nx", ErrInvalidItemHeader, "expected a boolean (sampled)", -1},
		{"garbage after item header", "{}\n" + `{"type":"a"}` + "x", ErrMissingNewline, "", 15},
		{"length too short", "{}\n" + `{"type":"a","length":2}` + "\nabc", ErrMissingNewline, "", 29},
		{"length too long", "{}\n" + `{"type":"a","length":4}` + "\nabc", ErrUnexpectedEOF, "", 30},
		{"length runs into the next item", "{}\n" + `{"type":"a","length":10}` + "\nabc\n" + `{"type":"b"}`, ErrMissingNewline, "", 38},
		{"length beyond the last item", "{}\n" + `{"type":"a","length":30}` + "\nabc\n" + `{"type":"b"}`, ErrUnexpectedEOF, "", 44},
		{"truncated body", "{}\n" + `{"type":"attachment","length":100}` + "\nonly a bit", ErrUnexpectedEOF, "", -1},
		{"claimed length u32 max", "{}\n" + `{"type":"attachment","length":4294967295}` + "\nx", ErrUnexpectedEOF, "", -1},
		{"second trailing newline", "{}\n" + `{"type":"a"}` + "\nabc\n\n", ErrUnexpectedEOF, "", 21},
		{"trailing whitespace after last item", "{}\n" + `{"type":"a","length":1}` + "\nx\n  ", ErrUnexpectedEOF, "", -1},
		{"internal item", "{}\n" + `{"type":"integration","content_type":"application/vnd.sentry.integration.otel.logs+json"}` + "\n{}", ErrInternalItems, "", 3},
		{"internal item among others", "{}\n" + `{"type":"event"}` + "\n{}\n" + `{"type":"integration"}` + "\n{}", ErrInternalItems, "", -1},
		{"parse error after internal item wins", "{}\n" + `{"type":"integration"}` + "\n{}\n" + `{"type":1}`, ErrInvalidItemHeader, "invalid type: number", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded with %d items, want %v", len(e.Items), tt.cause)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *ParseError", err, err)
			}
			if !errors.Is(err, tt.cause) {
				t.Fatalf("error %q, want cause %q", err, tt.cause)
			}
			if pe.Causes()[0] != tt.cause.Error() || !strings.HasPrefix(err.Error(), tt.cause.Error()) {
				t.Errorf("Error() = %q, Causes() = %q; want cause text %q", err, pe.Causes(), tt.cause)
			}
			if tt.detail == "" && pe.Detail != "" {
				t.Errorf("unexpected detail %q", pe.Detail)
			}
			if !strings.Contains(pe.Detail, tt.detail) {
				t.Errorf("detail %q, want it to contain %q", pe.Detail, tt.detail)
			}
			if tt.offset >= 0 && pe.Offset != tt.offset {
				t.Errorf("offset %d, want %d", pe.Offset, tt.offset)
			}
		})
	}
}

// A claimed length must not cost memory beyond the input.
func TestParseClaimedLengthAllocatesNothing(t *testing.T) {
	in := []byte("{}\n" + `{"type":"attachment","length":4294967295}` + "\nx")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 100 {
		if _, err := Parse(in); !errors.Is(err, ErrUnexpectedEOF) {
			t.Fatalf("err = %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	if perCall := (after.TotalAlloc - before.TotalAlloc) / 100; perCall > 4096 {
		t.Fatalf("Parse allocated %d bytes per call for a 4 GiB claim", perCall)
	}
}

func TestUnchanged(t *testing.T) {
	body := []byte(`{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","sdk":{"name":"x"}}` + "\n" +
		`{"type":"event","length":2}` + "\n{}\n" +
		`{"type":"attachment"}` + "\nabc\n" +
		`{"type":"client_report"}` + "\n{}\n")
	tests := []struct {
		name   string
		modify func(e *Envelope)
		want   bool
	}{
		{"nothing", func(e *Envelope) {}, true},
		{"SetPayload with same bytes", func(e *Envelope) { e.Items[0].SetPayload(e.Items[0].Payload) }, false},
		{"payload reassigned", func(e *Envelope) { e.Items[1].Payload = []byte("abc") }, false},
		{"payload shortened", func(e *Envelope) { e.Items[1].Payload = e.Items[1].Payload[:1] }, false},
		{"type changed", func(e *Envelope) { e.Items[2].Type = "other" }, false},
		{"item dropped", func(e *Envelope) { e.Items = e.Items[:2] }, false},
		{"items reordered", func(e *Envelope) { e.Items[0], e.Items[1] = e.Items[1], e.Items[0] }, false},
		{"item added", func(e *Envelope) { e.Items = append(e.Items, NewItem("log", nil)) }, false},
		{"event id set", func(e *Envelope) {
			if err := e.SetEventID("9ec79c33ec9942ab8353589fcb2e04dc"); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(body)
			if err != nil {
				t.Fatal(err)
			}
			tt.modify(e)
			if got := e.Unchanged(); got != tt.want {
				t.Errorf("Unchanged() = %v, want %v", got, tt.want)
			}
		})
	}
	if newEnvelope().Unchanged() {
		t.Errorf("a constructed envelope reports Unchanged")
	}
}

func TestHeaderString(t *testing.T) {
	body := []byte(`{"sent_at":"2026-11-22T18:03:24.132Z","n":1,"esc":"a\"b"}` + "\n" +
		`{"type":"attachment","length":3,"filename":"a\u00e9.txt","attachment_type":"event.minidump","content_type":"text/plain","platform":"cocoa","n":5}` + "\nabc")
	e, err := Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"sent_at": "2026-11-22T18:03:24.132Z", "n": "", "esc": `a"b`, "missing": ""} {
		if got := e.HeaderString(key); got != want {
			t.Errorf("envelope HeaderString(%q) = %q, want %q", key, got, want)
		}
	}
	it := e.Items[0]
	for key, want := range map[string]string{"type": "attachment", "filename": "aé.txt", "attachment_type": "event.minidump",
		"content_type": "text/plain", "platform": "cocoa", "n": "", "length": "", "missing": ""} {
		if got := it.HeaderString(key); got != want {
			t.Errorf("item HeaderString(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestRequiresEventID(t *testing.T) {
	tests := []struct {
		types    []string
		requires bool
	}{
		{[]string{"event"}, true},
		{[]string{"transaction"}, true},
		{[]string{"security"}, true},
		{[]string{"raw_security"}, true},
		{[]string{"attachment"}, true},
		{[]string{"form_data"}, true},
		{[]string{"unreal_report"}, true},
		{[]string{"user_report"}, true},
		{[]string{"feedback"}, true},
		{[]string{"replay_event"}, true},
		{[]string{"profile"}, true},
		{[]string{"session", "client_report"}, false},
		{[]string{"sessions", "log", "span", "check_in", "replay_recording", "replay_video", "profile_chunk", "trace_metric", "statsd", "nel", "something_new"}, false},
		{[]string{"log", "attachment"}, true},
		{nil, false},
	}
	for _, tt := range tests {
		e := newEnvelope()
		for _, typ := range tt.types {
			e.Items = append(e.Items, NewItem(typ, []byte("{}")))
		}
		if got := e.RequiresEventID(); got != tt.requires {
			t.Errorf("%v: RequiresEventID() = %v, want %v", tt.types, got, tt.requires)
		}
	}
}

func TestValidTimestamp(t *testing.T) {
	for _, ok := range []string{
		"2026-11-22T18:03:24.132Z", "2026-11-22T17:59:12.062356978Z", "2026-11-22T18:03:24Z", "2026-11-22t18:03:24z",
		"2026-11-22 18:03:24Z", "2026-11-22  18:03:24 +00:00", "2026-11-22T18:03:24+05:30", "2026-11-22T18:03:24-0800",
		"2024-02-29T00:00:00Z", "2026-12-31T23:59:60Z",
	} {
		if !validTimestamp([]byte(ok)) {
			t.Errorf("validTimestamp(%q) = false", ok)
		}
	}
	for _, bad := range []string{
		"", "yesterday", "2026-11-22", "2026-11-22T18:03Z", "2026-11-22T18:03:24", "2026-13-01T00:00:00Z",
		"2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-11-22T24:00:00Z", "2026-11-22T18:60:00Z",
		"2026-11-22T18:03:24.Z", "2026-11-22T18:03:24+5:30", "2026-11-22T18:03:24Zx", "2026-11-22X18:03:24Z",
		"1795371229", "2026-11-22T18:03:24+24:00", "2026/11/22T18:03:24Z",
	} {
		if validTimestamp([]byte(bad)) {
			t.Errorf("validTimestamp(%q) = true", bad)
		}
	}
}
