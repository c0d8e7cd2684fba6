package envelope

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Relay's store-endpoint error texts (endpoints/common.rs: BadStoreRequest). A *StoreError
// wraps exactly one of them.
var (
	ErrEmptyBody   = errors.New("empty request body")
	ErrInvalidBody = errors.New("invalid request body") // not JSON, base64 or base64(zlib)
	ErrInvalidJSON = errors.New("invalid JSON data")
)

// StoreError is the error FromStoreBody returns for a payload Relay answers 400 for. (A payload
// that decompresses beyond the size limit is a *SizeError, 413.)
type StoreError struct {
	Cause  error  // ErrEmptyBody, ErrInvalidBody or ErrInvalidJSON
	Detail string // the underlying reason, or ""
}

func (e *StoreError) Error() string {
	if e.Detail == "" {
		return e.Cause.Error()
	}
	return e.Cause.Error() + ": " + e.Detail
}

func (e *StoreError) Unwrap() error { return e.Cause }

// Causes returns the texts for Relay's error body: the cause, then the detail if any.
func (e *StoreError) Causes() []string {
	if e.Detail == "" {
		return []string{e.Cause.Error()}
	}
	return []string{e.Cause.Error(), e.Detail}
}

// FromStoreBody is FromStoreBodyLimit with Relay's default limits.max_event_size (1 MiB).
func FromStoreBody(body []byte, client string) (*Envelope, error) {
	return FromStoreBodyLimit(body, client, DefaultLimits().MaxEventSize)
}

// FromStoreBodyLimit converts a store-endpoint body into an envelope with one item, as Relay's
// store endpoint does (relay-protocol.md §1.2):
//
//   - A body starting with `{` is the event JSON; otherwise it is standard base64 (padded, no
//     line breaks), of JSON if the decoded bytes start with `{`, else of zlib-deflated JSON.
//     The decoded event may not exceed maxSize bytes: a larger one, such as a zlib bomb, is a
//     *SizeError (413) and is never inflated beyond maxSize+1 bytes.
//   - For the clients raven-python/* and sentry-python/* the invalid tokens NaN, Infinity and
//     -Infinity, and integers too large for 64 bits, are replaced by 0 in place, as Relay's
//     json_forensics does, so the payload keeps its length.
//   - The JSON must be an object; its event_id (any UUID form, or absent/null) becomes the
//     envelope's event_id, normalised to 32 hex, or a random one is generated.
//   - The item type follows the event's `type`: transaction → transaction; csp, hpkp, expectct,
//     expectstaple → security; feedback → feedback; anything else → event. The item header is
//     {"type":…,"content_type":"application/json"} (AppendTo adds the length).
//
// The payload aliases body when it needed no decoding or repair.
func FromStoreBodyLimit(body []byte, client string, maxSize int64) (*Envelope, error) {
	data, owned, err := decodeStoreBody(body, maxSize)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, &StoreError{Cause: ErrEmptyBody}
	}
	if int64(len(data)) > maxSize {
		return nil, &SizeError{ItemType: "event", Limit: "item_size"}
	}
	if strings.HasPrefix(client, "raven-python/") || strings.HasPrefix(client, "sentry-python/") {
		if !owned {
			data = bytes.Clone(data)
		}
		repairPythonJSON(data)
	}

	eventID, eventType, err := minimalEvent(data)
	if err != nil {
		return nil, err
	}
	if eventID == "" {
		eventID = NewEventID()
	}
	itemType := "event"
	switch eventType {
	case "transaction":
		itemType = "transaction"
	case "csp", "hpkp", "expectct", "expectstaple":
		itemType = "security"
	case "feedback":
		itemType = "feedback"
	}

	hdr := make([]byte, 0, 48)
	hdr = append(hdr, `{"type":"`...)
	hdr = append(hdr, itemType...)
	hdr = append(hdr, `","content_type":"application/json"}`...)
	it := &Item{
		Type:        itemType,
		origType:    itemType,
		Payload:     data,
		rawHeader:   hdr,
		contentType: "application/json",
		itemCount:   -1,
		replaced:    true,
	}
	e := &Envelope{
		Header:      Header{EventID: eventID},
		rawHeader:   []byte(`{"event_id":"` + eventID + `"}`),
		headerDirty: true,
	}
	e.Items = append(e.ptrs[:0], it)
	return e, nil
}

// decodeStoreBody undoes the legacy encodings (Relay's store.rs decode_bytes). owned reports
// whether the result is a fresh buffer rather than body itself.
func decodeStoreBody(body []byte, maxSize int64) (data []byte, owned bool, err error) {
	if len(body) == 0 || body[0] == '{' {
		return body, false, nil
	}
	// Relay decodes with a strict standard alphabet: padding required, no line breaks (Go's
	// decoder would silently skip \r and \n).
	if i := bytes.IndexAny(body, "\r\n"); i >= 0 {
		return nil, false, &StoreError{Cause: ErrInvalidBody, Detail: fmt.Sprintf("invalid base64: line break at offset %d", i)}
	}
	dec := make([]byte, base64.StdEncoding.DecodedLen(len(body)))
	n, err := base64.StdEncoding.Strict().Decode(dec, body)
	if err != nil {
		return nil, false, &StoreError{Cause: ErrInvalidBody, Detail: "invalid base64: " + err.Error()}
	}
	dec = dec[:n]
	if len(dec) > 0 && dec[0] == '{' {
		return dec, true, nil
	}
	zr, err := zlib.NewReader(bytes.NewReader(dec))
	if err != nil {
		return nil, false, &StoreError{Cause: ErrInvalidBody, Detail: "zlib: " + err.Error()}
	}
	out, over, err := inflateLimited(zr, maxSize, 4*len(dec))
	if err != nil {
		return nil, false, &StoreError{Cause: ErrInvalidBody, Detail: "zlib: " + err.Error()}
	}
	if over {
		return nil, false, &SizeError{ItemType: "event", Limit: "item_size"}
	}
	if err := zr.Close(); err != nil {
		return nil, false, &StoreError{Cause: ErrInvalidBody, Detail: "zlib: " + err.Error()}
	}
	return out, true, nil
}

// inflateLimited reads r to the end unless it yields more than limit bytes (over). It never holds
// more than limit+1 bytes and allocates at most about twice that in total, whatever the
// compression ratio: a zlib bomb costs the limit, not its expanded size. hint sizes the first
// buffer.
func inflateLimited(r io.Reader, limit int64, hint int) (out []byte, over bool, err error) {
	buf := make([]byte, 0, min(max(int64(hint), 4096), limit+1))
	for {
		if len(buf) == cap(buf) {
			// len(buf) <= limit here, else the read below returned over. Grow by hand: append's
			// growth policy would overshoot limit+1.
			grown := make([]byte, len(buf), min(int64(2*cap(buf)), limit+1))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, true, nil
		}
		if err == io.EOF {
			return buf, false, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
}

// minimalEvent validates the event JSON (an object, as Relay's MinimalEvent requires) and
// returns its normalised event_id ("" if absent or null) and its `type` ("" if absent).
func minimalEvent(data []byte) (eventID, eventType string, err error) {
	fail := func(msg string, pos int) (string, string, error) {
		line, col := lineCol(data, pos)
		return "", "", &StoreError{Cause: ErrInvalidJSON, Detail: fmt.Sprintf("%s at line %d column %d", msg, line, col)}
	}
	start := skipSpace(data, 0)
	iter := objIter{b: data}
	if !iter.open(start) {
		return fail(iter.err.msg, iter.err.pos)
	}
	var seenID, seenType bool
	for iter.next() {
		v := data[iter.valStart:iter.valEnd]
		switch {
		case iter.keyIs("event_id"):
			if seenID {
				return fail("duplicate field `event_id`", iter.memberStart)
			}
			seenID = true
			if isNull(v) {
				continue
			}
			s, ok := jsonStringValue(v)
			if !ok {
				return fail(fmt.Sprintf("invalid type: %s, expected a UUID string (event_id)", jsonKind(v[0])), iter.valStart)
			}
			if eventID, ok = NormalizeEventID(s); !ok {
				return fail(fmt.Sprintf("invalid event_id %q: not a UUID", s), iter.valStart)
			}
		case iter.keyIs("type"):
			if seenType {
				return fail("duplicate field `type`", iter.memberStart)
			}
			seenType = true
			// Relay rejects unknown event types here; this relay forwards them as `event`
			// items and lets the upstream decide.
			eventType, _ = jsonStringValue(v)
		}
	}
	if iter.err != nil {
		return fail(iter.err.msg, iter.err.pos)
	}
	if rest := skipSpace(data, iter.end); rest < len(data) {
		return fail("trailing characters", rest)
	}
	return eventID, eventType, nil
}

// repairPythonJSON rewrites, in place and without changing any offsets, the tokens that old
// Python SDKs emit but JSON forbids, exactly as Relay's json_forensics::translate_slice:
// NaN → "0  ", Infinity → "0       " (so -Infinity → "-0       "), and an integer literal that
// does not fit 64 bits → "0" padded with spaces. Text inside strings is left alone.
//
// It is a byte-level state machine, not a parser, and reproduces json_forensics' behaviour on
// malformed input too (a partial token keeps its state until the expected byte arrives).
func repairPythonJSON(b []byte) {
	const (
		initial = iota
		quoted
		quotedEscape
		number
		// nan1..nan2: "N", "Na" seen; inf1..inf7: "I" … "Infinit" seen.
		nan1
		nan2
		inf1
		inf2
		inf3
		inf4
		inf5
		inf6
		inf7
	)
	state, numStart := initial, 0
	// endNumber blanks the digit run b[numStart:i] if it overflows uint64.
	endNumber := func(i int) {
		if fitsUint64(b[numStart:i]) {
			return
		}
		b[numStart] = '0'
		for k := numStart + 1; k < i; k++ {
			b[k] = ' '
		}
	}
	for i, c := range b {
		switch state {
		case initial:
			switch {
			case c == 'N':
				state = nan1
			case c == 'I':
				state = inf1
			case c == '"':
				state = quoted
			case c >= '0' && c <= '9':
				state, numStart = number, i
			}
		case quoted:
			switch c {
			case '\\':
				state = quotedEscape
			case '"':
				state = initial
			}
		case quotedEscape:
			state = quoted
		case number:
			switch {
			case c == '.' || c == 'e' || c == 'E':
				state = initial // a float: left alone
			case c < '0' || c > '9':
				endNumber(i)
				state = initial // c itself is not looked at again
			}
		case nan1:
			if c == 'a' {
				state = nan2
			}
		case nan2:
			if c == 'N' {
				b[i-2], b[i-1], b[i] = '0', ' ', ' '
				state = initial
			}
		default: // inf1..inf7: expecting the next letter of "Infinity"
			k := state - inf1 + 1 // letters of "Infinity" seen so far
			if c == "Infinity"[k] {
				if k == 7 {
					b[i-7] = '0'
					for j := i - 6; j <= i; j++ {
						b[j] = ' '
					}
					state = initial
				} else {
					state++
				}
			}
		}
	}
	if state == number {
		endNumber(len(b))
	}
}

// fitsUint64 reports whether the decimal digit run d parses as a uint64.
func fitsUint64(d []byte) bool {
	const max = ^uint64(0)
	var n uint64
	for _, c := range d {
		x := uint64(c - '0')
		if n > (max-x)/10 {
			return false
		}
		n = n*10 + x
	}
	return true
}
