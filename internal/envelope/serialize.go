package envelope

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"
)

// AppendTo appends the envelope to dst in Relay's serialisation and returns the extended slice:
// the header line, then for every item its header line, its payload and a "\n" (Relay always
// terminates payloads). Payloads are written byte for byte. An item header is written as
// received when it already had the right `length`; otherwise it is rewritten with every key kept
// in its order and `length` set to the payload's size (added right after `type` when it was
// missing, where Relay's serializer puts it). A header spread over several lines is compacted
// onto one.
//
// When Unchanged reports true the caller may forward the original bytes instead.
func (e *Envelope) AppendTo(dst []byte) []byte {
	n := len(e.rawHeader) + 1
	for _, it := range e.Items {
		n += len(it.rawHeader) + len(`,"length":4294967295`) + 2 + len(it.Payload)
	}
	dst = slices.Grow(dst, n)

	dst = appendCompact(dst, e.rawHeader)
	dst = append(dst, '\n')
	for _, it := range e.Items {
		dst = it.appendHeader(dst)
		dst = append(dst, '\n')
		dst = append(dst, it.Payload...)
		dst = append(dst, '\n')
	}
	return dst
}

// appendHeader writes the item header, rewriting it only when the received bytes do not frame
// the current payload.
func (it *Item) appendHeader(dst []byte) []byte {
	raw := it.rawHeader
	if it.explicitLength && len(it.Payload) == len(it.origPayload) && it.Type == it.origType &&
		len(raw) > 0 && !hasLineBreak(raw) {
		return append(dst, raw...)
	}
	return it.rewriteHeader(dst)
}

// rewriteHeader writes the item header with `type` and `length` reflecting the item, and every
// other member as received (nested values compacted when they span lines).
func (it *Item) rewriteHeader(dst []byte) []byte {
	raw := it.rawHeader
	if len(raw) == 0 {
		raw = []byte("{}") // an Item built as a struct literal
	}
	w := objWriter{dst: append(dst, '{')}
	wroteType, wroteLength := false, false
	writeLength := func() {
		w.key("length")
		w.dst = strconv.AppendInt(w.dst, int64(len(it.Payload)), 10)
		wroteLength = true
	}
	iter := objIter{b: raw}
	iter.open(0)
	for iter.next() {
		switch {
		case iter.keyIs("type"):
			if wroteType {
				continue
			}
			w.key("type")
			if it.Type == it.origType {
				w.dst = append(w.dst, raw[iter.valStart:iter.valEnd]...)
			} else {
				w.dst = appendJSONString(w.dst, it.Type)
			}
			wroteType = true
			if !it.lengthMember && !wroteLength {
				writeLength()
			}
		case iter.keyIs("length"):
			if !wroteLength {
				writeLength()
			}
		default:
			w.member(raw, &iter)
		}
	}
	if !wroteType {
		w.key("type")
		w.dst = appendJSONString(w.dst, it.Type)
	}
	if !wroteLength {
		writeLength()
	}
	return append(w.dst, '}')
}

// objWriter appends the members of a JSON object, placing the commas.
type objWriter struct {
	dst  []byte
	more bool
}

func (w *objWriter) key(k string) {
	if w.more {
		w.dst = append(w.dst, ',')
	}
	w.more = true
	w.dst = appendJSONString(w.dst, k)
	w.dst = append(w.dst, ':')
}

// member copies the iterator's current member (key as received, value compacted onto one line).
func (w *objWriter) member(raw []byte, iter *objIter) {
	if w.more {
		w.dst = append(w.dst, ',')
	}
	w.more = true
	keyEnd := iter.memberStart + len(iter.key) + 2
	w.dst = append(w.dst, raw[iter.memberStart:keyEnd]...)
	w.dst = append(w.dst, ':')
	w.dst = appendCompact(w.dst, raw[iter.valStart:iter.valEnd])
}

// rewriteMember returns a copy of the JSON object raw with key's value replaced by val, or with
// the member added (first when prepend, else last) if raw lacks it. Members keep their order.
func rewriteMember(raw []byte, key string, val []byte, prepend bool) []byte {
	w := objWriter{dst: make([]byte, 0, len(raw)+len(key)+len(val)+4)}
	w.dst = append(w.dst, '{')
	found := false
	if prepend && !hasKey(raw, key) {
		w.key(key)
		w.dst = append(w.dst, val...)
		found = true
	}
	iter := objIter{b: raw}
	iter.open(0)
	for iter.next() {
		if iter.keyIs(key) {
			if found {
				continue
			}
			w.key(key)
			w.dst = append(w.dst, val...)
			found = true
			continue
		}
		w.member(raw, &iter)
	}
	if !found {
		w.key(key)
		w.dst = append(w.dst, val...)
	}
	return append(w.dst, '}')
}

func hasKey(raw []byte, key string) bool {
	iter := objIter{b: raw}
	if !iter.open(0) {
		return false
	}
	for iter.next() {
		if iter.keyIs(key) {
			return true
		}
	}
	return false
}

func hasLineBreak(b []byte) bool {
	return bytes.IndexByte(b, '\n') >= 0 || bytes.IndexByte(b, '\r') >= 0
}

// appendCompact appends the validated JSON value v, with insignificant whitespace removed when v
// spans lines (string contents are untouched), so that every header stays on one line.
func appendCompact(dst, v []byte) []byte {
	if !hasLineBreak(v) {
		return append(dst, v...)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		// v was validated by the scanner; Compact cannot fail on it. Keep the bytes rather
		// than lose the header if it ever did.
		return append(dst, v...)
	}
	return append(dst, buf.Bytes()...)
}

// appendJSONString appends s as a JSON string literal. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
