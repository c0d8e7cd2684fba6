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
// they are, numbers and booleans as their text; anything else is absent.
type lenient struct {
	s  string
	ok bool
}

func (l *lenient) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '"':
		var s string
		if json.Unmarshal(b, &s) == nil {
			l.s, l.ok = s, true
		}
	case 't', 'f':
		l.s, l.ok = string(b), true
	case 'n':
	case '{', '[':
	default:
		l.s, l.ok = string(b), true
	}
	return nil
}

// raw decodes into a json.RawMessage without ever failing on its type.
type rawEvent struct {
	Type        lenient         `json:"type"`
	Transaction lenient         `json:"transaction"`
	Release     lenient         `json:"release"`
	Logentry    json.RawMessage `json:"logentry"`
	Message     json.RawMessage `json:"message"`
	Exception   json.RawMessage `json:"exception"`
	Request     json.RawMessage `json:"request"`
	User        json.RawMessage `json:"user"`
	CSP         json.RawMessage `json:"csp"`
}

// decodeObject unmarshals b into v when b is a JSON object; a value of any
// other type (or malformed) leaves v untouched. Type mismatches inside are
// tolerated field by field through lenient and json.RawMessage.
func decodeObject(b json.RawMessage, v any) bool {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	return json.Unmarshal(b, v) == nil
}

// parseEvent reads an event or transaction payload.
func parseEvent(payload []byte) (*event, error) {
	var r rawEvent
	if !decodeObject(payload, &r) {
		// A top-level object whose known fields have unexpected shapes still
		// decodes (every field is lenient); this is a non-object or bad JSON.
		return nil, ErrNotAnEvent
	}
	ev := &event{typ: r.Type.s, transaction: r.Transaction.s, release: r.Release.s}

	var le struct {
		Formatted lenient `json:"formatted"`
		Message   lenient `json:"message"`
	}
	switch {
	case decodeObject(r.Logentry, &le):
		ev.hasLogentry = true
	case decodeObject(r.Message, &le): // legacy: `message` as a logentry object
		ev.hasLogentry = true
	default:
		// `message` as a plain string: normalisation makes it the logentry's
		// formatted text.
		var m lenient
		if json.Unmarshal(r.Message, &m) == nil && m.ok {
			le.Formatted, ev.hasLogentry = m, true
		}
	}
	ev.logFormatted, ev.logMessage, ev.hasFormatted = le.Formatted.s, le.Message.s, le.Formatted.ok

	ev.exceptions = parseExceptions(r.Exception)

	var req struct {
		URL     lenient         `json:"url"`
		Headers json.RawMessage `json:"headers"`
	}
	if decodeObject(r.Request, &req) {
		ev.url = req.URL.s
		ev.headers = parseHeaders(req.Headers)
		ev.userAgent = ev.header("User-Agent")
	}
	var user struct {
		IP lenient `json:"ip_address"`
	}
	if decodeObject(r.User, &user) {
		ev.userIP = user.IP.s
	}
	var csp struct {
		BlockedURI lenient `json:"blocked_uri"`
		SourceFile lenient `json:"source_file"`
	}
	if decodeObject(r.CSP, &csp) {
		ev.cspBlockedURI, ev.cspSourceFile = csp.BlockedURI.s, csp.SourceFile.s
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

// parseExceptions accepts `{"values":[...]}` and a bare list, as Relay's
// Values<Exception> does.
func parseExceptions(b json.RawMessage) []exception {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	var list []json.RawMessage
	if b[0] == '{' {
		var v struct {
			Values json.RawMessage `json:"values"`
		}
		if !decodeObject(b, &v) {
			return nil
		}
		b = bytes.TrimSpace(v.Values)
	}
	if len(b) == 0 || b[0] != '[' || json.Unmarshal(b, &list) != nil {
		return nil
	}
	out := make([]exception, 0, len(list))
	for _, item := range list {
		var e struct {
			Type       lenient         `json:"type"`
			Value      lenient         `json:"value"`
			Stacktrace json.RawMessage `json:"stacktrace"`
		}
		if !decodeObject(item, &e) {
			// Relay keeps a null/invalid entry as an empty slot: the first
			// exception is then "none", not the next one.
			out = append(out, exception{})
			continue
		}
		ex := exception{typ: e.Type.s, value: e.Value.s, hasValue: e.Value.ok}
		var st struct {
			Frames []json.RawMessage `json:"frames"`
		}
		if decodeObject(e.Stacktrace, &st) {
			for _, f := range st.Frames {
				// Normalisation fills a missing abs_path from filename (the
				// JavaScript SDKs send only filename).
				var fr struct {
					AbsPath  lenient `json:"abs_path"`
					Filename lenient `json:"filename"`
				}
				switch {
				case !decodeObject(f, &fr):
					ex.absPaths = append(ex.absPaths, "")
				case fr.AbsPath.ok:
					ex.absPaths = append(ex.absPaths, fr.AbsPath.s)
				default:
					ex.absPaths = append(ex.absPaths, fr.Filename.s)
				}
			}
		}
		out = append(out, ex)
	}
	return out
}

// parseHeaders accepts the two shapes SDKs send: an object, or a list of
// [name, value] pairs.
func parseHeaders(b json.RawMessage) []header {
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
		if json.Unmarshal(b, &pairs) != nil {
			return nil
		}
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
