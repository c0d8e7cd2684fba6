package scrub

import (
	"regexp"
	"sync"
	"unicode/utf16"
)

// Attachments (doc §9.4). Only the advanced piiConfig applies; legacy
// settings never touch attachments. View hierarchies are JSON and scrubbed
// string-wise; other files only when some selector addresses
// `$attachments.<name>`, and then byte-wise with the length preserved.
// Minidumps are not parsed: they are treated as plain attachments, as Relay
// does when a minidump fails to parse.

const viewHierarchyType = "event.view_hierarchy"

// ScrubAttachment scrubs one attachment. The out/changed contract is
// ScrubEvent's; binary attachments keep their length.
func (s *Scrubber) ScrubAttachment(filename, attachmentType string, payload []byte) ([]byte, bool, error) {
	if s == nil || s.advanced == nil {
		return payload, false, nil
	}
	if attachmentType == viewHierarchyType {
		return s.scrubViewHierarchy(payload)
	}
	if len(s.attachSel) == 0 {
		return payload, false, nil
	}
	out, changed := scrubBytes(s.advanced, filename, payload)
	if !changed {
		return payload, false, nil
	}
	return out, true, nil
}

// scrubViewHierarchy treats every string in the JSON as a pii=true $string
// at its key path; a deleting rule yields "" (no _meta is written).
func (s *Scrubber) scrubViewHierarchy(payload []byte) ([]byte, bool, error) {
	root, err := parseJSON(payload)
	if err != nil {
		// Relay leaves an unparsable view hierarchy alone.
		return payload, false, nil
	}
	p := proc{cfg: s.advanced, stringsOnly: true, root: root}
	p.visit(root, "", -1, anyTrue)
	if !p.changed {
		return payload, false, nil
	}
	stripMeta(root, 0)
	return appendJSON(make([]byte, 0, len(payload)), root), true, nil
}

// stripMeta turns deletions into "" and drops remarks (attachments carry no
// _meta).
func stripMeta(n *node, depth int) {
	if depth > maxDepth {
		return
	}
	if n.meta != nil {
		if n.kind == kNull {
			n.kind, n.s = kString, ""
			n.raw = nil
		}
		n.meta = nil
	}
	for _, k := range n.kids {
		stripMeta(k, depth+1)
	}
}

// scrubBytes runs every application selecting the file state
// ($attachments → <filename>, type Binary, pii true) over the bytes.
func scrubBytes(cfg *compiledConfig, filename string, data []byte) ([]byte, bool) {
	// root → "$attachments" container → file, as Relay enters them.
	path := withAncestors([]state{
		{index: -1},
		{index: -1, vt: mask(vtAttachments)},
		{key: filename, index: -1, vt: mask(vtBinary)},
	})
	var out []byte
	var done []bool // bytes already replaced (the UTF-16 pass skips them)
	for ai := range cfg.apps {
		app := &cfg.apps[ai]
		if !app.sel.matches(path, piiTrue) {
			continue
		}
		for _, r := range app.rules {
			if out == nil {
				out = append([]byte(nil), data...)
				done = make([]bool, len(data))
			}
			scrubBytesRule(r, out, done)
		}
	}
	if out == nil {
		return data, false
	}
	return out, string(out) != string(data)
}

// byteRegexes caches re with `.` matching newlines, as Relay's bytes
// regexes; bounded like regexCache.
var byteRegexes = struct {
	sync.Mutex
	m map[*regexp.Regexp]*regexp.Regexp
}{m: map[*regexp.Regexp]*regexp.Regexp{}}

func byteRegex(re *regexp.Regexp) *regexp.Regexp {
	byteRegexes.Lock()
	b, ok := byteRegexes.m[re]
	byteRegexes.Unlock()
	if ok {
		return b
	}
	b, err := regexp.Compile("(?s)" + re.String())
	if err != nil {
		b = re
	}
	byteRegexes.Lock()
	if len(byteRegexes.m) >= reCacheMax {
		clear(byteRegexes.m)
	}
	byteRegexes.m[re] = b
	byteRegexes.Unlock()
	return b
}

func scrubBytesRule(r *leaf, data []byte, done []bool) {
	ms := r.matchers
	if r.anything {
		ms = []matcher{{kind: matchValue, re: reAnything, groups: []int{0}}}
	}
	for i := range ms {
		m := &ms[i]
		re := byteRegex(m.re)
		groups := m.groups
		if m.kind != matchValue {
			groups = []int{0} // key patterns are treated as value patterns
		}
		// UTF-8 / raw bytes
		for _, loc := range re.FindAllSubmatchIndex(data, -1) {
			for _, g := range groups {
				if 2*g+1 >= len(loc) || loc[2*g] < 0 || loc[2*g] == loc[2*g+1] {
					continue
				}
				st, en := loc[2*g], loc[2*g+1]
				fillBytes(r, data[st:en], data[st:en])
				for k := st; k < en; k++ {
					done[k] = true
				}
			}
		}
		// UTF-16LE segments of at least 5 characters, at both alignments
		for align := 0; align < 2; align++ {
			for _, seg := range utf16Segments(data, align) {
				scrubUTF16Segment(r, re, groups, data, done, seg)
			}
		}
	}
}

// fillBytes writes the redaction of matched into dst (same length).
func fillBytes(r *leaf, matched, dst []byte) {
	var text string
	switch r.red.method {
	case mReplace:
		text = r.red.text
	case mHash:
		text = hashHex(string(matched))
	}
	padInto(dst, text)
}

func padInto(dst []byte, text string) {
	n := copy(dst, text)
	for i := n; i < len(dst); i++ {
		dst[i] = '*'
	}
}

type segment struct{ start, end int } // byte offsets, even length

// utf16Segments finds runs of printable UTF-16LE code units (no surrogates,
// no NUL or control characters other than tab/newline) of at least 5 chars.
func utf16Segments(b []byte, align int) []segment {
	var segs []segment
	start := -1
	i := align
	for ; i+1 < len(b); i += 2 {
		c := uint16(b[i]) | uint16(b[i+1])<<8
		ok := !utf16.IsSurrogate(rune(c)) && (c >= 0x20 || c == '\t' || c == '\n' || c == '\r')
		if ok {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 && (i-start)/2 >= 5 {
			segs = append(segs, segment{start, i})
		}
		start = -1
	}
	if start >= 0 && (i-start)/2 >= 5 {
		segs = append(segs, segment{start, i})
	}
	return segs
}

func scrubUTF16Segment(r *leaf, re *regexp.Regexp, groups []int, data []byte, done []bool, seg segment) {
	units := make([]uint16, 0, (seg.end-seg.start)/2)
	for i := seg.start; i+1 < seg.end; i += 2 {
		units = append(units, uint16(data[i])|uint16(data[i+1])<<8)
	}
	// every unit is a BMP character, so rune index == unit index
	runes := make([]rune, len(units))
	for i, u := range units {
		runes[i] = rune(u)
	}
	text := string(runes)
	// byte offset in text → character index
	charAt := make([]int, len(text)+1)
	ci := 0
	for bi := range text {
		charAt[bi] = ci
		ci++
	}
	charAt[len(text)] = ci // regexp match bounds are always rune boundaries
	for _, loc := range re.FindAllStringSubmatchIndex(text, -1) {
		for _, g := range groups {
			if 2*g+1 >= len(loc) || loc[2*g] < 0 || loc[2*g] == loc[2*g+1] {
				continue
			}
			cs, ce := charAt[loc[2*g]], charAt[loc[2*g+1]]
			bs, be := seg.start+2*cs, seg.start+2*ce
			if overlapsDone(done, bs, be) {
				continue
			}
			n := ce - cs
			var repl string
			switch r.red.method {
			case mReplace:
				repl = r.red.text
			case mHash:
				repl = hashHex(string(data[bs:be]))
			}
			rr := []rune(repl)
			for k := 0; k < n; k++ {
				c := '*'
				if k < len(rr) && rr[k] < 0x10000 {
					c = rr[k]
				}
				data[bs+2*k] = byte(c)
				data[bs+2*k+1] = byte(c >> 8)
			}
			for k := bs; k < be; k++ {
				done[k] = true
			}
		}
	}
}

func overlapsDone(done []bool, s, e int) bool {
	for k := s; k < e; k++ {
		if done[k] {
			return true
		}
	}
	return false
}
