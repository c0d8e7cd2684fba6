package scrub

import (
	"strconv"
)

// nodeMeta is the `_meta` entry of one node (doc §10): remarks and the
// original length. orig keeps an entry that arrived with the input (its other
// keys, such as err or val, are preserved).
type nodeMeta struct {
	rem    []remark
	len    int
	hasLen bool
	orig   *node
	// detached: incoming _meta subtrees for children that are not in the
	// data (e.g. meta of a value an SDK removed); written back unchanged.
	detached []detachedMeta
}

type detachedMeta struct {
	key  string
	meta *node
}

type remark struct {
	id     string
	typ    byte // 'x' removed, 's' substituted, 'm' masked, 'p' pseudonymized, 'a' annotated
	ranged bool
	start  int
	end    int
}

func (n *node) ensureMeta() *nodeMeta {
	if n.meta == nil {
		n.meta = &nodeMeta{}
	}
	return n.meta
}

// attachMeta seeds data nodes with remarks from an incoming `_meta` tree, so
// earlier redactions are preserved and not re-redacted (doc §7.3).
func attachMeta(data, meta *node, depth int) bool {
	if data == nil || meta == nil || meta.kind != kObject || depth > maxDepth {
		return false
	}
	found := false
	for i, k := range meta.keys {
		m := meta.kids[i]
		if k == "" {
			if m.kind != kObject {
				continue
			}
			nm := data.ensureMeta()
			nm.orig = m
			found = true
			if r := m.get("rem"); r != nil && r.kind == kArray {
				for _, x := range r.kids {
					if rm, ok := parseRemark(x); ok {
						nm.rem = append(nm.rem, rm)
					}
				}
			}
			if l := m.get("len"); l != nil && l.kind == kNumber {
				if v, err := strconv.Atoi(l.s); err == nil {
					nm.len, nm.hasLen = v, true
				}
			}
			continue
		}
		var child *node
		switch data.kind {
		case kObject:
			child = data.get(k)
		case kArray:
			if idx, err := strconv.Atoi(k); err == nil && idx >= 0 && idx < len(data.kids) {
				child = data.kids[idx]
			}
		}
		if child == nil {
			nm := data.ensureMeta()
			nm.detached = append(nm.detached, detachedMeta{key: k, meta: m})
			found = true
			continue
		}
		if attachMeta(child, m, depth+1) {
			found = true
		}
	}
	if found {
		data.metaBelow = true
	}
	return found
}

func parseRemark(x *node) (remark, bool) {
	if x.kind != kArray || len(x.kids) < 2 {
		return remark{}, false
	}
	id, ok1 := x.kids[0].str()
	ty, ok2 := x.kids[1].str()
	if !ok1 || !ok2 || len(ty) != 1 {
		return remark{}, false
	}
	r := remark{id: string([]byte(id)), typ: ty[0]}
	if len(x.kids) >= 4 && x.kids[2].kind == kNumber && x.kids[3].kind == kNumber {
		s, err1 := strconv.Atoi(x.kids[2].s)
		e, err2 := strconv.Atoi(x.kids[3].s)
		if err1 == nil && err2 == nil {
			r.ranged, r.start, r.end = true, s, e
		}
	}
	return r, true
}

// appendMetaEntry writes {"rem":[…],"len":n} plus any other keys of an
// incoming entry.
func appendMetaEntry(dst []byte, m *nodeMeta) []byte {
	dst = append(dst, '{')
	first := true
	sep := func() {
		if !first {
			dst = append(dst, ',')
		}
		first = false
	}
	if m.orig != nil {
		for i, k := range m.orig.keys {
			if k == "rem" || k == "len" {
				continue
			}
			sep()
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendJSON(dst, m.orig.kids[i])
		}
	}
	if len(m.rem) > 0 {
		sep()
		dst = append(dst, `"rem":[`...)
		for i, r := range m.rem {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '[')
			dst = appendString(dst, r.id)
			dst = append(dst, ',', '"', r.typ, '"')
			if r.ranged {
				dst = append(dst, ',')
				dst = strconv.AppendInt(dst, int64(r.start), 10)
				dst = append(dst, ',')
				dst = strconv.AppendInt(dst, int64(r.end), 10)
			}
			dst = append(dst, ']')
		}
		dst = append(dst, ']')
	}
	if m.hasLen {
		sep()
		dst = append(dst, `"len":`...)
		dst = strconv.AppendInt(dst, int64(m.len), 10)
	}
	return append(dst, '}')
}

// hasMeta reports whether n or a descendant carries meta worth writing; the
// flag is maintained by attachMeta and the processor (markMeta).
func hasMeta(n *node, _ int) bool { return n != nil && n.metaBelow }

// appendMetaTree writes the `_meta` object mirroring n. Callers check
// hasMeta(n) first.
func appendMetaTree(dst []byte, n *node, depth int) []byte {
	dst = append(dst, '{')
	first := true
	if n.meta != nil && (len(n.meta.rem) > 0 || n.meta.hasLen || n.meta.orig != nil) {
		dst = append(dst, `"":`...)
		dst = appendMetaEntry(dst, n.meta)
		first = false
	}
	if n.meta != nil {
		for _, d := range n.meta.detached {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendString(dst, d.key)
			dst = append(dst, ':')
			dst = appendJSON(dst, d.meta)
		}
	}
	for i, k := range n.kids {
		if !hasMeta(k, depth+1) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		if n.kind == kObject {
			dst = appendString(dst, n.keys[i])
		} else {
			dst = append(dst, '"')
			dst = strconv.AppendInt(dst, int64(i), 10)
			dst = append(dst, '"')
		}
		dst = append(dst, ':')
		dst = appendMetaTree(dst, k, depth+1)
	}
	return append(dst, '}')
}
