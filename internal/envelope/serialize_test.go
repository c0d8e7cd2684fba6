package envelope

import (
	"strings"
	"testing"
)

// TestAppendTo checks the exact bytes AppendTo writes after various modifications.
func TestAppendTo(t *testing.T) {
	const id = "9ec79c33ec9942ab8353589fcb2e04dc"
	tests := []struct {
		name   string
		in     string
		modify func(t *testing.T, e *Envelope)
		want   string
	}{
		{
			name: "explicit lengths and final newline: identical",
			in:   `{"event_id":"` + id + `","x":1}` + "\n" + `{"type":"event","length":2}` + "\n{}\n",
			want: `{"event_id":"` + id + `","x":1}` + "\n" + `{"type":"event","length":2}` + "\n{}\n",
		},
		{
			name: "missing length added after type, final newline added",
			in:   "{}\n" + `{"type":"attachment","filename":"a.txt"}` + "\nhello",
			want: "{}\n" + `{"type":"attachment","length":5,"filename":"a.txt"}` + "\nhello\n",
		},
		{
			name: "type not first: length still follows it",
			in:   "{}\n" + `{"content_type":"text/plain", "type" : "attachment" , "z":[1, 2]}` + "\nhi",
			want: "{}\n" + `{"content_type":"text/plain","type":"attachment","length":2,"z":[1, 2]}` + "\nhi\n",
		},
		{
			name: "length null replaced in place",
			in:   "{}\n" + `{"length":null,"type":"a"}` + "\nabc\n",
			want: "{}\n" + `{"length":3,"type":"a"}` + "\nabc\n",
		},
		{
			name: "header-only envelope",
			in:   `{"sdk":{"name":"x"}}`,
			want: `{"sdk":{"name":"x"}}` + "\n",
		},
		{
			name: "leading whitespace dropped",
			in:   "\n\n  {}\n" + `{"type":"a","length":1}` + "\nx",
			want: "{}\n" + `{"type":"a","length":1}` + "\nx\n",
		},
		{
			name: "multi-line headers compacted",
			in:   "{\n \"sdk\": {\"name\": \"a b\",\n \"v\":1}\n}\n{\"type\":\"a\",\n\"length\":1,\"o\":{\n\"k\":\"v\\n\"}}\nx",
			want: `{"sdk":{"name":"a b","v":1}}` + "\n" + `{"type":"a","length":1,"o":{"k":"v\n"}}` + "\nx\n",
		},
		{
			name: "SetPayload on a length item",
			in:   "{}\n" + `{"type":"event","length":2,"content_type":"application/json"}` + "\n{}\n",
			modify: func(t *testing.T, e *Envelope) {
				e.Items[0].SetPayload([]byte(`{"scrubbed":true}`))
			},
			want: "{}\n" + `{"type":"event","length":17,"content_type":"application/json"}` + "\n" + `{"scrubbed":true}` + "\n",
		},
		{
			name: "SetPayload on an implicit item with newlines",
			in:   "{}\n" + `{"type":"event"}` + "\n{}\n",
			modify: func(t *testing.T, e *Envelope) {
				e.Items[0].SetPayload([]byte("{\n}"))
			},
			want: "{}\n" + `{"type":"event","length":3}` + "\n{\n}\n",
		},
		{
			name: "payload assigned directly still gets its length",
			in:   "{}\n" + `{"type":"event","length":2}` + "\n{}\n",
			modify: func(t *testing.T, e *Envelope) {
				e.Items[0].Payload = []byte("[1,2]")
			},
			want: "{}\n" + `{"type":"event","length":5}` + "\n[1,2]\n",
		},
		{
			name: "type changed",
			in:   "{}\n" + `{"type":"event","length":2,"k":"v"}` + "\n{}\n",
			modify: func(t *testing.T, e *Envelope) {
				e.Items[0].Type = `odd"type`
			},
			want: "{}\n" + `{"type":"odd\"type","length":2,"k":"v"}` + "\n{}\n",
		},
		{
			name: "SetEventID replaces the value, keeps the other keys in place",
			in:   `{"sent_at":"2026-11-22T18:03:24.132Z","event_id":"{9ec79c33-ec99-42ab-8353-589fcb2e04dc}","sdk":{"name":"x"}}`,
			modify: func(t *testing.T, e *Envelope) {
				if err := e.SetEventID("A1B2C3D4-0000-4000-8000-000000000001"); err != nil {
					t.Fatal(err)
				}
			},
			want: `{"sent_at":"2026-11-22T18:03:24.132Z","event_id":"a1b2c3d4000040008000000000000001","sdk":{"name":"x"}}` + "\n",
		},
		{
			name: "SetEventID adds event_id first",
			in:   `{"sdk":{"name":"x"},"trace":{"trace_id":"t"}}` + "\n" + `{"type":"event"}` + "\n{}",
			modify: func(t *testing.T, e *Envelope) {
				if err := e.SetEventID(id); err != nil {
					t.Fatal(err)
				}
			},
			want: `{"event_id":"` + id + `","sdk":{"name":"x"},"trace":{"trace_id":"t"}}` + "\n" + `{"type":"event","length":2}` + "\n{}\n",
		},
		{
			name: "SetEventID on an empty header",
			in:   "{}\n",
			modify: func(t *testing.T, e *Envelope) {
				if err := e.SetEventID(id); err != nil {
					t.Fatal(err)
				}
			},
			want: `{"event_id":"` + id + `"}` + "\n",
		},
		{
			name: "items filtered and added",
			in:   "{}\n" + `{"type":"a"}` + "\n1\n" + `{"type":"b"}` + "\n2\n" + `{"type":"c"}` + "\n3",
			modify: func(t *testing.T, e *Envelope) {
				e.Items = []*Item{e.Items[2], NewItem("client_report", []byte(`{"x":1}`))}
			},
			want: "{}\n" + `{"type":"c","length":1}` + "\n3\n" + `{"type":"client_report","length":7}` + "\n" + `{"x":1}` + "\n",
		},
		{
			name: "item built as a struct literal",
			in:   "{}",
			modify: func(t *testing.T, e *Envelope) {
				e.Items = append(e.Items, &Item{Type: "log", Payload: []byte("x")})
			},
			want: "{}\n" + `{"type":"log","length":1}` + "\nx\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if tt.modify != nil {
				tt.modify(t, e)
			}
			got := string(e.AppendTo([]byte("prefix:")))
			if !strings.HasPrefix(got, "prefix:") {
				t.Fatalf("AppendTo dropped dst: %q", got)
			}
			if got = got[len("prefix:"):]; got != tt.want {
				t.Errorf("AppendTo:\n got %q\nwant %q", got, tt.want)
			}
			if _, err := Parse([]byte(got)); err != nil {
				t.Errorf("output does not parse: %v", err)
			}
		})
	}
}

func TestSetEventIDRejectsNonUUID(t *testing.T) {
	e, err := Parse([]byte(`{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "abc", "9ec79c33ec9942ab8353589fcb2e04dg", "9ec79c33-ec99-42ab-8353_589fcb2e04dc"} {
		if err := e.SetEventID(bad); err == nil {
			t.Errorf("SetEventID(%q) succeeded", bad)
		}
	}
	if e.Header.EventID != "9ec79c33ec9942ab8353589fcb2e04dc" || !e.Unchanged() {
		t.Errorf("a rejected SetEventID changed the envelope")
	}
}

func TestNewEnvelope(t *testing.T) {
	e := newEnvelope()
	if err := e.SetEventID(NewEventID()); err != nil {
		t.Fatal(err)
	}
	e.Items = append(e.Items, NewItem("event", []byte(`{"message":"hi"}`)), NewItem("attachment", []byte("a\nb")))
	out := e.AppendTo(nil)
	checkRoundTrip(t, e, out)
	want := `{"event_id":"` + e.Header.EventID + `"}` + "\n" +
		`{"type":"event","length":16}` + "\n" + `{"message":"hi"}` + "\n" +
		`{"type":"attachment","length":3}` + "\na\nb\n"
	if string(out) != want {
		t.Errorf("got %q\nwant %q", out, want)
	}
}

func TestAppendJSONString(t *testing.T) {
	tests := map[string]string{
		"plain":          `"plain"`,
		`q"b\s`:          `"q\"b\\s"`,
		"nl\n\r\t":       `"nl\n\r\t"`,
		"\x01\x1f":       `"\u0001\u001f"`,
		"é€😀":            `"é€😀"`,
		"bad\xffutf8":    `"bad\ufffdutf8"`,
		"":               `""`,
		"</script>&amp;": `"</script>&amp;"`,
	}
	for in, want := range tests {
		if got := string(appendJSONString(nil, in)); got != want {
			t.Errorf("appendJSONString(%q) = %s, want %s", in, got, want)
		}
	}
}
