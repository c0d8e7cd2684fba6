package scrub

import (
	"fmt"
	"strconv"
	"strings"
)

// valueType is one of Sentry's processing value types (relay-event-schema
// ValueType). The declaration order matters: it is the order selectors sort
// in (doc §5.4), which decides the order applications run and therefore which
// rule id a remark carries.
type valueType uint8

const (
	vtString valueType = iota
	vtBinary
	vtNumber
	vtBoolean
	vtDateTime
	vtArray
	vtObject
	vtEvent
	vtAttachments
	vtReplay
	vtException
	vtStacktrace
	vtFrame
	vtRequest
	vtUser
	vtLogEntry
	vtMessage
	vtThread
	vtBreadcrumb
	vtOurLog
	vtTraceMetric
	vtSpan
	vtClientSdkInfo
	vtMinidump
	vtHeapMemory
	vtStackMemory
	vtCount
)

// vtMask is a set of value types.
type vtMask uint32

func (m vtMask) has(t valueType) bool { return m&(1<<t) != 0 }

func mask(ts ...valueType) vtMask {
	var m vtMask
	for _, t := range ts {
		m |= 1 << t
	}
	return m
}

// vtNames maps value types to their display name (first) — used by String().
var vtNames = [vtCount]string{
	"string", "binary", "number", "boolean", "datetime", "array", "object", "event",
	"attachments", "replay", "error", "stack", "frame", "http", "user", "logentry",
	"message", "thread", "breadcrumb", "log", "trace_metric", "span", "sdk",
	"minidump", "heap_memory", "stack_memory",
}

// vtByName accepts the display names and their aliases (doc §6.1).
var vtByName = func() map[string]valueType {
	m := make(map[string]valueType, 40)
	for i, n := range vtNames {
		m[n] = valueType(i)
	}
	m["bool"] = vtBoolean
	m["list"] = vtArray
	m["exception"] = vtException
	m["stacktrace"] = vtStacktrace
	m["request"] = vtRequest
	return m
}()

// isBasic reports the plain JSON-ish types that never match a pii=maybe node.
func (t valueType) isBasic() bool { return t <= vtObject }

// maybeAtRoot: schema types may select a pii=maybe node when they are the
// first item of a path. Relay's older explicit list lacks $log and
// $trace_metric, but its newest REPLACE_ONLY selector `$log.body` (body being
// pii=maybe) only works with $log allowed, so all schema types are.
func (t valueType) maybeAtRoot() bool { return !t.isBasic() }

type itemKind uint8

// Declaration order = Relay's SelectorPathItem order (Type < Index < Key < * < **).
const (
	itemType itemKind = iota
	itemIndex
	itemKey
	itemWildcard
	itemDeepWildcard
)

type pathItem struct {
	kind  itemKind
	vt    valueType
	index int
	key   string // as written; compared case-insensitively
	lkey  string // lower-cased key, precomputed for matching
	ascii bool   // lkey is ASCII
}

type selKind uint8

// Declaration order = Relay's SelectorSpec order (And < Or < Not < Path).
const (
	selAnd selKind = iota
	selOr
	selNot
	selPath
)

// Selector is a parsed PII selector (doc §6). The zero value is not useful;
// obtain one from ParseSelector.
type Selector struct {
	kind  selKind
	subs  []*Selector // And/Or children, Not's single child
	items []pathItem  // Path items, root → leaf
	// byLeafHash indexes the children of an Or that end in a plain ASCII
	// key (e.g. the 46 sensitive-cookie paths) by the hash of that key: only
	// those whose last key hashes like the node's key can match. rest are
	// the other children, always evaluated. Built once by index().
	byLeafHash map[uint32][]*Selector
	rest       []*Selector
	// deepKeys: for a path with `**`, the Bloom bits of the keys before it
	// (see state.anc).
	deepKeys uint64
}

// index builds byLeafKey for large ORs (recursively). Selectors are
// immutable afterwards.
func (s *Selector) index() *Selector {
	for _, x := range s.subs {
		x.index()
	}
	if s.kind == selPath {
		for _, it := range s.items {
			if it.kind == itemDeepWildcard {
				break
			}
			if it.kind == itemKey {
				s.deepKeys |= keyBit(it.lkey)
			}
		}
		deep := false
		for _, it := range s.items {
			deep = deep || it.kind == itemDeepWildcard
		}
		if !deep {
			s.deepKeys = 0
		}
	}
	if s.kind != selOr || len(s.subs) < 3 {
		return s
	}
	m := map[uint32][]*Selector{}
	var rest []*Selector
	keyed := 0
	for _, x := range s.subs {
		if x.kind == selPath && len(x.items) > 0 {
			last := x.items[len(x.items)-1]
			if h, ascii := keyHash(last.lkey); last.kind == itemKey && ascii {
				m[h] = append(m[h], x)
				keyed++
				continue
			}
		}
		rest = append(rest, x)
	}
	if keyed >= 2 {
		s.byLeafHash, s.rest = m, rest
	}
	return s
}

// SelectorError describes why a selector did not parse.
type SelectorError struct {
	Selector string
	Pos      int // byte offset of the problem, -1 when not positional
	Reason   string
}

func (e *SelectorError) Error() string {
	if e.Pos >= 0 {
		return fmt.Sprintf("invalid selector %q: %s at offset %d", e.Selector, e.Reason, e.Pos)
	}
	return fmt.Sprintf("invalid selector %q: %s", e.Selector, e.Reason)
}

// ParseSelector parses a selector as an `applications` key: the legacy
// aliases (freeform, email, sensitive, text → $string; databag, container →
// $object) are accepted.
func ParseSelector(s string) (*Selector, error) {
	switch s {
	case "freeform", "email", "sensitive", "text":
		return &Selector{kind: selPath, items: []pathItem{{kind: itemType, vt: vtString}}}, nil
	case "databag", "container":
		return &Selector{kind: selPath, items: []pathItem{{kind: itemType, vt: vtObject}}}, nil
	}
	return parseSelectorStrict(s)
}

// parseSelectorStrict parses without the legacy aliases (Relay's
// parse_non_legacy, used for safe fields).
func parseSelectorStrict(s string) (*Selector, error) {
	p := selParser{src: s}
	p.skipSpace()
	sel, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.src) {
		return nil, p.errf("unexpected %q", p.rest())
	}
	return sel.index(), nil
}

type selParser struct {
	src string
	pos int
}

func (p *selParser) errf(format string, args ...any) error {
	return &SelectorError{Selector: p.src, Pos: p.pos, Reason: fmt.Sprintf(format, args...)}
}

func (p *selParser) rest() string {
	r := p.src[p.pos:]
	if len(r) > 20 {
		r = r[:20] + "…"
	}
	return r
}

// skipSpace skips ASCII spaces only, as the pest grammar does.
func (p *selParser) skipSpace() {
	for p.pos < len(p.src) && p.src[p.pos] == ' ' {
		p.pos++
	}
}

func (p *selParser) parseOr() (*Selector, error) {
	return p.parseChain('|', selOr, p.parseAnd)
}

func (p *selParser) parseAnd() (*Selector, error) {
	return p.parseChain('&', selAnd, p.parseMaybeNot)
}

// parseChain parses operands joined by op (written once or twice: `a | b`
// and `a || b` mean the same) into one selector of the given kind, or the
// lone operand when there is no op.
func (p *selParser) parseChain(op byte, kind selKind, operand func() (*Selector, error)) (*Selector, error) {
	first, err := operand()
	if err != nil {
		return nil, err
	}
	subs := []*Selector{first}
	for {
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != op {
			break
		}
		p.pos++
		if p.pos < len(p.src) && p.src[p.pos] == op {
			p.pos++
		}
		p.skipSpace()
		next, err := operand()
		if err != nil {
			return nil, err
		}
		subs = append(subs, next)
	}
	if len(subs) == 1 {
		return first, nil
	}
	return &Selector{kind: kind, subs: subs}, nil
}

func (p *selParser) parseMaybeNot() (*Selector, error) {
	if p.pos < len(p.src) && (p.src[p.pos] == '!' || p.src[p.pos] == '~') {
		p.pos++
		p.skipSpace()
		inner, err := p.parsePrimary()
		if err != nil {
			return nil, err
		}
		return &Selector{kind: selNot, subs: []*Selector{inner}}, nil
	}
	return p.parsePrimary()
}

func (p *selParser) parsePrimary() (*Selector, error) {
	if p.pos < len(p.src) && p.src[p.pos] == '(' {
		p.pos++
		p.skipSpace()
		inner, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != ')' {
			if p.pos >= len(p.src) {
				return nil, p.errf("missing ')'")
			}
			return nil, p.errf("expected ')' but found %q", p.rest())
		}
		p.pos++
		return inner, nil
	}
	return p.parsePath()
}

func (p *selParser) parsePath() (*Selector, error) {
	start := p.pos
	var items []pathItem
	deep := false
	for {
		it, err := p.parseItem()
		if err != nil {
			return nil, err
		}
		if it.kind == itemDeepWildcard {
			if deep {
				return nil, &SelectorError{Selector: p.src, Pos: -1, Reason: "deep wildcard used more than once"}
			}
			deep = true
		}
		items = append(items, it)
		if p.pos < len(p.src) && p.src[p.pos] == '.' {
			p.pos++
			continue
		}
		break
	}
	if len(items) == 1 && items[0].kind == itemWildcard {
		return nil, &SelectorError{Selector: p.src, Pos: start, Reason: "wildcard must be part of a path"}
	}
	return &Selector{kind: selPath, items: items}, nil
}

func isKeyStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isKeyChar(c byte) bool {
	return isKeyStart(c) || (c >= '0' && c <= '9') || c == '-'
}

func (p *selParser) parseItem() (pathItem, error) {
	if p.pos >= len(p.src) {
		return pathItem{}, p.errf("expected a path item but the selector ended")
	}
	c := p.src[p.pos]
	switch {
	case c == '$':
		p.pos++
		st := p.pos
		// Only [a-z_] names exist; reading [A-Za-z0-9_] gives a better message
		// for "$String" than a syntax error at 'S'.
		for p.pos < len(p.src) && isKeyChar(p.src[p.pos]) && p.src[p.pos] != '-' {
			p.pos++
		}
		name := p.src[st:p.pos]
		if name == "" {
			p.pos = st - 1
			return pathItem{}, p.errf("expected a value type name after '$'")
		}
		vt, ok := vtByName[name]
		if !ok {
			p.pos = st - 1
			return pathItem{}, p.errf("unknown value type $%s", name)
		}
		return pathItem{kind: itemType, vt: vt}, nil
	case c == '*':
		p.pos++
		if p.pos < len(p.src) && p.src[p.pos] == '*' {
			p.pos++
			return pathItem{kind: itemDeepWildcard}, nil
		}
		return pathItem{kind: itemWildcard}, nil
	case c >= '0' && c <= '9':
		st := p.pos
		for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
			p.pos++
		}
		n, err := strconv.Atoi(p.src[st:p.pos])
		if err != nil {
			p.pos = st
			return pathItem{}, p.errf("invalid index")
		}
		return pathItem{kind: itemIndex, index: n}, nil
	case isKeyStart(c):
		st := p.pos
		for p.pos < len(p.src) && isKeyChar(p.src[p.pos]) {
			p.pos++
		}
		k := p.src[st:p.pos]
		return keyItem(k), nil
	case c == '\'':
		st := p.pos
		p.pos++
		var b strings.Builder
		for {
			if p.pos >= len(p.src) {
				p.pos = st
				return pathItem{}, p.errf("unterminated quoted key")
			}
			if p.src[p.pos] == '\'' {
				if p.pos+1 < len(p.src) && p.src[p.pos+1] == '\'' {
					b.WriteByte('\'')
					p.pos += 2
					continue
				}
				p.pos++
				break
			}
			b.WriteByte(p.src[p.pos])
			p.pos++
		}
		if b.Len() == 0 {
			p.pos = st
			return pathItem{}, p.errf("empty quoted key")
		}
		k := b.String()
		return keyItem(k), nil
	}
	return pathItem{}, p.errf("unexpected %q, expected a key, index, '*', '**', '$type' or '('", p.rest())
}

func keyItem(k string) pathItem {
	l := strings.ToLower(k)
	return pathItem{kind: itemKey, key: k, lkey: l, ascii: isASCII(l)}
}

// String renders the selector in Relay's canonical display form.
func (s *Selector) String() string {
	var b strings.Builder
	s.write(&b)
	return b.String()
}

func (s *Selector) write(b *strings.Builder) {
	switch s.kind {
	case selAnd:
		for i, x := range s.subs {
			if i > 0 {
				b.WriteString(" && ")
			}
			if x.kind == selOr {
				b.WriteByte('(')
				x.write(b)
				b.WriteByte(')')
			} else {
				x.write(b)
			}
		}
	case selOr:
		for i, x := range s.subs {
			if i > 0 {
				b.WriteString(" || ")
			}
			x.write(b)
		}
	case selNot:
		x := s.subs[0]
		if x.kind == selPath {
			b.WriteByte('!')
			x.write(b)
		} else {
			b.WriteString("!(")
			x.write(b)
			b.WriteByte(')')
		}
	case selPath:
		for i, it := range s.items {
			if i > 0 {
				b.WriteByte('.')
			}
			switch it.kind {
			case itemType:
				b.WriteByte('$')
				b.WriteString(vtNames[it.vt])
			case itemIndex:
				b.WriteString(strconv.Itoa(it.index))
			case itemKey:
				if keyNeedsQuoting(it.key) {
					b.WriteByte('\'')
					b.WriteString(strings.ReplaceAll(it.key, "'", "''"))
					b.WriteByte('\'')
				} else {
					b.WriteString(it.key)
				}
			case itemWildcard:
				b.WriteByte('*')
			case itemDeepWildcard:
				b.WriteString("**")
			}
		}
	}
}

func keyNeedsQuoting(k string) bool {
	if k == "" || !isKeyStart(k[0]) {
		return true
	}
	for i := 1; i < len(k); i++ {
		if !isKeyChar(k[i]) {
			return true
		}
	}
	return false
}

// compareSelectors is Relay's derived structural order (doc §5.4).
func compareSelectors(a, b *Selector) int {
	if a.kind != b.kind {
		return int(a.kind) - int(b.kind)
	}
	switch a.kind {
	case selAnd, selOr, selNot:
		for i := 0; i < len(a.subs) && i < len(b.subs); i++ {
			if c := compareSelectors(a.subs[i], b.subs[i]); c != 0 {
				return c
			}
		}
		return len(a.subs) - len(b.subs)
	}
	for i := 0; i < len(a.items) && i < len(b.items); i++ {
		if c := compareItems(a.items[i], b.items[i]); c != 0 {
			return c
		}
	}
	return len(a.items) - len(b.items)
}

func compareItems(a, b pathItem) int {
	if a.kind != b.kind {
		return int(a.kind) - int(b.kind)
	}
	switch a.kind {
	case itemType:
		return int(a.vt) - int(b.vt)
	case itemIndex:
		return a.index - b.index
	case itemKey:
		return strings.Compare(a.key, b.key)
	}
	return 0
}

// piiLevel is a node's PII attribute (doc §8).
type piiLevel uint8

const (
	piiFalse piiLevel = iota
	piiMaybe
	piiTrue
)

// state is one entered segment of the path from the root to the node being
// processed. The root state has neither key nor index.
type state struct {
	key   string // object key or pair key; "" with index >= 0 for array elements
	index int    // -1 unless an array element
	vt    vtMask
	kh    uint32 // keyHash of key
	kasc  bool   // key is non-empty ASCII (kh is valid)
	// anc is a one-bit-per-key Bloom filter of the keys on the path down to
	// and including this state (lower-cased): deep selectors that need a
	// key above the `**` reject most paths without walking them.
	anc uint64
}

// keyHash is FNV-1a of the ASCII-lower-cased key; ascii=false for keys
// with non-ASCII bytes (Unicode case folding could make them equal to an
// ASCII selector key, so they are never looked up by hash).
func keyHash(k string) (uint32, bool) {
	h := uint32(2166136261)
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c >= utf8RuneSelf {
			return 0, false
		}
		if c >= 'A' && c <= 'Z' {
			c |= 0x20
		}
		h = (h ^ uint32(c)) * 16777619
	}
	return h, true
}

// keyBit maps a key hash to one of 64 Bloom bits; non-ASCII keys set every
// bit.
func keyBit(k string) uint64 {
	h, ascii := keyHash(k)
	return hashBit(h, ascii)
}

func hashBit(h uint32, ascii bool) uint64 {
	if !ascii {
		return ^uint64(0)
	}
	return 1 << (h % 64)
}

// withAncestors fills state.anc for a hand-built path.
func withAncestors(path []state) []state {
	var anc uint64
	for i := range path {
		if path[i].index < 0 && path[i].key != "" {
			h, ascii := keyHash(path[i].key)
			anc |= hashBit(h, ascii)
			path[i].kh, path[i].kasc = h, ascii
		}
		path[i].anc = anc
	}
	return path
}

func (it *pathItem) matchState(pii piiLevel, i int, st *state) bool {
	switch it.kind {
	case itemWildcard:
		return true
	case itemDeepWildcard:
		return pii == piiTrue
	case itemType:
		if !st.vt.has(it.vt) {
			return false
		}
		if pii == piiMaybe {
			return it.vt.maybeAtRoot() && i == 0
		}
		return true
	case itemIndex:
		return st.index >= 0 && st.index == it.index
	case itemKey:
		return st.index < 0 && keyEqual(st.key, it.lkey, it.ascii)
	}
	return false
}

// keyEqual compares a path key with a lower-cased selector key as Relay does
// (both lower-cased), without allocating. ASCII is compared byte-wise; other
// text goes through EqualFold.
func keyEqual(key, lkey string, lascii bool) bool {
	if len(key) == len(lkey) {
		i := 0
		for ; i < len(key); i++ {
			c := key[i]
			if c >= utf8RuneSelf || lkey[i] >= utf8RuneSelf {
				break
			}
			if c >= 'A' && c <= 'Z' {
				c |= 0x20
			}
			if c != lkey[i] {
				return false
			}
		}
		if i == len(key) {
			return true
		}
	} else if lascii && isASCII(key) {
		return false
	}
	return strings.EqualFold(key, lkey)
}

const utf8RuneSelf = 0x80

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8RuneSelf {
			return false
		}
	}
	return true
}

// matches reports whether the selector selects the leaf of path (root first)
// whose PII attribute is pii (doc §6.3).
func (s *Selector) matches(path []state, pii piiLevel) bool {
	if pii == piiFalse {
		return false
	}
	switch s.kind {
	case selAnd:
		for _, x := range s.subs {
			if !x.matches(path, pii) {
				return false
			}
		}
		return true
	case selOr:
		if s.byLeafHash == nil {
			for _, x := range s.subs {
				if x.matches(path, pii) {
					return true
				}
			}
			return false
		}
		for _, x := range s.rest {
			if x.matches(path, pii) {
				return true
			}
		}
		leaf := &path[len(path)-1]
		var cands []*Selector
		switch {
		case leaf.kasc:
			cands = s.byLeafHash[leaf.kh]
		case leaf.index < 0 && leaf.key != "":
			cands = s.subs // non-ASCII key: no shortcut
		}
		for _, x := range cands {
			if x.matches(path, pii) {
				return true
			}
		}
		return false
	case selNot:
		return !s.subs[0].matches(path, pii)
	}
	items := s.items
	depth := len(path) - 1 // the root has depth 0
	if len(items) > depth {
		return false
	}
	if s.deepKeys != 0 && path[len(path)-1].anc&s.deepKeys != s.deepKeys {
		return false // a key required above `**` is not on the path
	}
	si := len(items) - 1
	pi := len(path) - 1
	deep := false
	for ; pi >= 0; pi-- {
		if si < 0 {
			break
		}
		it := &items[si]
		if !it.matchState(pii, si, &path[pi]) {
			return false
		}
		si--
		if it.kind == itemDeepWildcard {
			deep = true
			pi--
			break
		}
	}
	if !deep {
		return true
	}
	// items[0..si] remain, states path[0..pi] remain (root first).
	if si < 0 {
		return pi >= 0
	}
	j := 0
	for ; j <= pi; j++ {
		if items[0].matchState(pii, 0, &path[j]) {
			break
		}
	}
	if j > pi {
		return false
	}
	k := 1
	for j++; j <= pi && k <= si; j, k = j+1, k+1 {
		if !items[k].matchState(pii, k, &path[j]) {
			return false
		}
	}
	return k > si
}
