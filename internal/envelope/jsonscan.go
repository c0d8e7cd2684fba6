package envelope

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// A small validating JSON scanner for envelope headers and store-endpoint events.
//
// Why not encoding/json alone: Relay reads each header with serde_json's streaming reader, so
// a header ends where its JSON value ends (not at a newline), keys are matched case-sensitively,
// a duplicated known key is an error, strings must be valid UTF-8, and nesting is limited to 127
// levels. encoding/json matches keys case-insensitively (`{"Length":5}` would set the length and
// frame the payload differently from Relay), accepts invalid UTF-8 and cannot tell where a value
// ends without copying the input into a Decoder buffer. This scanner validates a value in one
// pass without allocating and hands the caller the spans of the top-level members; the caller
// decodes only the few members it knows.

// maxDepth is serde_json's recursion limit: its remaining-depth counter starts at 128 and fails
// when entering a level makes it reach 0, so 127 nested objects/arrays are allowed. The limit also
// bounds this scanner's own recursion.
const maxDepth = 127

// scanError is a JSON syntax or type error at a byte offset of the scanned buffer. The messages
// follow serde_json's wording, which is what Relay puts in its error causes.
type scanError struct {
	msg string
	pos int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace returns the index of the first non-whitespace byte at or after i (len(b) if none).
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scanValue validates the JSON value starting at b[i] (whitespace already skipped) and returns
// the index just past it. depth is the nesting level of the enclosing container (0 at top level).
func scanValue(b []byte, i, depth int) (int, *scanError) {
	if i >= len(b) {
		return i, &scanError{"EOF while parsing a value", i}
	}
	switch c := b[i]; {
	case c == '"':
		return scanString(b, i)
	case c == '{':
		return scanObject(b, i, depth+1)
	case c == '[':
		return scanArray(b, i, depth+1)
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(b, i)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	default:
		return i, &scanError{"expected value", i}
	}
}

func scanLiteral(b []byte, i int, lit string) (int, *scanError) {
	for k := 0; k < len(lit); k++ {
		if i+k >= len(b) {
			return i + k, &scanError{"EOF while parsing a value", i + k}
		}
		if b[i+k] != lit[k] {
			return i + k, &scanError{"expected ident", i + k}
		}
	}
	return i + len(lit), nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanNumber validates -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, *scanError) {
	start := i
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return i, &scanError{"EOF while parsing a value", i}
	case b[i] == '0':
		i++
	case isDigit(b[i]):
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return i, &scanError{"invalid number", start}
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return i, &scanError{"invalid number", i}
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return i, &scanError{"invalid number", i}
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// scanString validates the string starting at b[i] == '"' and returns the index past its
// closing quote.
func scanString(b []byte, i int) (int, *scanError) {
	i++
	for {
		// Fast path over plain ASCII.
		for i < len(b) {
			c := b[i]
			if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
				break
			}
			i++
		}
		if i >= len(b) {
			return i, &scanError{"EOF while parsing a string", i}
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= len(b) {
				return i + 1, &scanError{"EOF while parsing a string", i + 1}
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := 2; k < 6; k++ {
					if i+k >= len(b) {
						return i + k, &scanError{"EOF while parsing a string", i + k}
					}
					if !isHex(b[i+k]) {
						return i + k, &scanError{"invalid escape", i + k}
					}
				}
				i += 6
			default:
				return i + 1, &scanError{"invalid escape", i + 1}
			}
		case c < 0x20:
			return i, &scanError{"control character (\\u0000-\\u001F) found while parsing a string", i}
		default: // non-ASCII: must be valid UTF-8, as Rust strings are
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return i, &scanError{"invalid unicode code point", i}
			}
			i += size
		}
	}
}

func scanObject(b []byte, i, depth int) (int, *scanError) {
	if depth > maxDepth {
		return i, &scanError{"recursion limit exceeded", i}
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) {
			return i, &scanError{"EOF while parsing an object", i}
		}
		if b[i] != '"' {
			return i, &scanError{"key must be a string", i}
		}
		var err *scanError
		if i, err = scanString(b, i); err != nil {
			return i, err
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, &scanError{"EOF while parsing an object", i}
		}
		if b[i] != ':' {
			return i, &scanError{"expected `:`", i}
		}
		i = skipSpace(b, i+1)
		if i, err = scanValue(b, i, depth); err != nil {
			return i, err
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, &scanError{"EOF while parsing an object", i}
		}
		switch b[i] {
		case '}':
			return i + 1, nil
		case ',':
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == '}' {
				return i, &scanError{"trailing comma", i}
			}
		default:
			return i, &scanError{"expected `,` or `}`", i}
		}
	}
}

func scanArray(b []byte, i, depth int) (int, *scanError) {
	if depth > maxDepth {
		return i, &scanError{"recursion limit exceeded", i}
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		var err *scanError
		if i, err = scanValue(b, i, depth); err != nil {
			if i >= len(b) {
				err.msg = "EOF while parsing a list"
			}
			return i, err
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, &scanError{"EOF while parsing a list", i}
		}
		switch b[i] {
		case ']':
			return i + 1, nil
		case ',':
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == ']' {
				return i, &scanError{"trailing comma", i}
			}
		default:
			return i, &scanError{"expected `,` or `]`", i}
		}
	}
}

// objIter walks the top-level members of a JSON object, validating every value as it goes, so
// that a caller can decode the members it knows without a second pass and without a map.
//
//	it := objIter{b: buf}
//	if !it.open(i) { ... it.err ... }
//	for it.next() { use it.key, it.keyEscaped, it.valStart, it.valEnd }
//	if it.err != nil { ... } // else it.end is the index past the closing brace
type objIter struct {
	b []byte

	// Current member, valid after next() returned true. key excludes the quotes and is still
	// escaped when keyEscaped; the value is b[valStart:valEnd]; the member (key through value)
	// is b[memberStart:valEnd].
	key         []byte
	keyEscaped  bool
	memberStart int
	valStart    int
	valEnd      int

	i    int // scan position
	done bool
	end  int // index past the closing brace once done
	err  *scanError
}

// open starts iterating at b[i], which must be '{'.
func (it *objIter) open(i int) bool {
	if i >= len(it.b) {
		it.err = &scanError{"EOF while parsing a value", i}
		return false
	}
	if it.b[i] != '{' {
		// The value is some other JSON type; report what serde reports when a map is expected
		// (it would parse the value first, so a syntax error in it takes precedence).
		if _, err := scanValue(it.b, i, 0); err != nil {
			it.err = err
			return false
		}
		it.err = &scanError{fmt.Sprintf("invalid type: %s, expected a JSON object", jsonKind(it.b[i])), i}
		return false
	}
	i = skipSpace(it.b, i+1)
	if i < len(it.b) && it.b[i] == '}' {
		it.done, it.end = true, i+1
	}
	it.i = i
	return true
}

func jsonKind(c byte) string {
	switch c {
	case '[':
		return "sequence"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// next advances to the next member; false at the end of the object or on error (it.err).
func (it *objIter) next() bool {
	if it.done || it.err != nil {
		return false
	}
	b, i := it.b, it.i
	if i >= len(b) {
		it.err = &scanError{"EOF while parsing an object", i}
		return false
	}
	if b[i] != '"' {
		it.err = &scanError{"key must be a string", i}
		return false
	}
	it.memberStart = i
	end, err := scanString(b, i)
	if err != nil {
		it.err = err
		return false
	}
	it.key = b[i+1 : end-1]
	it.keyEscaped = false
	for _, c := range it.key {
		if c == '\\' {
			it.keyEscaped = true
			break
		}
	}
	i = skipSpace(b, end)
	if i >= len(b) {
		it.err = &scanError{"EOF while parsing an object", i}
		return false
	}
	if b[i] != ':' {
		it.err = &scanError{"expected `:`", i}
		return false
	}
	i = skipSpace(b, i+1)
	it.valStart = i
	if i, err = scanValue(b, i, 1); err != nil {
		it.err = err
		return false
	}
	it.valEnd = i
	i = skipSpace(b, i)
	if i >= len(b) {
		it.err = &scanError{"EOF while parsing an object", i}
		return false
	}
	switch b[i] {
	case '}':
		it.done, it.end = true, i+1
	case ',':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			it.err = &scanError{"trailing comma", i}
			return false
		}
	default:
		it.err = &scanError{"expected `,` or `}`", i}
		return false
	}
	it.i = i
	return true
}

// keyIs reports whether the current member's key equals name (after unescaping).
func (it *objIter) keyIs(name string) bool {
	if !it.keyEscaped {
		return string(it.key) == name
	}
	k, ok := unescapeKey(it.key)
	return ok && k == name
}

// keyString returns the current key unescaped. Only escaped keys allocate.
func (it *objIter) keyString() string {
	if !it.keyEscaped {
		return string(it.key)
	}
	k, _ := unescapeKey(it.key)
	return k
}

func unescapeKey(raw []byte) (string, bool) {
	buf := make([]byte, 0, len(raw)+2)
	buf = append(buf, '"')
	buf = append(buf, raw...)
	buf = append(buf, '"')
	var s string
	if err := json.Unmarshal(buf, &s); err != nil {
		return "", false
	}
	return s, true
}

// jsonStringValue decodes v, a validated JSON value, as a string. ok is false when v is not a
// string. Unescaped strings cost one allocation; the caller may intern instead (see rawString).
func jsonStringValue(v []byte) (string, bool) {
	raw, escaped, ok := rawString(v)
	if !ok {
		return "", false
	}
	if !escaped {
		return string(raw), true
	}
	// Declared here, not as a named result: json.Unmarshal takes its
	// address, which puts it on the heap where it is declared — for every
	// string, escaped or not, when it was the function's result.
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// rawString returns the bytes between the quotes of the validated JSON string v and whether they
// contain escapes. ok is false when v is not a string.
func rawString(v []byte) (raw []byte, escaped, ok bool) {
	if len(v) < 2 || v[0] != '"' {
		return nil, false, false
	}
	raw = v[1 : len(v)-1]
	for _, c := range raw {
		if c == '\\' {
			return raw, true, true
		}
	}
	return raw, false, true
}

func isNull(v []byte) bool { return len(v) == 4 && string(v) == "null" }

// parseU32 decodes a validated JSON number as serde decodes a u32: a non-negative integer
// literal (no fraction or exponent) that fits 32 bits.
func parseU32(v []byte) (uint32, string) {
	if len(v) == 0 {
		return 0, "expected u32"
	}
	if v[0] == '-' {
		if len(v) == 2 && v[1] == '0' {
			return 0, ""
		}
		return 0, fmt.Sprintf("invalid value: integer `%s`, expected u32", v)
	}
	if v[0] < '0' || v[0] > '9' {
		return 0, fmt.Sprintf("invalid type: %s, expected u32", jsonKind(v[0]))
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, fmt.Sprintf("invalid type: floating point `%s`, expected u32", v)
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<32-1 {
			return 0, fmt.Sprintf("invalid value: integer `%s`, expected u32", v)
		}
	}
	return uint32(n), ""
}

// lineCol turns a byte offset into serde's "line L column C" (1-based) within b.
func lineCol(b []byte, pos int) (line, col int) {
	line, col = 1, 0
	if pos > len(b) {
		pos = len(b)
	}
	for _, c := range b[:pos] {
		if c == '\n' {
			line++
			col = 0
		} else {
			col++
		}
	}
	return line, col + 1
}
