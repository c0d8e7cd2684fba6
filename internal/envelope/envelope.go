// Package envelope is the one place that knows Sentry's envelope wire format: it parses and
// validates envelopes exactly as Sentry Relay does (relay-protocol.md §3.1), serialises them back
// with Relay's framing, maps items to rate-limit data categories (§3.4), checks the per-item
// size limits (§3.5), converts store-endpoint events into envelopes (§1.2) and parses DSNs.
//
// It sits on the hot path of both ingest and worker, so Parse does not copy payloads: every
// Item.Payload and the raw headers alias the buffer given to Parse. That buffer must therefore
// not be modified or reused while the Envelope (or any payload taken from it) is in use, and a
// payload must be replaced with Item.SetPayload, never edited in place.
package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
)

// Relay's envelope error texts (relay-server/src/envelope: EnvelopeError). A *ParseError wraps
// exactly one of these, so callers can test with errors.Is.
var (
	ErrMissingHeader     = errors.New("missing envelope header")
	ErrInvalidHeader     = errors.New("invalid envelope header")
	ErrMissingNewline    = errors.New("missing newline after header or payload")
	ErrInvalidItemHeader = errors.New("invalid item header")
	ErrUnexpectedEOF     = errors.New("unexpected end of file")
	// ErrInternalItems: the envelope carries an item type that only Relay itself may create
	// (`integration`). Relay answers 400 with exactly this text as the detail, not wrapped in
	// "invalid event envelope" (endpoints/common.rs: BadStoreRequest::InternalEnvelope).
	ErrInternalItems = errors.New("envelope contains internal items")
)

// ParseError is the error Parse returns. Error() is "<cause>" or "<cause>: <detail>".
type ParseError struct {
	Cause  error  // one of the Err* variables above
	Detail string // serde-like reason behind Cause ("missing field `type` at line 1 column 16"), or ""
	Offset int    // byte offset in the parsed body where the problem was found
}

func (e *ParseError) Error() string {
	if e.Detail == "" {
		return e.Cause.Error()
	}
	return e.Cause.Error() + ": " + e.Detail
}

func (e *ParseError) Unwrap() error { return e.Cause }

// Causes returns the texts Relay lists as `causes` of its 400 answer
// (`{"detail":"invalid event envelope","causes":[...]}`): the cause, then the detail if any.
func (e *ParseError) Causes() []string {
	if e.Detail == "" {
		return []string{e.Cause.Error()}
	}
	return []string{e.Cause.Error(), e.Detail}
}

// Envelope is a parsed (or constructed) envelope.
type Envelope struct {
	Header Header  // read-only view of the header; change it with SetEventID
	Items  []*Item // may be filtered or extended by the caller; AppendTo writes what is here

	rawHeader   []byte // header JSON object: as received, or rebuilt by SetEventID
	headerDirty bool   // rawHeader no longer matches the received bytes
	body        []byte // the buffer given to Parse; nil for constructed envelopes
	parsedItems int    // len(Items) right after Parse

	// Most envelopes carry one to three items: keep the first ones inside the Envelope so that a
	// typical Parse allocates once for the envelope and once per extra item.
	inline [2]Item
	ptrs   [3]*Item
}

// Header holds the envelope-header fields the relay needs. Unknown keys are not decoded; they
// travel in the raw header bytes and are written back unchanged.
type Header struct {
	EventID string // normalised to 32 lowercase hex; "" when absent or null
	DSN     string // as sent (tunnel mode authenticates with it); "" when absent or null
	Origin  string // as sent; Relay rejects an envelope whose origin differs from the request's
}

// Item is one envelope item.
type Item struct {
	// Type is the item type as sent (`event`, `attachment`, … or an unknown type, kept as is).
	// Changing it makes AppendTo rewrite the item header's `type`.
	Type string
	// Payload aliases the buffer given to Parse unless replaced with SetPayload.
	Payload []byte

	rawHeader      []byte // item header JSON object as received (or built by newItem)
	origType       string // Type as parsed
	origPayload    []byte // Payload as parsed, to notice a replacement by assignment
	contentType    string
	attachmentType string
	platform       string
	itemCount      int64 // -1 when absent
	explicitLength bool  // the header had a non-null `length`
	lengthMember   bool  // the header had a `length` key at all (possibly null)
	replaced       bool  // SetPayload was called
	owner          *Envelope
	index          int // position in owner.Items right after Parse
}

// Parse parses an envelope per relay-protocol.md §3.1, as Relay's parser does:
//
//	Envelope = Headers { "\n" Item } [ "\n" ]      Item = Headers "\n" Payload
//
// Each header is one JSON object read like serde_json's streaming reader (leading whitespace
// skipped; the object ends where its JSON ends and must be followed by "\n" or the end of
// input). An item with `length` has exactly that many payload bytes, followed by "\n" or the
// end; without it the payload runs to the next "\n". "\r" is payload data. An envelope with only
// a header is valid. Items of the internal type `integration` are rejected (ErrInternalItems),
// after the whole envelope parsed, as Relay does.
//
// Nothing is allocated in proportion to a claimed `length`; payloads alias body.
func Parse(body []byte) (*Envelope, error) {
	e := &Envelope{body: body}
	e.Items = e.ptrs[:0]

	start := skipSpace(body, 0)
	if start >= len(body) {
		return nil, &ParseError{Cause: ErrMissingHeader, Offset: start}
	}
	end, perr := e.parseHeader(body, start)
	if perr != nil {
		return nil, perr
	}
	if end < len(body) && body[end] != '\n' {
		return nil, &ParseError{Cause: ErrMissingNewline, Offset: end}
	}

	internalAt := -1
	for off := end + 1; off < len(body); {
		var it *Item
		if n := len(e.Items); n < len(e.inline) {
			it = &e.inline[n]
		} else {
			it = new(Item)
		}
		itemStart := skipSpace(body, off)
		next, perr := parseItem(body, off, it)
		if perr != nil {
			return nil, perr
		}
		if it.Type == "integration" && internalAt < 0 {
			internalAt = itemStart
		}
		it.owner, it.index = e, len(e.Items)
		e.Items = append(e.Items, it)
		off = next
	}
	if internalAt >= 0 {
		return nil, &ParseError{Cause: ErrInternalItems, Offset: internalAt}
	}
	e.parsedItems = len(e.Items)
	return e, nil
}

// envelope-header keys that Relay decodes with a type (EnvelopeHeaders + RequestMeta); a wrong
// type or value in any of them makes Relay reject the envelope.
const (
	hEventID = 1 << iota
	hDSN
	hOrigin
	hClient
	hVersion
	hRemoteAddr
	hForwardedFor
	hUserAgent
	hNoCache
	hRetention
	hDownsampledRetention
	hSentAt
)

// parseHeader parses the envelope header object at body[start] and returns the index past it.
func (e *Envelope) parseHeader(body []byte, start int) (int, *ParseError) {
	it := objIter{b: body}
	fail := func(msg string, pos int) (int, *ParseError) {
		return 0, headerError(ErrInvalidHeader, body, start, msg, pos)
	}
	if !it.open(start) {
		return fail(it.err.msg, it.err.pos)
	}
	seen := 0
	for it.next() {
		var bit int
		var key string
		switch {
		case it.keyIs("event_id"):
			bit, key = hEventID, "event_id"
		case it.keyIs("dsn"):
			bit, key = hDSN, "dsn"
		case it.keyIs("origin"):
			bit, key = hOrigin, "origin"
		case it.keyIs("client"):
			bit, key = hClient, "client"
		case it.keyIs("version"):
			bit, key = hVersion, "version"
		case it.keyIs("remote_addr"):
			bit, key = hRemoteAddr, "remote_addr"
		case it.keyIs("forwarded_for"):
			bit, key = hForwardedFor, "forwarded_for"
		case it.keyIs("user_agent"):
			bit, key = hUserAgent, "user_agent"
		case it.keyIs("no_cache"):
			bit, key = hNoCache, "no_cache"
		case it.keyIs("retention"):
			bit, key = hRetention, "retention"
		case it.keyIs("downsampled_retention"):
			bit, key = hDownsampledRetention, "downsampled_retention"
		case it.keyIs("sent_at"):
			bit, key = hSentAt, "sent_at"
		default:
			continue // unknown keys (sdk, trace, …) are kept in the raw bytes
		}
		if seen&bit != 0 {
			return fail("duplicate field `"+key+"`", it.memberStart)
		}
		seen |= bit
		v := body[it.valStart:it.valEnd]
		if msg := e.headerField(bit, v); msg != "" {
			return fail(msg, it.valStart)
		}
	}
	if it.err != nil {
		return fail(it.err.msg, it.err.pos)
	}
	e.rawHeader = body[start:it.end]
	return it.end, nil
}

// headerField decodes or type-checks one known envelope-header value; it returns a reason on
// failure.
func (e *Envelope) headerField(bit int, v []byte) string {
	null := isNull(v)
	switch bit {
	case hEventID:
		if null {
			return ""
		}
		s, ok := jsonStringValue(v)
		if !ok {
			return fmt.Sprintf("invalid type: %s, expected a UUID string (event_id)", jsonKind(v[0]))
		}
		id, ok := NormalizeEventID(s)
		if !ok {
			return fmt.Sprintf("invalid event_id %q: not a UUID", s)
		}
		e.Header.EventID = id
	case hDSN:
		if null {
			return ""
		}
		var s string
		var d DSN
		var err error
		if raw, escaped, ok := rawString(v); !ok {
			return fmt.Sprintf("invalid type: %s, expected a DSN string (dsn)", jsonKind(v[0]))
		} else if !escaped {
			s, d, err = parseDSNBytes(raw) // the common case: no string built on a cache hit
		} else if s, ok = jsonStringValue(v); !ok {
			return fmt.Sprintf("invalid type: %s, expected a DSN string (dsn)", jsonKind(v[0]))
		} else {
			d, err = ParseDSNCached(s)
		}
		if err != nil {
			return err.Error()
		}
		if len(d.PublicKey) != 32 {
			// Relay's PartialDsn parses the key as a ProjectKey: 32 ASCII characters.
			return "invalid dsn: the public key must be 32 characters"
		}
		e.Header.DSN = s
	case hOrigin:
		if null {
			return ""
		}
		s, ok := jsonStringValue(v)
		if !ok {
			return fmt.Sprintf("invalid type: %s, expected a URL string (origin)", jsonKind(v[0]))
		}
		if u, err := url.Parse(s); err != nil || u.Scheme == "" {
			return fmt.Sprintf("invalid origin %q: not an absolute URL", s)
		}
		e.Header.Origin = s
	case hClient, hUserAgent:
		if null {
			return ""
		}
		if _, _, ok := rawString(v); !ok {
			return fmt.Sprintf("invalid type: %s, expected a string", jsonKind(v[0]))
		}
	case hForwardedFor:
		if _, _, ok := rawString(v); !ok {
			return fmt.Sprintf("invalid type: %s, expected a string (forwarded_for)", jsonKind(v[0]))
		}
	case hRemoteAddr:
		if null {
			return ""
		}
		s, ok := jsonStringValue(v)
		if !ok {
			return fmt.Sprintf("invalid type: %s, expected an IP address string (remote_addr)", jsonKind(v[0]))
		}
		if _, err := netip.ParseAddr(s); err != nil {
			return fmt.Sprintf("invalid IP address syntax (remote_addr %q)", s)
		}
	case hVersion:
		if n, msg := parseU32(v); msg != "" || n > 0xffff {
			return fmt.Sprintf("invalid value for version: %s, expected u16", v)
		}
	case hRetention, hDownsampledRetention:
		if null {
			return ""
		}
		if n, msg := parseU32(v); msg != "" || n > 0xffff {
			return fmt.Sprintf("invalid value: %s, expected u16", v)
		}
	case hNoCache:
		if string(v) != "true" && string(v) != "false" {
			return fmt.Sprintf("invalid type: %s, expected a boolean (no_cache)", jsonKind(v[0]))
		}
	case hSentAt:
		if null {
			return ""
		}
		raw, escaped, ok := rawString(v)
		if !ok {
			return fmt.Sprintf("invalid type: %s, expected an RFC 3339 timestamp (sent_at)", jsonKind(v[0]))
		}
		if escaped { // never sent by SDKs; decode rather than reject
			s, _ := jsonStringValue(v)
			raw = []byte(s)
		}
		if !validTimestamp(raw) {
			return fmt.Sprintf("input contains invalid characters (sent_at %s)", v)
		}
	}
	return ""
}

// validTimestamp accepts the timestamps chrono's DateTime<Utc> deserialiser (Relay's sent_at)
// accepts: RFC 3339 in chrono's relaxed form — `T`, `t` or spaces between date and time, an
// optional fraction, optional spaces before the zone, `Z`/`z` or ±HH:MM (colon optional) — with
// the fields in range (a leap second 60 is allowed). It works on the raw JSON string bytes, so
// checking the sent_at of every envelope allocates nothing.
func validTimestamp(b []byte) bool {
	num := func(i, n int) (int, bool) {
		if i+n > len(b) {
			return 0, false
		}
		v := 0
		for _, c := range b[i : i+n] {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 2)
	day, ok3 := num(8, 2)
	if !ok1 || !ok2 || !ok3 || b[4] != '-' || b[7] != '-' || month < 1 || month > 12 || day < 1 ||
		day > daysIn(month, year) || len(b) < 11 {
		return false
	}
	i := 10
	switch b[i] {
	case 'T', 't':
		i++
	case ' ':
		for i < len(b) && b[i] == ' ' {
			i++
		}
	default:
		return false
	}
	hour, ok1 := num(i, 2)
	minute, ok2 := num(i+3, 2)
	sec, ok3 := num(i+6, 2)
	if !ok1 || !ok2 || !ok3 || b[i+2] != ':' || b[i+5] != ':' || hour > 23 || minute > 59 || sec > 60 {
		return false
	}
	i += 8
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	for i < len(b) && b[i] == ' ' {
		i++
	}
	if i >= len(b) {
		return false
	}
	switch b[i] {
	case 'Z', 'z':
		return i+1 == len(b)
	case '+', '-':
		oh, ok := num(i+1, 2)
		if !ok || oh > 23 {
			return false
		}
		i += 3
		if i < len(b) && b[i] == ':' {
			i++
		}
		om, ok := num(i, 2)
		return ok && om <= 59 && i+2 == len(b)
	}
	return false
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// headerError builds a ParseError for a problem in the JSON header starting at body[start]; the
// detail carries serde's "at line L column C", counted from the header's start.
func headerError(cause error, body []byte, start int, msg string, pos int) *ParseError {
	line, col := lineCol(body[start:], pos-start)
	return &ParseError{Cause: cause, Detail: fmt.Sprintf("%s at line %d column %d", msg, line, col), Offset: pos}
}

// item-header keys Relay decodes with a type (ItemHeaders).
const (
	iType = 1 << iota
	iLength
	iItemCount
	iAttachmentType
	iContentType
	iFilename
	iPlatform
	iRoutingHint
	iMetricsExtracted
	iSpansExtracted
	iFullyNormalized
	iSampled
)

// parseItem parses the item whose header starts at or after body[off] into it and returns the
// offset of the next item.
func parseItem(body []byte, off int, it *Item) (int, *ParseError) {
	start := skipSpace(body, off)
	if start >= len(body) {
		// Only whitespace where an item header should be: serde's stream yields nothing.
		return 0, &ParseError{Cause: ErrUnexpectedEOF, Offset: start}
	}
	fail := func(msg string, pos int) (int, *ParseError) {
		return 0, headerError(ErrInvalidItemHeader, body, start, msg, pos)
	}
	iter := objIter{b: body}
	if !iter.open(start) {
		return fail(iter.err.msg, iter.err.pos)
	}
	it.itemCount = -1
	var length uint32
	seen := 0
	for iter.next() {
		var bit int
		var key string
		switch {
		case iter.keyIs("type"):
			bit, key = iType, "type"
		case iter.keyIs("length"):
			bit, key = iLength, "length"
		case iter.keyIs("item_count"):
			bit, key = iItemCount, "item_count"
		case iter.keyIs("attachment_type"):
			bit, key = iAttachmentType, "attachment_type"
		case iter.keyIs("content_type"):
			bit, key = iContentType, "content_type"
		case iter.keyIs("filename"):
			bit, key = iFilename, "filename"
		case iter.keyIs("platform"):
			bit, key = iPlatform, "platform"
		case iter.keyIs("routing_hint"):
			bit, key = iRoutingHint, "routing_hint"
		case iter.keyIs("metrics_extracted"):
			bit, key = iMetricsExtracted, "metrics_extracted"
		case iter.keyIs("spans_extracted"):
			bit, key = iSpansExtracted, "spans_extracted"
		case iter.keyIs("fully_normalized"):
			bit, key = iFullyNormalized, "fully_normalized"
		case iter.keyIs("sampled"):
			bit, key = iSampled, "sampled"
		default:
			continue
		}
		if seen&bit != 0 {
			return fail("duplicate field `"+key+"`", iter.memberStart)
		}
		seen |= bit
		v := body[iter.valStart:iter.valEnd]
		null := isNull(v)
		var msg string
		switch bit {
		case iType:
			raw, escaped, ok := rawString(v)
			switch {
			case !ok:
				msg = fmt.Sprintf("invalid type: %s, expected an envelope item type", jsonKind(v[0]))
			case escaped:
				it.Type, _ = jsonStringValue(v)
			default:
				it.Type = internItemType(raw)
			}
		case iLength:
			it.lengthMember = true
			if !null {
				var m string
				if length, m = parseU32(v); m != "" {
					msg = m
				} else {
					it.explicitLength = true
				}
			}
		case iItemCount:
			if !null {
				n, m := parseU32(v)
				msg = m
				it.itemCount = int64(n)
			}
		case iAttachmentType, iContentType, iFilename, iPlatform:
			if null {
				break
			}
			raw, escaped, ok := rawString(v)
			if !ok {
				msg = fmt.Sprintf("invalid type: %s, expected a string (%s)", jsonKind(v[0]), key)
				break
			}
			var s string
			if escaped {
				s, _ = jsonStringValue(v)
			} else {
				s = internHeaderValue(raw)
			}
			switch bit {
			case iAttachmentType:
				it.attachmentType = s
			case iContentType:
				it.contentType = s
			case iPlatform:
				it.platform = s
			}
		case iRoutingHint:
			if null {
				break
			}
			if s, ok := jsonStringValue(v); !ok {
				msg = fmt.Sprintf("invalid type: %s, expected a UUID string (routing_hint)", jsonKind(v[0]))
			} else if _, ok := NormalizeEventID(s); !ok {
				msg = fmt.Sprintf("invalid routing_hint %q: not a UUID", s)
			}
		default: // boolean flags
			if string(v) != "true" && string(v) != "false" {
				msg = fmt.Sprintf("invalid type: %s, expected a boolean (%s)", jsonKind(v[0]), key)
			}
		}
		if msg != "" {
			return fail(msg, iter.valStart)
		}
	}
	if iter.err != nil {
		return fail(iter.err.msg, iter.err.pos)
	}
	if seen&iType == 0 {
		return fail("missing field `type`", iter.end-1)
	}
	it.origType = it.Type
	it.rawHeader = body[start:iter.end]

	headerEnd := iter.end
	if headerEnd < len(body) && body[headerEnd] != '\n' {
		return 0, &ParseError{Cause: ErrMissingNewline, Offset: headerEnd}
	}
	// The last header needs no newline, so the payload may start past the end.
	payloadStart := min(headerEnd+1, len(body))
	var payloadEnd int
	if it.explicitLength {
		// Compare before adding: the claim is checked against the input and never allocated
		// for, and the sum cannot overflow even where int is 32 bits wide.
		if uint64(length) > uint64(len(body)-payloadStart) {
			return 0, &ParseError{Cause: ErrUnexpectedEOF, Offset: len(body)}
		}
		payloadEnd = payloadStart + int(length)
		if payloadEnd < len(body) && body[payloadEnd] != '\n' {
			return 0, &ParseError{Cause: ErrMissingNewline, Offset: payloadEnd}
		}
	} else if n := bytes.IndexByte(body[payloadStart:], '\n'); n >= 0 {
		payloadEnd = payloadStart + n
	} else {
		payloadEnd = len(body)
	}
	// Full slice expression: appending to a payload must never write into the next item.
	it.Payload = body[payloadStart:payloadEnd:payloadEnd]
	it.origPayload = it.Payload
	return payloadEnd + 1, nil
}

// internItemType returns the item type for raw without allocating for the known types.
func internItemType(raw []byte) string {
	switch string(raw) {
	case "event":
		return "event"
	case "transaction":
		return "transaction"
	case "attachment":
		return "attachment"
	case "session":
		return "session"
	case "sessions":
		return "sessions"
	case "client_report":
		return "client_report"
	case "span":
		return "span"
	case "log":
		return "log"
	case "trace_metric":
		return "trace_metric"
	case "check_in":
		return "check_in"
	case "feedback":
		return "feedback"
	case "user_report":
		return "user_report"
	case "replay_event":
		return "replay_event"
	case "replay_recording":
		return "replay_recording"
	case "replay_video":
		return "replay_video"
	case "profile":
		return "profile"
	case "profile_chunk":
		return "profile_chunk"
	case "security":
		return "security"
	case "raw_security":
		return "raw_security"
	case "statsd":
		return "statsd"
	case "metric_buckets":
		return "metric_buckets"
	case "integration":
		return "integration"
	}
	return string(raw)
}

// internHeaderValue returns common content and attachment types without allocating.
func internHeaderValue(raw []byte) string {
	switch string(raw) {
	case "application/json":
		return "application/json"
	case "text/plain":
		return "text/plain"
	case "application/octet-stream":
		return "application/octet-stream"
	case "application/vnd.sentry.items.log+json":
		return "application/vnd.sentry.items.log+json"
	case "application/vnd.sentry.items.span.v2+json":
		return "application/vnd.sentry.items.span.v2+json"
	case "application/vnd.sentry.items.trace-metric+json":
		return "application/vnd.sentry.items.trace-metric+json"
	case "event.attachment":
		return "event.attachment"
	case "event.minidump":
		return "event.minidump"
	case "event.view_hierarchy":
		return "event.view_hierarchy"
	case "javascript":
		return "javascript"
	}
	return string(raw)
}

// newEnvelope returns an empty envelope with the header `{}`, for building envelopes from scratch.
func newEnvelope() *Envelope {
	return &Envelope{rawHeader: []byte("{}"), headerDirty: true}
}

// NewItem returns an item of the given type carrying payload, with the header {"type":typ}
// (AppendTo adds the length).
func NewItem(typ string, payload []byte) *Item {
	hdr := append([]byte(`{"type":`), appendJSONString(nil, typ)...)
	hdr = append(hdr, '}')
	return &Item{Type: typ, origType: typ, Payload: payload, rawHeader: hdr, itemCount: -1, replaced: true}
}

// SetEventID sets the envelope header's event_id (any UUID form; it is normalised to 32
// lowercase hex). The header is rewritten with every other key preserved; a new event_id goes
// first, where Relay's serializer puts it. It returns an error for an id that is not a UUID.
func (e *Envelope) SetEventID(id string) error {
	norm, ok := NormalizeEventID(id)
	if !ok {
		return fmt.Errorf("envelope: set event id: %q is not a UUID", id)
	}
	val := make([]byte, 0, 34)
	val = append(val, '"')
	val = append(val, norm...)
	val = append(val, '"')
	e.rawHeader = rewriteMember(e.rawHeader, "event_id", val, true)
	e.Header.EventID = norm
	e.headerDirty = true
	return nil
}

// HeaderString returns the envelope-header value of key if it is a JSON string, else "".
func (e *Envelope) HeaderString(key string) string {
	return lookupString(e.rawHeader, key)
}

// SetPayload replaces the item's payload; AppendTo writes its new length.
func (it *Item) SetPayload(p []byte) {
	it.Payload = p
	it.replaced = true
}

// HeaderString returns the item-header value of key if it is a JSON string (e.g.
// "attachment_type", "content_type", "filename"), else "".
func (it *Item) HeaderString(key string) string {
	switch key {
	case "type":
		return it.Type
	case "content_type":
		return it.contentType
	case "attachment_type":
		return it.attachmentType
	case "platform":
		return it.platform
	}
	return lookupString(it.rawHeader, key)
}

// ItemCount returns the header's item_count for container items (log, span, trace_metric, …).
func (it *Item) ItemCount() (uint32, bool) {
	if it.itemCount < 0 {
		return 0, false
	}
	return uint32(it.itemCount), true
}

// lookupString finds key in the raw JSON object and returns its value if it is a string.
func lookupString(raw []byte, key string) string {
	iter := objIter{b: raw}
	if !iter.open(0) {
		return ""
	}
	for iter.next() {
		if iter.keyIs(key) {
			s, _ := jsonStringValue(raw[iter.valStart:iter.valEnd])
			return s
		}
	}
	return ""
}

// RequiresEventID reports whether an item "requires an event" (§3.4), in which case the envelope
// must carry an event_id (Relay generates one when missing).
func (e *Envelope) RequiresEventID() bool {
	for _, it := range e.Items {
		if it.RequiresEvent() {
			return true
		}
	}
	return false
}

// Unchanged reports whether nothing was modified since Parse: same items in the same order,
// payloads neither replaced nor re-assigned, types and header untouched. The caller may then
// forward the bytes it gave to Parse instead of calling AppendTo. (In-place edits of a payload's
// bytes cannot be seen; payloads alias the input and must be replaced, never edited.)
func (e *Envelope) Unchanged() bool {
	if e.body == nil || e.headerDirty || len(e.Items) != e.parsedItems {
		return false
	}
	for i, it := range e.Items {
		if it.owner != e || it.index != i || it.replaced || it.Type != it.origType ||
			!samePayload(it.Payload, it.origPayload) {
			return false
		}
	}
	return true
}

func samePayload(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
