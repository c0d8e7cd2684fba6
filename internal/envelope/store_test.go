package envelope

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/testfixture"
)

// storeClient returns the sentry_client of a captured store request (or its User-Agent).
func storeClient(t *testing.T, name string) string {
	t.Helper()
	hdrs := string(testfixture.SDKFile(t, name+".headers"))
	if m := regexp.MustCompile(`sentry_client=([^,\s]+)`).FindStringSubmatch(hdrs); m != nil {
		return m[1]
	}
	if m := regexp.MustCompile(`(?mi)^User-Agent: (\S+)`).FindStringSubmatch(hdrs); m != nil {
		return m[1]
	}
	return ""
}

// decodeReference decodes a store body the way INDEX.md describes, independently of the code
// under test.
func decodeReference(t *testing.T, body []byte) []byte {
	t.Helper()
	if bytes.HasPrefix(body, []byte("{")) {
		return body
	}
	raw, err := base64.StdEncoding.DecodeString(string(body))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := out.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestFromStoreBodyFixtures(t *testing.T) {
	var names []string
	for _, pattern := range []string{"*.store.json", "*.store.b64zlib"} {
		paths, err := filepath.Glob(filepath.Join(testfixture.SDKDir(t), pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			names = append(names, filepath.Base(p))
		}
	}
	if len(names) < 8 {
		t.Fatalf("found only %d store fixtures", len(names))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			body := testfixture.SDKFile(t, name)
			want := decodeReference(t, body)
			var event struct {
				EventID string `json:"event_id"`
			}
			if err := json.Unmarshal(want, &event); err != nil {
				t.Fatal(err)
			}
			e, err := FromStoreBody(body, storeClient(t, name))
			if err != nil {
				t.Fatalf("FromStoreBody: %v", err)
			}
			if e.Header.EventID != event.EventID || len(event.EventID) != 32 {
				t.Errorf("EventID %q, want %q", e.Header.EventID, event.EventID)
			}
			if len(e.Items) != 1 || e.Items[0].Type != "event" {
				t.Fatalf("items %v, want one event", itemTypes(e))
			}
			if !bytes.Equal(e.Items[0].Payload, want) {
				t.Errorf("payload differs from the decoded event")
			}
			if strings.HasSuffix(name, ".json") && !aliases(body, e.Items[0].Payload) {
				t.Errorf("a plain JSON body was copied")
			}
			if e.Unchanged() {
				t.Errorf("a converted envelope reports Unchanged")
			}
			out := e.AppendTo(nil)
			checkRoundTrip(t, e, out)
			wantHead := `{"event_id":"` + event.EventID + `"}` + "\n" +
				`{"type":"event","length":` + itoa(len(want)) + `,"content_type":"application/json"}` + "\n"
			if !bytes.HasPrefix(out, []byte(wantHead)) {
				t.Errorf("envelope starts %q, want %q", out[:min(len(out), len(wantHead))], wantHead)
			}
		})
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func b64zlib(t testing.TB, data []byte) string {
	var buf bytes.Buffer
	zw, err := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

func TestFromStoreBody(t *testing.T) {
	const id = "9ec79c33ec9942ab8353589fcb2e04dc"
	tests := []struct {
		name     string
		body     string
		client   string
		itemType string
		eventID  string // "" = generated
		payload  string // "" = body as given
	}{
		{name: "json", body: `{"event_id":"` + id + `","message":"hi"}`, itemType: "event", eventID: id},
		{name: "dashed event id", body: `{"event_id":"9EC79C33-EC99-42AB-8353-589FCB2E04DC"}`, itemType: "event", eventID: id},
		{name: "no event id", body: `{"message":"hi"}`, itemType: "event"},
		{name: "null event id", body: `{"event_id":null}`, itemType: "event"},
		{name: "transaction", body: `{"type":"transaction","spans":[]}`, itemType: "transaction"},
		{name: "csp", body: `{"type":"csp"}`, itemType: "security"},
		{name: "hpkp", body: `{"type":"hpkp"}`, itemType: "security"},
		{name: "expectct", body: `{"type":"expectct"}`, itemType: "security"},
		{name: "expectstaple", body: `{"type":"expectstaple"}`, itemType: "security"},
		{name: "feedback", body: `{"type":"feedback"}`, itemType: "feedback"},
		{name: "error", body: `{"type":"error"}`, itemType: "event"},
		{name: "default", body: `{"type":"default"}`, itemType: "event"},
		{name: "unknown type forwarded as event", body: `{"type":"brand_new"}`, itemType: "event"},
		{name: "nested type ignored", body: `{"request":{"type":"transaction"}}`, itemType: "event"},
		{name: "trailing whitespace", body: "{\"a\":1}\n  ", itemType: "event"},
		{name: "base64 of json", body: b64(`{"event_id":"` + id + `"}`), itemType: "event", eventID: id, payload: `{"event_id":"` + id + `"}`},
		{name: "base64 of zlib json", body: b64zlib(t, []byte(`{"event_id":"`+id+`","type":"transaction"}`)), itemType: "transaction", eventID: id, payload: `{"event_id":"` + id + `","type":"transaction"}`},
		{name: "zlib json with leading space", body: b64zlib(t, []byte(` {"a":1}`)), itemType: "event", payload: ` {"a":1}`},
		{name: "python NaN repaired", body: `{"extra":{"x":NaN,"y":-Infinity,"z":[Infinity],"s":"NaN"}}`, client: "sentry-python/0.9.0",
			itemType: "event", payload: `{"extra":{"x":0  ,"y":-0       ,"z":[0       ],"s":"NaN"}}`},
		{name: "raven-python NaN repaired in zlib", body: b64zlib(t, []byte(`{"a":NaN}`)), client: "raven-python/6.10.0", itemType: "event", payload: `{"a":0  }`},
		{name: "python huge integer repaired", body: `{"a":123456789012345678901234567890,"b":18446744073709551615,"c":1.5e400}`, client: "sentry-python/1.0",
			itemType: "event", payload: `{"a":0                             ,"b":18446744073709551615,"c":1.5e400}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			orig := bytes.Clone(body)
			e, err := FromStoreBody(body, tt.client)
			if err != nil {
				t.Fatalf("FromStoreBody: %v", err)
			}
			if !bytes.Equal(body, orig) {
				t.Errorf("the caller's body was modified")
			}
			if len(e.Items) != 1 || e.Items[0].Type != tt.itemType {
				t.Fatalf("items %v, want [%s]", itemTypes(e), tt.itemType)
			}
			if tt.eventID != "" && e.Header.EventID != tt.eventID {
				t.Errorf("EventID %q, want %q", e.Header.EventID, tt.eventID)
			}
			if _, ok := NormalizeEventID(e.Header.EventID); !ok || len(e.Header.EventID) != 32 {
				t.Errorf("EventID %q is not 32 hex", e.Header.EventID)
			}
			want := tt.payload
			if want == "" {
				want = tt.body
			}
			if got := string(e.Items[0].Payload); got != want {
				t.Errorf("payload %q, want %q", got, want)
			}
			if got := e.Items[0].HeaderString("content_type"); got != "application/json" {
				t.Errorf("content_type %q", got)
			}
			checkRoundTrip(t, e, e.AppendTo(nil))
		})
	}
}

func TestFromStoreBodyGeneratesDistinctIDs(t *testing.T) {
	a, err := FromStoreBody([]byte(`{}`), "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := FromStoreBody([]byte(`{}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Header.EventID == b.Header.EventID {
		t.Errorf("two generated event ids are equal: %s", a.Header.EventID)
	}
}

func TestFromStoreBodyPythonClientsOnly(t *testing.T) {
	body := `{"a":NaN}`
	for _, client := range []string{"", "sentry.python/1.9.10", "raven-js/3.0", "sentry-pythonx/1"} {
		if _, err := FromStoreBody([]byte(body), client); !errors.Is(err, ErrInvalidJSON) {
			t.Errorf("client %q: err = %v, want invalid JSON (no repair)", client, err)
		}
	}
}

func TestFromStoreBodyErrors(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		cause  error
		detail string
	}{
		{"empty", "", ErrEmptyBody, ""},
		{"not base64", "hello world", ErrInvalidBody, "invalid base64"},
		{"base64 without padding", strings.TrimRight(b64(`{"a":12}`), "="), ErrInvalidBody, "invalid base64"},
		{"base64 with line breaks", b64(`{"a":1}`)[:4] + "\n" + b64(`{"a":1}`)[4:], ErrInvalidBody, "line break"},
		{"base64 of garbage", b64("garbage"), ErrInvalidBody, "zlib"},
		{"truncated zlib", b64zlib(t, []byte(`{"a":1}`))[:12], ErrInvalidBody, "zlib"},
		{"zlib of empty", b64zlib(t, nil), ErrEmptyBody, ""},
		{"invalid json", `{"a":}`, ErrInvalidJSON, "expected value at line 1 column 6"},
		{"not an object", b64(`[1,2]`), ErrInvalidBody, ""},
		{"array in zlib", b64zlib(t, []byte(`[1,2]`)), ErrInvalidJSON, "invalid type: sequence"},
		{"trailing characters", `{"a":1} x`, ErrInvalidJSON, "trailing characters"},
		{"bad event id", `{"event_id":"nope"}`, ErrInvalidJSON, "not a UUID"},
		{"event id number", `{"event_id":7}`, ErrInvalidJSON, "invalid type: number"},
		{"duplicate event id", `{"event_id":null,"event_id":null}`, ErrInvalidJSON, "duplicate field"},
		{"NaN without repair", `{"a":NaN}`, ErrInvalidJSON, "expected value"},
		{"invalid UTF-8", "{\"a\":\"\xc3\x28\"}", ErrInvalidJSON, "invalid unicode code point"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromStoreBody([]byte(tt.body), "")
			var se *StoreError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want a *StoreError", err, err)
			}
			if !errors.Is(err, tt.cause) || se.Causes()[0] != tt.cause.Error() {
				t.Fatalf("err = %q, want cause %q", err, tt.cause)
			}
			if !strings.Contains(se.Detail, tt.detail) {
				t.Errorf("detail %q, want it to contain %q", se.Detail, tt.detail)
			}
		})
	}
}

func TestFromStoreBodySizeLimit(t *testing.T) {
	// A zlib bomb: 4 MiB of spaces inside a JSON string compress to ~4 KiB.
	bomb := bytes.Repeat([]byte(" "), 4<<20)
	copy(bomb, `{"a":"`)
	copy(bomb[len(bomb)-2:], `"}`)
	body := []byte(b64zlib(t, bomb))
	const limit = 1 << 20

	tests := []struct {
		name string
		body []byte
		ok   bool
	}{
		{"zlib bomb", body, false},
		{"plain json over the limit", []byte(`{"a":"` + strings.Repeat("x", limit) + `"}`), false},
		{"base64 json over the limit", []byte(b64(`{"a":"` + strings.Repeat("x", limit) + `"}`)), false},
		{"zlib exactly at the limit", []byte(b64zlib(t, append(append([]byte(`{"a":"`), bytes.Repeat([]byte("y"), limit-8)...), `"}`...))), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := FromStoreBodyLimit(tt.body, "", limit)
			runtime.ReadMemStats(&after)
			if used := after.TotalAlloc - before.TotalAlloc; used > uint64(3*limit+2*len(tt.body)) {
				t.Errorf("allocated %d bytes for a %d-byte limit", used, limit)
			}
			if tt.ok {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			var se *SizeError
			if !errors.As(err, &se) || se.ItemType != "event" {
				t.Fatalf("err = %v, want a *SizeError for event", err)
			}
			if want := "envelope exceeded size limits for type 'event' (https://develop.sentry.dev/sdk/envelopes/#size-limits)"; err.Error() != want {
				t.Errorf("Error() = %q", err)
			}
		})
	}
}

// TestRepairPythonJSON pins json_forensics' behaviour, including its quirks.
func TestRepairPythonJSON(t *testing.T) {
	tests := map[string]string{
		`{"nan":NaN,"inf":Infinity,"-inf":-Infinity}`:      `{"nan":0  ,"inf":0       ,"-inf":-0       }`,
		`{"nan":"nan","Infinity":"-Infinity","other":NaN}`: `{"nan":"nan","Infinity":"-Infinity","other":0  }`,
		`"NaN\"NaN\"NaN"`: `"NaN\"NaN\"NaN"`,
		`Inferior`:        `Inferior`,
		`[NaN,NaN]`:       `[0  ,0  ]`,
		`999999999999999999999999999999999999999`:               `0                                      `,
		`[18446744073709551616]`:                                `[0                   ]`,
		`[18446744073709551615]`:                                `[18446744073709551615]`,
		`-99999999999999999999`:                                 `-0                   `,
		`9999999999999999999999999999.99999`:                    `9999999999999999999999999999.99999`,
		`999999999999999999999E10`:                              `999999999999999999999E10`,
		`{"a":1,"b":[2,3],"c":"99999999999999999999999999999"}`: `{"a":1,"b":[2,3],"c":"99999999999999999999999999999"}`,
		`{"escaped":"a\\","n":NaN}`:                             `{"escaped":"a\\","n":0  }`,
		`Nx"NaN"`:                                               `Nx"0  "`, // a partial token keeps its state, so the quote is not seen
		`NaNaN`:                                                 `0  aN`,
	}
	for in, want := range tests {
		b := []byte(in)
		repairPythonJSON(b)
		if string(b) != want {
			t.Errorf("repair(%s)\n got %s\nwant %s", in, b, want)
		}
	}
}
