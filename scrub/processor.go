package scrub

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// proc runs one compiled config over one tree (doc §7).
type proc struct {
	cfg       *compiledConfig
	states    []state // path root → current node
	nodes     []*node // nodes whose serialisation depends on the current node
	valueOnly bool    // EAP attributes in legacy mode: the value is keyed by the attribute name
	// stringsOnly: view hierarchies, where only string values are scrubbed.
	stringsOnly bool
	feat        features // of the string value being searched (cached)
	root        *node    // the document root, whose "_meta" is not data
	changed     bool
}

func kindType(k kind) vtMask {
	switch k {
	case kString:
		return mask(vtString)
	case kNumber:
		return mask(vtNumber)
	case kBool:
		return mask(vtBoolean)
	case kArray:
		return mask(vtArray)
	case kObject:
		return mask(vtObject)
	}
	return 0
}

// touch records that n changed: every enclosing node must be re-serialised
// and carries meta below it.
func (p *proc) touch(n *node) {
	n.raw = nil
	if n.meta != nil {
		n.metaBelow = true
	}
	for _, a := range p.nodes {
		a.raw = nil
		if n.metaBelow {
			a.metaBelow = true
		}
	}
	p.changed = true
}

func skipString(s string) bool {
	switch s {
	case "", "true", "false", "null", "undefined":
		return true
	}
	return false
}

func (p *proc) pushState(key string, index int, vt vtMask) {
	var anc uint64
	if len(p.states) > 0 {
		anc = p.states[len(p.states)-1].anc
	}
	st := state{key: key, index: index, vt: vt}
	if index < 0 && key != "" {
		st.kh, st.kasc = keyHash(key)
		anc |= hashBit(st.kh, st.kasc)
	}
	st.anc = anc
	p.states = append(p.states, st)
}

func (p *proc) popState() { p.states = p.states[:len(p.states)-1] }

// visit processes n, entered under key (index < 0) or index, with schema sc.
func (p *proc) visit(n *node, key string, index int, sc *schema) {
	// anyFalse subtrees are pii=false all the way down: no selector can
	// match anything in them, so they are not walked at all.
	if n == nil || n.kind == kNull || n.kind == kBool || sc == anyFalse {
		return
	}
	vt := sc.vt
	if !sc.isStruct || n.kind != kObject {
		vt |= kindType(n.kind)
	}
	p.pushState(key, index, vt)
	p.visitEntered(n, key, index, sc)
	p.popState()
}

func (p *proc) visitEntered(n *node, key string, index int, sc *schema) {
	pii := sc.pii
	ruleKey := key
	if index >= 0 {
		ruleKey = ""
	}
	switch n.kind {
	case kString:
		if skipString(n.s) {
			return
		}
		switch {
		case sc.special == spNativePath:
			p.nativePath(n, ruleKey, pii)
		case sc.special == spPairList && (sc.cookie || sc.query):
			p.stringPairs(n, sc, ruleKey, pii)
		case sc.special == spMessage:
			// A plain string "message" is logentry.formatted (Relay's legacy
			// alias). When a rule changes it, it is written as
			// {"formatted": …} so the remarks sit on logentry.formatted, where
			// Sentry's UI looks for them.
			p.popState()
			p.pushState("logentry", -1, mask(vtLogEntry))
			c := &node{kind: kString, s: n.s, raw: n.raw, meta: n.meta}
			p.nodes = append(p.nodes, n)
			p.visit(c, "formatted", -1, logEntrySchema.fields["formatted"])
			p.nodes = p.nodes[:len(p.nodes)-1]
			if c.raw == nil {
				*n = node{kind: kObject, keys: []string{"formatted"}, kids: []*node{c}, metaBelow: c.metaBelow}
			}
		default:
			p.applyAll(n, ruleKey, pii)
		}
		return
	case kNumber:
		p.applyAll(n, ruleKey, pii)
		return
	}
	if p.applyAll(n, ruleKey, pii) {
		return
	}
	p.nodes = append(p.nodes, n)
	p.children(n, sc)
	p.nodes = p.nodes[:len(p.nodes)-1]
}

func (p *proc) children(n *node, sc *schema) {
	switch sc.special {
	case spPairList:
		p.pairList(n, sc)
		return
	case spContexts:
		if n.kind == kObject {
			for i, k := range n.keys {
				c := n.kids[i]
				p.visit(c, k, -1, contextSchema(k, c))
			}
			return
		}
	case spValues:
		if n.kind == kArray {
			p.array(n, sc.elem)
			return
		}
	case spAttributes:
		if n.kind == kObject {
			p.attributes(n)
			return
		}
	case spMessage:
		if n.kind == kObject {
			p.popState()
			p.pushState("logentry", -1, mask(vtLogEntry))
			p.object(n, logEntrySchema)
			return
		}
	case spUser:
		if n.kind == kObject {
			p.user(n, sc)
			return
		}
	}
	if n.kind == kObject {
		p.object(n, sc)
	} else {
		p.array(n, sc.element())
	}
}

func (p *proc) object(n *node, sc *schema) {
	root := n == p.root
	for i, k := range n.keys {
		if root && k == "_meta" {
			continue
		}
		p.visit(n.kids[i], k, -1, sc.child(k))
	}
}

// array processes elements by index. A 2-element array whose first element
// is a string is first treated as a (key, value) pair: the value is
// processed with the string as its key (below the array's own state); if
// that left meta on a value that had none, the array is done (doc §7.4,
// Relay's process_array).
func (p *proc) array(n *node, elem *schema) {
	if len(n.kids) == 2 && n.kids[0].kind == kString && n.kids[1].kind != kNull {
		v := n.kids[1]
		wasEmpty := metaEmpty(v.meta)
		p.visit(v, n.kids[0].s, -1, elem)
		if wasEmpty && !metaEmpty(v.meta) {
			return
		}
	}
	for i, e := range n.kids {
		p.visit(e, "", i, elem)
	}
}

func metaEmpty(m *nodeMeta) bool {
	return m == nil || (len(m.rem) == 0 && !m.hasLen && m.orig == nil && len(m.detached) == 0)
}

func (p *proc) pairList(n *node, sc *schema) {
	val := sc.other
	if n.kind == kObject {
		for i, k := range n.keys {
			p.visit(n.kids[i], k, -1, val)
		}
		return
	}
	for i, e := range n.kids {
		if e.kind == kArray && len(e.kids) == 2 && e.kids[0].kind == kString {
			p.nodes = append(p.nodes, e)
			p.visit(e.kids[1], e.kids[0].s, -1, val)
			p.nodes = p.nodes[:len(p.nodes)-1]
			continue
		}
		p.visit(e, "", i, val)
	}
}

// stringPairs handles a Cookie header string or a query string in a pair
// list field: Sentry parses it into pairs before scrubbing. The node is only
// rewritten into pair form when a rule changed one of the values.
func (p *proc) stringPairs(n *node, sc *schema, key string, pii piiLevel) {
	// First the rules for the pair list itself, as for any container (it is
	// a list of pairs, not a string, once Sentry has parsed it).
	st := &p.states[len(p.states)-1]
	saved := st.vt
	st.vt = sc.vt
	container := &node{kind: kArray}
	deleted := p.applyAll(container, key, pii)
	st.vt = saved
	if deleted {
		n.kind, n.s = kNull, ""
		m := n.ensureMeta()
		m.rem = append(m.rem, container.meta.rem...)
		p.touch(n)
		return
	}
	var pairs [][2]string
	if sc.cookie {
		pairs = parseCookies(n.s)
	} else {
		pairs = parseQuery(n.s)
	}
	if len(pairs) == 0 {
		return
	}
	arr := &node{kind: kArray}
	for _, kv := range pairs {
		arr.kids = append(arr.kids, &node{kind: kArray, kids: []*node{
			{kind: kString, s: kv[0]}, {kind: kString, s: kv[1]},
		}})
	}
	sub := &proc{cfg: p.cfg, states: p.states, valueOnly: p.valueOnly}
	sub.nodes = []*node{arr}
	sub.pairList(arr, sc)
	if !sub.changed {
		return
	}
	n.kind, n.s, n.kids = kArray, "", arr.kids
	n.metaBelow = true
	p.touch(n)
}

func parseCookies(s string) [][2]string {
	var out [][2]string
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		out = append(out, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return out
}

func parseQuery(s string) [][2]string {
	s = strings.TrimPrefix(s, "?")
	var out [][2]string
	for part := range strings.SplitSeq(s, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		if d, err := url.QueryUnescape(k); err == nil {
			k = d
		}
		if d, err := url.QueryUnescape(v); err == nil {
			v = d
		}
		out = append(out, [2]string{k, v})
	}
	return out
}

// attributes walks EAP attributes {name: {type, value}} (doc §7.4).
func (p *proc) attributes(n *node) {
	for i, k := range n.keys {
		a := n.kids[i]
		pii := attributePII(k)
		if p.valueOnly {
			if a.kind != kObject {
				continue
			}
			v := a.get("value")
			if v == nil {
				continue
			}
			p.nodes = append(p.nodes, a)
			p.visit(v, k, -1, anyOf(pii))
			p.nodes = p.nodes[:len(p.nodes)-1]
			continue
		}
		p.visit(a, k, -1, attributeSchema(pii))
	}
}

var attributeSchemas = [3]*schema{
	{pii: piiFalse, fields: map[string]*schema{"type": anyFalse, "value": anyFalse}, other: anyFalse, elem: anyFalse},
	{pii: piiMaybe, fields: map[string]*schema{"type": anyFalse, "value": anyMaybe}, other: anyFalse, elem: anyFalse},
	{pii: piiTrue, fields: map[string]*schema{"type": anyFalse, "value": anyTrue}, other: anyFalse, elem: anyFalse},
}

func attributeSchema(p piiLevel) *schema { return attributeSchemas[p] }

func validIP(n *node) bool {
	if n == nil || n.kind == kNull {
		return true // Relay: an absent value counts as valid
	}
	if n.kind != kString {
		return false
	}
	if n.s == "{{auto}}" {
		return true
	}
	_, err := netip.ParseAddr(n.s)
	return err == nil
}

func emptyField(n *node) bool {
	return n == nil || n.kind == kNull || (n.kind == kString && n.s == "")
}

// user processes a user struct; afterwards a scrubbed (no longer valid) IP
// moves into user.id when id, username and email are empty, so "users
// affected" counts keep working with @ip:hash (doc §7.4).
func (p *proc) user(n *node, sc *schema) {
	wasValid := validIP(n.get("ip_address"))
	p.object(n, sc)
	ip := n.get("ip_address")
	if !wasValid || validIP(ip) || !emptyField(n.get("id")) || !emptyField(n.get("username")) || !emptyField(n.get("email")) {
		return
	}
	var keys []string
	var kids []*node
	for i, k := range n.keys {
		if k == "ip_address" || k == "id" {
			continue
		}
		keys = append(keys, k)
		kids = append(kids, n.kids[i])
	}
	n.keys = append(keys, "id")
	n.kids = append(kids, ip)
	ip.metaBelow = ip.meta != nil
	p.touch(n)
}

// nativePath scrubs only the directory of a path; the basename is kept
// (doc §7.4).
func (p *proc) nativePath(n *node, key string, pii piiLevel) {
	orig := n.s
	i := strings.LastIndexAny(orig, `/\`)
	if i < 0 || skipString(orig[:i]) {
		return
	}
	n.s = orig[:i]
	if p.applyAll(n, key, pii) {
		n.kind, n.s = kString, orig[i+1:]
		return
	}
	if n.s == orig[:i] { // no rule changed the directory
		n.s = orig
		return
	}
	n.s = n.s + orig[i:]
}

// applyAll runs every matching application's rules on n (doc §7.1). It
// reports whether n was deleted.
func (p *proc) applyAll(n *node, key string, pii piiLevel) bool {
	if pii == piiFalse || p.cfg == nil || (p.stringsOnly && n.kind != kString) {
		return false
	}
	for ai := range p.cfg.apps {
		app := &p.cfg.apps[ai]
		if !app.sel.matches(p.states, pii) {
			continue
		}
		for _, r := range app.rules {
			if p.applyRule(r, n, key) {
				return true
			}
		}
	}
	return false
}

func (r *leaf) redactsChunks() bool {
	return r.red.method != mDefault && r.red.method != mRemove
}

func (m *matcher) matchKey(key string) bool { return m.matches(key) }

// applyRule applies one rule to n (doc §7.2); true when n was deleted.
func (p *proc) applyRule(r *leaf, n *node, key string) bool {
	redacts := r.redactsChunks()
	if r.anything && (n.kind != kString || !redacts) {
		p.deleteNode(n, r.origin)
		return true
	}
	if n.kind != kString {
		for i := range r.matchers {
			m := &r.matchers[i]
			if m.kind != matchValue && m.matchKey(key) {
				p.deleteNode(n, r.origin)
				return true
			}
		}
		return false
	}
	if r.cookies {
		p.cookieFilter(n, r)
		return false
	}
	for i := range r.matchers {
		m := &r.matchers[i]
		switch m.kind {
		case matchKeyValue, matchKeyOnly:
			if m.matchKey(key) {
				if !redacts {
					p.deleteNode(n, r.origin)
					return true
				}
				p.redact(n, r, nil, nil, true)
				continue
			}
			if m.kind == matchKeyValue {
				p.redact(n, r, m, nil, true)
			}
		case matchValue:
			p.redact(n, r, m, nil, false)
		}
	}
	return false
}

func (p *proc) deleteNode(n *node, id string) {
	n.kind, n.s, n.keys, n.kids = kNull, "", nil, nil
	m := n.ensureMeta()
	m.rem = append(m.rem, remark{id: id, typ: 'x'})
	p.touch(n)
}

// chunk is a piece of a string: plain text or an earlier redaction.
type chunk struct {
	text string
	red  bool
	id   string
	typ  byte
}

// chunksOf splits n.s at its ranged remarks (doc §7.3). ok=false when the
// string has no text chunk left (then nothing can match).
func chunksOf(n *node) (search string, reds []chunk, ok bool) {
	s := n.s
	if n.meta == nil || !hasRanged(n.meta.rem) {
		if strings.IndexByte(s, 0) < 0 {
			return s, nil, s != ""
		}
		return strings.ReplaceAll(s, "\x00", ""), nil, true
	}
	rems := n.meta.rem
	if !slices.IsSortedFunc(rems, func(a, b remark) int { return a.start - b.start }) {
		rems = slices.Clone(rems)
		slices.SortStableFunc(rems, func(a, b remark) int { return a.start - b.start })
	}
	// First pass: is there any text outside the redactions? A fully redacted
	// value (the common case after a whole-value rule) costs nothing more.
	pos, text := 0, false
	for _, r := range rems {
		if !r.ranged || r.start < pos || r.end < r.start || r.end > len(s) {
			continue
		}
		if r.start > pos {
			text = true
			break
		}
		pos = r.end
	}
	if !text && pos >= len(s) {
		return "", nil, false
	}
	var b strings.Builder
	b.Grow(len(s))
	pos = 0
	text = false
	for _, r := range rems {
		if !r.ranged || r.start < pos || r.end < r.start || r.end > len(s) {
			continue
		}
		if r.start > pos {
			b.WriteString(strings.ReplaceAll(s[pos:r.start], "\x00", ""))
			text = true
		}
		b.WriteByte(0)
		reds = append(reds, chunk{text: s[r.start:r.end], red: true, id: r.id, typ: r.typ})
		pos = r.end
	}
	if pos < len(s) {
		b.WriteString(strings.ReplaceAll(s[pos:], "\x00", ""))
		text = true
	}
	return b.String(), reds, text
}

func hasRanged(rs []remark) bool {
	for _, r := range rs {
		if r.ranged {
			return true
		}
	}
	return false
}

// hashHex is Relay's hash redaction: HMAC-SHA1 with an empty key, upper-case hex.
func hashHex(s string) string {
	h := hmac.New(sha1.New, nil)
	h.Write([]byte(s))
	return strings.ToUpper(hex.EncodeToString(h.Sum(nil)))
}

func newRedaction(r *leaf, matched string) chunk {
	switch r.red.method {
	case mMask:
		return chunk{text: strings.Repeat("*", utf8.RuneCountInString(matched)), red: true, id: r.origin, typ: 'm'}
	case mHash:
		return chunk{text: hashHex(matched), red: true, id: r.origin, typ: 'p'}
	case mReplace:
		return chunk{text: r.red.text, red: true, id: r.origin, typ: 's'}
	case mOther:
		return chunk{red: true, id: r.origin, typ: 0}
	}
	return chunk{red: true, id: r.origin, typ: 'x'}
}

// redact applies matcher m of rule r to string node n. whole: any match
// replaces the entire value with one redaction (m == nil: unconditionally,
// used for key matches); otherwise the configured groups of every match are
// replaced. ranges, when non-nil, replaces m's matches (cookie values).
func (p *proc) redact(n *node, r *leaf, m *matcher, ranges [][2]int, whole bool) {
	// Fast reject on the raw value: the search string is the value minus
	// NULs and earlier redactions, so a feature the value lacks the search
	// string lacks too.
	if m != nil && m.feat != nil && ranges == nil && !whole {
		if p.feat.s != n.s || len(n.s) == 0 {
			computeFeatures(&p.feat, n.s)
		}
		if !m.feat(&p.feat) {
			return
		}
	}
	search, reds, ok := chunksOf(n)
	if !ok {
		return
	}
	var out []chunk
	emitText := func(seg string, rix *int, keep bool) {
		for {
			i := strings.IndexByte(seg, 0)
			if i < 0 {
				if keep && seg != "" {
					out = append(out, chunk{text: seg})
				}
				return
			}
			if keep && i > 0 {
				out = append(out, chunk{text: seg[:i]})
			}
			if *rix < len(reds) {
				if keep {
					out = append(out, reds[*rix])
				}
				*rix++
			}
			seg = seg[i+1:]
		}
	}
	if whole {
		if m != nil {
			if !m.matches(search) {
				return
			}
		}
		out = []chunk{newRedaction(r, search)}
	} else {
		if ranges == nil {
			if m.feat != nil {
				if p.feat.s != search || len(search) == 0 {
					computeFeatures(&p.feat, search)
				}
				if !m.feat(&p.feat) {
					return
				}
			}
			if m.pre != nil && !m.pre(search) {
				return
			}
			var idx [][]int
			if m.find != nil {
				idx = m.find(search)
			} else {
				idx = m.re.FindAllStringSubmatchIndex(search, -1)
			}
			if idx == nil {
				return
			}
			for _, loc := range idx {
				for _, g := range m.groups {
					if 2*g+1 >= len(loc) || loc[2*g] < 0 {
						continue
					}
					ranges = append(ranges, [2]int{loc[2*g], loc[2*g+1]})
				}
			}
			if ranges == nil {
				return
			}
		}
		pos, rix := 0, 0
		for _, rg := range ranges {
			if rg[0] < pos {
				continue
			}
			emitText(search[pos:rg[0]], &rix, true)
			emitText(search[rg[0]:rg[1]], &rix, false)
			out = append(out, newRedaction(r, search[rg[0]:rg[1]]))
			pos = rg[1]
		}
		emitText(search[pos:], &rix, true)
	}
	// join
	var b strings.Builder
	var rems []remark
	for _, c := range out {
		start := b.Len()
		b.WriteString(c.text)
		if c.red && c.typ != 0 {
			rems = append(rems, remark{id: c.id, typ: c.typ, ranged: true, start: start, end: b.Len()})
		}
	}
	ns := b.String()
	if ns == n.s {
		return
	}
	meta := n.ensureMeta()
	if !meta.hasLen {
		meta.len, meta.hasLen = utf8.RuneCountInString(n.s), true
	}
	meta.rem = rems
	n.s = ns
	p.touch(n)
}

// cookieFilter replaces the values of sensitive cookies inside a bulk
// Cookie header string (newest Relay, doc §15.1).
func (p *proc) cookieFilter(n *node, r *leaf) {
	search, _, ok := chunksOf(n)
	if !ok {
		return
	}
	var ranges [][2]int
	pos := 0
	for pos <= len(search) {
		end := strings.IndexByte(search[pos:], ';')
		if end < 0 {
			end = len(search)
		} else {
			end += pos
		}
		part := search[pos:end]
		if eq := strings.IndexByte(part, '='); eq >= 0 {
			name := strings.TrimSpace(part[:eq])
			vs := pos + eq + 1
			for vs < end && search[vs] == ' ' {
				vs++
			}
			ve := end
			for ve > vs && search[ve-1] == ' ' {
				ve--
			}
			if ve > vs && isSensitiveCookie(name) {
				ranges = append(ranges, [2]int{vs, ve})
			}
		}
		pos = end + 1
	}
	if len(ranges) > 0 {
		p.redact(n, r, nil, ranges, false)
	}
}

var sensitiveCookieSet = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range sensitiveCookies {
		m[c] = true
	}
	return m
}()

// isSensitiveCookie matches the sensitive cookie names case-insensitively,
// including numbered chunks such as session__17 (Relay PR #6392).
func isSensitiveCookie(name string) bool {
	name = strings.ToLower(name)
	if sensitiveCookieSet[name] {
		return true
	}
	if i := strings.LastIndex(name, "__"); i > 0 {
		digits := name[i+2:]
		if digits != "" && strings.Trim(digits, "0123456789") == "" {
			return sensitiveCookieSet[name[:i]]
		}
	}
	return false
}
