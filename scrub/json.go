package scrub

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// The scrubber works on a small ordered JSON tree instead of map[string]any:
// key order is kept, every node remembers its exact source bytes so untouched
// subtrees are re-emitted byte-for-byte, and strings without escapes are not
// copied. Nodes come from one slab per document to keep allocations per event
// low.

type kind uint8

const (
	kNull kind = iota
	kBool
	kNumber
	kString
	kArray
	kObject
)

type node struct {
	kind kind
	s    string   // string value (decoded), number literal, or "true"/"false"
	keys []string // object keys, parallel to kids
	kids []*node  // object values or array elements
	raw  []byte   // source bytes of this value; nil once it (or a descendant) changed
	meta *nodeMeta
	// metaBelow: this node or a descendant has a _meta entry to write.
	metaBelow bool
}

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 1000

var errDepth = errors.New("nesting deeper than 1000 levels")

type parser struct {
	b      []byte
	pos    int
	slab   []node
	ptrs   []*node  // free part of the current child-pointer slab
	strs   []string // free part of the current key slab
	chunks []*[]node
	pchunk []*[]*node
	schunk []*[]string
	kids   []*node  // scratch stack of children being collected
	keys   []string // scratch stack of keys being collected
	pooled bool
}

const slabSize = 256

// Node slabs are recycled between documents (the tree of one Scrub call is
// dropped when the call returns), which removes most of the per-event
// allocation.
var (
	slabPool   = sync.Pool{New: func() any { s := make([]node, slabSize); return &s }}
	ptrPool    = sync.Pool{New: func() any { s := make([]*node, 512); return &s }}
	strPool    = sync.Pool{New: func() any { s := make([]string, 256); return &s }}
	parserPool = sync.Pool{New: func() any { return &parser{pooled: true} }}
)

func (p *parser) alloc() *node {
	if len(p.slab) == 0 {
		if p.pooled {
			c := slabPool.Get().(*[]node)
			p.chunks = append(p.chunks, c)
			p.slab = *c
		} else {
			p.slab = make([]node, 32)
		}
	}
	n := &p.slab[0]
	p.slab = p.slab[1:]
	return n
}

// childSlice returns an exact-size copy of xs carved from a shared slab
// (capacity-limited, so appends by the processor reallocate).
func (p *parser) childSlice(xs []*node) []*node {
	if len(xs) > 512 {
		return append([]*node(nil), xs...) // too big for a slab: its own slice
	}
	if len(xs) > len(p.ptrs) {
		// p.ptrs is always the tail of the last pooled chunk (or of a
		// private slice when not pooled), which release relies on.
		if p.pooled {
			c := ptrPool.Get().(*[]*node)
			p.pchunk = append(p.pchunk, c)
			p.ptrs = *c
		} else {
			p.ptrs = make([]*node, 512)
		}
	}
	out := p.ptrs[:len(xs):len(xs)]
	copy(out, xs)
	p.ptrs = p.ptrs[len(xs):]
	return out
}

func (p *parser) keySlice(xs []string) []string {
	if len(xs) > 256 {
		return append([]string(nil), xs...)
	}
	if len(xs) > len(p.strs) {
		if p.pooled {
			c := strPool.Get().(*[]string)
			p.schunk = append(p.schunk, c)
			p.strs = *c
		} else {
			p.strs = make([]string, 256)
		}
	}
	out := p.strs[:len(xs):len(xs)]
	copy(out, xs)
	p.strs = p.strs[len(xs):]
	return out
}

// release returns the node slabs to the pool. The tree must not be used
// afterwards.
func (p *parser) release() {
	for i, c := range p.chunks {
		used := *c
		if i == len(p.chunks)-1 {
			used = used[:len(used)-len(p.slab)] // only the front of the last slab was handed out
		}
		clear(used)
		slabPool.Put(c)
	}
	for i, c := range p.pchunk {
		used := *c
		if i == len(p.pchunk)-1 {
			used = used[:len(used)-len(p.ptrs)]
		}
		clear(used)
		ptrPool.Put(c)
	}
	for i, c := range p.schunk {
		used := *c
		if i == len(p.schunk)-1 {
			used = used[:len(used)-len(p.strs)]
		}
		clear(used)
		strPool.Put(c)
	}
	clear(p.chunks)
	clear(p.pchunk)
	clear(p.schunk)
	clear(p.kids[:cap(p.kids)])
	clear(p.keys[:cap(p.keys)])
	*p = parser{pooled: true, chunks: p.chunks[:0], pchunk: p.pchunk[:0], schunk: p.schunk[:0], kids: p.kids[:0], keys: p.keys[:0]}
	parserPool.Put(p)
}

// parseJSON parses one JSON document. Strings without escapes alias b (the
// tree must not outlive b).
func parseJSON(b []byte) (*node, error) {
	p := parser{b: b}
	return p.parse()
}

// parseDoc parses with pooled memory; call release when done with the tree.
func parseDoc(b []byte) (*node, *parser, error) {
	p := parserPool.Get().(*parser)
	p.b = b
	n, err := p.parse()
	if err != nil {
		p.release()
		return nil, nil, err
	}
	return n, p, nil
}

func (p *parser) parse() (*node, error) {
	p.ws()
	n, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.pos != len(p.b) {
		return nil, p.errf("trailing data")
	}
	return n, nil
}

func (p *parser) errf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *parser) ws() {
	for p.pos < len(p.b) {
		switch p.b[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (*node, error) {
	if depth > maxDepth {
		return nil, errDepth
	}
	if p.pos >= len(p.b) {
		return nil, p.errf("unexpected end of input")
	}
	start := p.pos
	n := p.alloc()
	switch c := p.b[p.pos]; {
	case c == '{':
		n.kind = kObject
		p.pos++
		p.ws()
		if p.pos < len(p.b) && p.b[p.pos] == '}' {
			p.pos++
			break
		}
		base, kbase := len(p.kids), len(p.keys)
		for {
			p.ws()
			if p.pos >= len(p.b) || p.b[p.pos] != '"' {
				return nil, p.errf("expected object key")
			}
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			p.ws()
			if p.pos >= len(p.b) || p.b[p.pos] != ':' {
				return nil, p.errf("expected ':'")
			}
			p.pos++
			p.ws()
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			p.keys = append(p.keys, k)
			p.kids = append(p.kids, v)
			p.ws()
			if p.pos < len(p.b) && p.b[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.pos < len(p.b) && p.b[p.pos] == '}' {
				p.pos++
				// exact-size copies: no append growth per container
				n.keys = p.keySlice(p.keys[kbase:])
				n.kids = p.childSlice(p.kids[base:])
				p.keys, p.kids = p.keys[:kbase], p.kids[:base]
				break
			}
			return nil, p.errf("expected ',' or '}'")
		}
	case c == '[':
		n.kind = kArray
		p.pos++
		p.ws()
		if p.pos < len(p.b) && p.b[p.pos] == ']' {
			p.pos++
			break
		}
		base := len(p.kids)
		for {
			p.ws()
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			p.kids = append(p.kids, v)
			p.ws()
			if p.pos < len(p.b) && p.b[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.pos < len(p.b) && p.b[p.pos] == ']' {
				p.pos++
				n.kids = p.childSlice(p.kids[base:])
				p.kids = p.kids[:base]
				break
			}
			return nil, p.errf("expected ',' or ']'")
		}
	case c == '"':
		n.kind = kString
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		n.s = s
	case c == 't':
		if !p.lit("true") {
			return nil, p.errf("invalid literal")
		}
		n.kind, n.s = kBool, "true"
	case c == 'f':
		if !p.lit("false") {
			return nil, p.errf("invalid literal")
		}
		n.kind, n.s = kBool, "false"
	case c == 'n':
		if !p.lit("null") {
			return nil, p.errf("invalid literal")
		}
		n.kind = kNull
	case c == '-' || (c >= '0' && c <= '9'):
		if err := p.number(); err != nil {
			return nil, err
		}
		n.kind = kNumber
		n.s = bytesToString(p.b[start:p.pos]) // aliases the input, like strings
	default:
		return nil, p.errf("unexpected character %q", c)
	}
	n.raw = p.b[start:p.pos:p.pos]
	return n, nil
}

func (p *parser) lit(s string) bool {
	if len(p.b)-p.pos < len(s) || string(p.b[p.pos:p.pos+len(s)]) != s {
		return false
	}
	p.pos += len(s)
	return true
}

func (p *parser) number() error {
	if p.b[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		st := p.pos
		for p.pos < len(p.b) && p.b[p.pos] >= '0' && p.b[p.pos] <= '9' {
			p.pos++
		}
		return p.pos - st
	}
	if p.pos < len(p.b) && p.b[p.pos] == '0' {
		p.pos++
	} else if digits() == 0 {
		return p.errf("invalid number")
	}
	if p.pos < len(p.b) && p.b[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return p.errf("invalid number")
		}
	}
	if p.pos < len(p.b) && (p.b[p.pos] == 'e' || p.b[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.b) && (p.b[p.pos] == '+' || p.b[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return p.errf("invalid number")
		}
	}
	return nil
}

// str parses a JSON string at p.pos (which is '"').
func (p *parser) str() (string, error) {
	p.pos++
	st := p.pos
	for p.pos < len(p.b) {
		c := p.b[p.pos]
		if c == '"' {
			s := p.b[st:p.pos]
			p.pos++
			return bytesToString(s), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", p.errf("control character in string")
		}
		p.pos++
	}
	// slow path with escapes
	buf := make([]byte, 0, p.pos-st+16)
	buf = append(buf, p.b[st:p.pos]...)
	for p.pos < len(p.b) {
		c := p.b[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(buf), nil
		case c < 0x20:
			return "", p.errf("control character in string")
		case c == '\\':
			p.pos++
			if p.pos >= len(p.b) {
				return "", p.errf("unterminated escape")
			}
			e := p.b[p.pos]
			p.pos++
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", p.errf("invalid \\u escape")
				}
				if utf16.IsSurrogate(r) {
					r2 := utf8.RuneError
					if p.pos+1 < len(p.b) && p.b[p.pos] == '\\' && p.b[p.pos+1] == 'u' {
						save := p.pos
						p.pos += 2
						if x, ok := p.hex4(); ok {
							if d := utf16.DecodeRune(r, x); d != utf8.RuneError {
								r2 = d
							} else {
								p.pos = save
							}
						} else {
							p.pos = save
						}
					}
					r = r2
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return "", p.errf("invalid escape")
			}
		default:
			buf = append(buf, c)
			p.pos++
		}
	}
	return "", p.errf("unterminated string")
}

func (p *parser) hex4() (rune, bool) {
	if len(p.b)-p.pos < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.b[p.pos:p.pos+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.pos += 4
	return rune(v), true
}

// appendJSON serialises n; subtrees whose raw bytes are still valid are copied.
func appendJSON(dst []byte, n *node) []byte {
	if n.raw != nil {
		return append(dst, n.raw...)
	}
	switch n.kind {
	case kNull:
		return append(dst, "null"...)
	case kBool, kNumber:
		return append(dst, n.s...)
	case kString:
		return appendString(dst, n.s)
	case kArray:
		dst = append(dst, '[')
		for i, k := range n.kids {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSON(dst, k)
		}
		return append(dst, ']')
	}
	dst = append(dst, '{')
	for i, k := range n.kids {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, n.keys[i])
		dst = append(dst, ':')
		dst = appendJSON(dst, k)
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string; invalid UTF-8 becomes U+FFFD so the
// output is always valid JSON.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// get returns the last value under key (serde keeps the last duplicate).
func (n *node) get(key string) *node {
	if n == nil || n.kind != kObject {
		return nil
	}
	for i := len(n.keys) - 1; i >= 0; i-- {
		if n.keys[i] == key {
			return n.kids[i]
		}
	}
	return nil
}

func (n *node) str() (string, bool) {
	if n == nil || n.kind != kString {
		return "", false
	}
	return n.s, true
}
