package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// ErrNotAnEvent is returned by Check for a payload that is not a JSON object.
var ErrNotAnEvent = errors.New("filter: payload is not a JSON object")

// event is what the filters read from one item: Relay's Filterable view of
// an event, taken from the SDK's JSON with the schema's leniency. Fields that
// are absent or of an unusable type are left empty, as Relay's annotated
// schema would drop them.
type event struct {
	typ         string // event `type` ("transaction", "csp", …); "" for errors
	transaction string
	release     string
	userIP      string
	url         string
	headers     []header // request headers, in order
	userAgent   string   // the request's User-Agent header (or the report's, for security items)

	logFormatted, logMessage  string
	hasLogentry, hasFormatted bool

	exceptions []exception

	cspBlockedURI, cspSourceFile string
	isCSP                        bool
}

type header struct{ name, value string }

type exception struct {
	typ, value string
	absPaths   []string // frame abs_path values, in stack order (oldest first)
	hasValue   bool
}

// lenient decodes a JSON scalar as Relay's LenientString does: strings as
// they are, numbers and booleans as their text; anything else is absent. It
// never fails, so a value of an unexpected type never aborts the decoding of
// the event around it.
type lenient struct {
	s  string
	ok bool
}

func (l *lenient) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '"':
		if bytes.IndexByte(b, '\\') < 0 {
			l.s, l.ok = string(b[1:len(b)-1]), true // no escapes: the bytes are the string
			return nil
		}
		var s string
		if json.Unmarshal(b, &s) == nil {
			l.s, l.ok = s, true
		}
	case 't', 'f':
		l.s, l.ok = string(b), true
	case 'n', '{', '[':
	default:
		l.s, l.ok = string(b), true
	}
	return nil
}

// The wire shapes read from an event. encoding/json records a value of the
// wrong type (an object where a string belongs, …) as an UnmarshalTypeError
// and goes on with the rest, which is the leniency wanted here: parseEvent
// ignores those errors and fails only on malformed JSON. Polymorphic fields
// have their own never-failing decoders.
type (
	eventJSON struct {
		Type        lenient        `json:"type"`
		Transaction lenient        `json:"transaction"`
		Release     lenient        `json:"release"`
		Logentry    *logentryJSON  `json:"logentry"`
		Message     messageJSON    `json:"message"`
		Exception   exceptionsJSON `json:"exception"`
		Request     *struct {
			URL     lenient     `json:"url"`
			Headers headersJSON `json:"headers"`
		} `json:"request"`
		User *struct {
			IP lenient `json:"ip_address"`
		} `json:"user"`
		CSP *struct {
			BlockedURI lenient `json:"blocked_uri"`
			SourceFile lenient `json:"source_file"`
		} `json:"csp"`
	}
	logentryJSON struct {
		Formatted lenient `json:"formatted"`
		Message   lenient `json:"message"`
	}
	exceptionJSON struct {
		Type       lenient `json:"type"`
		Value      lenient `json:"value"`
		Stacktrace *struct {
			Frames []*struct {
				AbsPath  lenient `json:"abs_path"`
				Filename lenient `json:"filename"`
			} `json:"frames"`
		} `json:"stacktrace"`
	}
)

// messageJSON is the legacy `message`: a string (the formatted message) or
// a logentry object.
type messageJSON struct {
	le  logentryJSON
	set bool
}

func (m *messageJSON) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '{':
		m.set = json.Unmarshal(b, &m.le) == nil
	default:
		_ = m.le.Formatted.UnmarshalJSON(b)
		m.set = m.le.Formatted.ok
	}
	return nil
}

// exceptionsJSON accepts `{"values": [...]}` and a bare list, as Relay's
// Values<Exception> does. A null or non-object entry stays an empty slot, as
// in Relay: the first exception is then "none", not the next one.
type exceptionsJSON []*exceptionJSON

func (e *exceptionsJSON) UnmarshalJSON(b []byte) error {
	var list []*exceptionJSON
	switch {
	case len(b) > 0 && b[0] == '{':
		var v struct {
			Values []*exceptionJSON `json:"values"`
		}
		_ = json.Unmarshal(b, &v) // type errors leave the slots they concern empty
		list = v.Values
	case len(b) > 0 && b[0] == '[':
		_ = json.Unmarshal(b, &list)
	}
	*e = list
	return nil
}

// headersJSON accepts the two shapes SDKs send: an object, or a list of
// [name, value] pairs; order is kept (the first User-Agent wins).
type headersJSON []header

func (h *headersJSON) UnmarshalJSON(b []byte) error {
	*h = parseHeaders(b)
	return nil
}

// parseEvent reads an event or transaction payload.
func parseEvent(payload []byte) (*event, error) {
	var r eventJSON
	if err := json.Unmarshal(payload, &r); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return nil, ErrNotAnEvent // malformed JSON
		}
	}
	if b := bytes.TrimSpace(payload); len(b) == 0 || b[0] != '{' {
		return nil, ErrNotAnEvent // valid JSON, but not an object
	}
	ev := &event{typ: r.Type.s, transaction: r.Transaction.s, release: r.Release.s}
	switch {
	case r.Logentry != nil:
		ev.hasLogentry = true
		ev.logFormatted, ev.logMessage, ev.hasFormatted = r.Logentry.Formatted.s, r.Logentry.Message.s, r.Logentry.Formatted.ok
	case r.Message.set: // normalisation makes the legacy message the logentry
		ev.hasLogentry = true
		ev.logFormatted, ev.logMessage, ev.hasFormatted = r.Message.le.Formatted.s, r.Message.le.Message.s, r.Message.le.Formatted.ok
	}
	ev.exceptions = make([]exception, 0, len(r.Exception))
	for _, e := range r.Exception {
		if e == nil {
			ev.exceptions = append(ev.exceptions, exception{})
			continue
		}
		ex := exception{typ: e.Type.s, value: e.Value.s, hasValue: e.Value.ok}
		if e.Stacktrace != nil {
			for _, f := range e.Stacktrace.Frames {
				// Normalisation fills a missing abs_path from filename (the
				// JavaScript SDKs send only filename).
				switch {
				case f == nil:
					ex.absPaths = append(ex.absPaths, "")
				case f.AbsPath.ok:
					ex.absPaths = append(ex.absPaths, f.AbsPath.s)
				default:
					ex.absPaths = append(ex.absPaths, f.Filename.s)
				}
			}
		}
		ev.exceptions = append(ev.exceptions, ex)
	}
	if r.Request != nil {
		ev.url = r.Request.URL.s
		ev.headers = r.Request.Headers
		ev.userAgent = ev.header("User-Agent")
	}
	if r.User != nil {
		ev.userIP = r.User.IP.s
	}
	if r.CSP != nil {
		ev.cspBlockedURI, ev.cspSourceFile = r.CSP.BlockedURI.s, r.CSP.SourceFile.s
	}
	ev.isCSP = ev.typ == "csp"
	return ev, nil
}

// header returns the first value of the request header name (case-insensitive).
func (ev *event) header(name string) string {
	for _, h := range ev.headers {
		if strings.EqualFold(h.name, name) {
			return h.value
		}
	}
	return ""
}

// parseHeaders decodes request headers given as an object or as a list of
// pairs; anything else (or malformed) yields none.
func parseHeaders(b []byte) []header {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '{':
		// Keep the order of the object's members: decode with a Decoder.
		dec := json.NewDecoder(bytes.NewReader(b))
		if _, err := dec.Token(); err != nil {
			return nil
		}
		var out []header
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return out
			}
			var v lenient
			if err := dec.Decode(&v); err != nil {
				return out
			}
			if name, ok := k.(string); ok && v.ok {
				out = append(out, header{name, v.s})
			}
		}
		return out
	case '[':
		var pairs [][]lenient
		_ = json.Unmarshal(b, &pairs) // a malformed pair is skipped, the rest kept
		out := make([]header, 0, len(pairs))
		for _, p := range pairs {
			if len(p) == 2 && p[0].ok && p[1].ok {
				out = append(out, header{p[0].s, p[1].s})
			}
		}
		return out
	}
	return nil
}

// parseSecurity reads a browser's security report (a `security` or
// `raw_security` item): the classic `{"csp-report": {...}}` body or the
// Reporting API's `csp-violation` report (one object or a list). Other
// report kinds (HPKP, Expect-CT, …) yield an event that only the client-IP
// and release filters can match.
func parseSecurity(payload []byte, userAgent string) (*event, error) {
	b := bytes.TrimSpace(payload)
	if len(b) == 0 || (b[0] != '{' && b[0] != '[') {
		return nil, ErrNotAnEvent
	}
	ev := &event{userAgent: userAgent}
	if b[0] == '[' {
		var list []json.RawMessage
		if json.Unmarshal(b, &list) != nil {
			return nil, ErrNotAnEvent
		}
		if len(list) == 0 {
			return ev, nil
		}
		b = list[0]
	}
	var r struct {
		CSPReport json.RawMessage `json:"csp-report"`
		Type      lenient         `json:"type"`
		URL       lenient         `json:"url"`
		Body      json.RawMessage `json:"body"`
	}
	if !decodeObject(b, &r) {
		return nil, ErrNotAnEvent
	}
	var classic struct {
		DocumentURI lenient `json:"document-uri"`
		BlockedURI  lenient `json:"blocked-uri"`
		SourceFile  lenient `json:"source-file"`
	}
	if decodeObject(r.CSPReport, &classic) {
		ev.isCSP = true
		ev.typ = "csp"
		ev.url = classic.DocumentURI.s
		ev.cspBlockedURI, ev.cspSourceFile = classic.BlockedURI.s, classic.SourceFile.s
		return ev, nil
	}
	var modern struct {
		DocumentURL lenient `json:"documentURL"`
		BlockedURL  lenient `json:"blockedURL"`
		SourceFile  lenient `json:"sourceFile"`
	}
	if r.Type.s == "csp-violation" && decodeObject(r.Body, &modern) {
		ev.isCSP = true
		ev.typ = "csp"
		ev.url = modern.DocumentURL.s
		if ev.url == "" {
			ev.url = r.URL.s
		}
		ev.cspBlockedURI, ev.cspSourceFile = modern.BlockedURL.s, modern.SourceFile.s
	}
	return ev, nil
}

// decodeObject unmarshals b into v when b is a JSON object; a value of any
// other type leaves v untouched and reports false. Type mismatches inside
// are tolerated (lenient fields).
func decodeObject(b json.RawMessage, v any) bool {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	err := json.Unmarshal(b, v)
	var te *json.UnmarshalTypeError
	return err == nil || errors.As(err, &te)
}
