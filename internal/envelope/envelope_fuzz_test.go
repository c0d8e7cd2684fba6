package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/relayhq/relay/internal/testfixture"
)

// seedFixtures adds every captured file matching the patterns to the fuzz corpus.
func seedFixtures(f *testing.F, add func([]byte), patterns ...string) {
	for _, pattern := range patterns {
		paths, err := filepath.Glob(filepath.Join(testfixture.SDKDir(f), pattern))
		if err != nil {
			f.Fatal(err)
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			add(b)
		}
	}
}

// FuzzParse: Parse never panics, fails only with a *ParseError inside the input, and whatever it
// accepts survives AppendTo: the output parses to the same header and items (types and payloads
// byte for byte), and serialising that again changes nothing.
func FuzzParse(f *testing.F) {
	seedFixtures(f, func(b []byte) { f.Add(b) }, "*.envelope")
	for _, s := range []string{
		"", "{}", "{}\n", " \n{}\n{\"type\":\"a\"}", "{}\n{\"type\":\"a\",\"length\":3}\nabc",
		"{}\n{\"type\":\"a\",\"length\":4294967295}\nx", "{}\n{\"type\":\"a\"}\nab\r\n\n",
		"{\"event_id\":\"9EC79C33-EC99-42AB-8353-589FCB2E04DC\"}\n{\"type\":\"integration\"}\n",
		"{\n\"x\":\n1}\n{\"type\":\n\"b\",\"length\":null}\nq", "{}\n{\"typ\\u0065\":\"a\",\"Length\":1}\nxy",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		e, err := Parse(body)
		if !bytes.Equal(body, orig) {
			t.Fatalf("Parse modified its input")
		}
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError", err)
			}
			if pe.Offset < 0 || pe.Offset > len(body) || pe.Cause == nil {
				t.Fatalf("bad ParseError %+v for %d bytes", pe, len(body))
			}
			return
		}
		if !e.Unchanged() {
			t.Fatalf("fresh envelope reports changes")
		}
		_ = CheckSizeLimits(e, DefaultLimits())
		_ = e.RequiresEventID()
		for _, it := range e.Items {
			_ = it.DataCategories()
			_ = it.HeaderString("filename")
		}

		out := e.AppendTo(nil)
		e2, err := Parse(out)
		if err != nil {
			t.Fatalf("AppendTo output does not parse: %v\ninput  %q\noutput %q", err, body, out)
		}
		if e2.Header != e.Header {
			t.Fatalf("header %+v became %+v", e.Header, e2.Header)
		}
		if len(e2.Items) != len(e.Items) {
			t.Fatalf("%d items became %d\ninput  %q\noutput %q", len(e.Items), len(e2.Items), body, out)
		}
		for i := range e.Items {
			a, b := e.Items[i], e2.Items[i]
			if a.Type != b.Type || !bytes.Equal(a.Payload, b.Payload) || !b.explicitLength {
				t.Fatalf("item %d changed: %q %q → %q %q", i, a.Type, a.Payload, b.Type, b.Payload)
			}
			if a.contentType != b.contentType || a.attachmentType != b.attachmentType ||
				a.platform != b.platform || a.itemCount != b.itemCount {
				t.Fatalf("item %d header fields changed: %s → %s", i, a.rawHeader, b.rawHeader)
			}
		}
		if out2 := e2.AppendTo(nil); !bytes.Equal(out, out2) {
			t.Fatalf("AppendTo is not a fixed point:\n%q\n%q", out, out2)
		}

		// Modifications keep the framing valid too.
		if len(e.Items) > 0 {
			e.Items[0].SetPayload([]byte("new\npayload"))
			e.Items[len(e.Items)-1].Type = "changed"
		}
		if err := e.SetEventID("9ec79c33ec9942ab8353589fcb2e04dc"); err != nil {
			t.Fatal(err)
		}
		e3, err := Parse(e.AppendTo(nil))
		if err != nil {
			t.Fatalf("modified envelope does not parse: %v", err)
		}
		if e3.Header.EventID != "9ec79c33ec9942ab8353589fcb2e04dc" || e3.Header.DSN != e.Header.DSN || len(e3.Items) != len(e.Items) {
			t.Fatalf("modified envelope came back as %+v with %d items", e3.Header, len(e3.Items))
		}
		if len(e.Items) > 0 && (string(e3.Items[0].Payload) != "new\npayload" || e3.Items[len(e3.Items)-1].Type != "changed") {
			t.Fatalf("modifications lost")
		}
	})
}

// FuzzFromStoreBody: never panics, fails only with a *StoreError or *SizeError, and a converted
// event is a JSON object that round-trips through AppendTo.
func FuzzFromStoreBody(f *testing.F) {
	seedFixtures(f, func(b []byte) { f.Add(b, false); f.Add(b, true) }, "*.store.json", "*.store.b64zlib")
	for _, s := range []string{"", "{}", `{"a":NaN,"b":-Infinity}`, "eJyrVkpUslIqSSxKL1aqBQAiiAR5", "e30=",
		`{"event_id":"9ec79c33-ec99-42ab-8353-589fcb2e04dc","type":"transaction"}`, `{"x":123456789012345678901234567890}`} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, python bool) {
		client := "raven-js/3.0"
		if python {
			client = "sentry-python/1.0"
		}
		orig := bytes.Clone(body)
		e, err := FromStoreBodyLimit(body, client, 64<<10)
		if !bytes.Equal(body, orig) {
			t.Fatalf("FromStoreBody modified its input")
		}
		if err != nil {
			var se *StoreError
			var ze *SizeError
			if !errors.As(err, &se) && !errors.As(err, &ze) {
				t.Fatalf("error %T %v", err, err)
			}
			return
		}
		payload := e.Items[0].Payload
		if !json.Valid(payload) || len(payload) > 64<<10 {
			t.Fatalf("payload %q is not valid JSON within the limit", payload)
		}
		if _, ok := NormalizeEventID(e.Header.EventID); !ok {
			t.Fatalf("bad event id %q", e.Header.EventID)
		}
		e2, err := Parse(e.AppendTo(nil))
		if err != nil {
			t.Fatalf("converted envelope does not parse: %v", err)
		}
		if e2.Header.EventID != e.Header.EventID || len(e2.Items) != 1 || !bytes.Equal(e2.Items[0].Payload, payload) ||
			e2.Items[0].Type != e.Items[0].Type {
			t.Fatalf("round trip changed the envelope")
		}
	})
}

// FuzzScanner: the JSON scanner accepts exactly what serde_json accepts (see checkScanner).
func FuzzScanner(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,2.5e-3,"x\u00e9",true,null]}`, `[`, `"\ud800"`, "\"\xff\"", `1.`, `{"a":1,}`} {
		f.Add([]byte(s))
	}
	seedFixtures(f, func(b []byte) {
		line, _, _ := bytes.Cut(b, []byte("\n"))
		f.Add(line)
	}, "*.envelope")
	f.Fuzz(func(t *testing.T, in []byte) {
		checkScanner(t, in)
	})
}
