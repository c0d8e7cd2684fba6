package scrub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Config is a scrubbing configuration: Sentry's legacy settings and/or an
// advanced piiConfig (the JSON Sentry stores as a project's "piiConfig").
// Both may be set; the advanced config runs first (doc §1).
type Config struct {
	DataScrubbing *DataScrubbing
	PIIConfig     []byte // Sentry piiConfig JSON; nil, empty or "null" = none
	// MaxRecordingSize bounds a replay recording decompressed for
	// scrubbing (Relay's limits.max_replay_uncompressed_size); a larger one
	// is an error, so it is never forwarded unscrubbed. 0 means
	// DefaultMaxRecordingSize.
	MaxRecordingSize int64
}

// Scrubber applies a compiled configuration.
type Scrubber struct {
	advanced *compiledConfig
	legacy   *compiledConfig
	graphql  bool // scrubData: GraphQL variables (doc §9.6)
	scrubIPs bool
	// normalize: apply Relay's pre-scrub normalisation (Cookie header →
	// request.cookies). Always on; Relay's processor-level tests run without
	// it, so the vector tests switch it off for those.
	normalize bool
	attachSel []*Selector // advanced selectors addressing $attachments.<name>
	// maxRecording bounds a decompressed replay recording (Config.MaxRecordingSize).
	maxRecording int64
}

// Compile validates and compiles cfg. A nil or empty configuration yields a
// no-op Scrubber.
func Compile(cfg Config) (*Scrubber, error) {
	s := &Scrubber{normalize: true, maxRecording: cfg.MaxRecordingSize}
	if s.maxRecording <= 0 {
		s.maxRecording = DefaultMaxRecordingSize
	}
	if p := bytes.TrimSpace(cfg.PIIConfig); len(p) > 0 {
		pc, err := parsePIIConfig(p)
		if err != nil {
			return nil, fmt.Errorf("scrub: %w", err)
		}
		s.advanced = compileConfig(pc)
		if s.advanced != nil {
			for _, a := range s.advanced.apps {
				if addressesAttachments(a.sel) {
					s.attachSel = append(s.attachSel, a.sel)
				}
			}
		}
	}
	if ds := cfg.DataScrubbing; ds != nil {
		s.legacy = compileConfig(legacyToConfig(ds))
		s.graphql = ds.ScrubData
		s.scrubIPs = ds.ScrubIPAddresses
	}
	return s, nil
}

// ParseDataScrubbing decodes Sentry's legacy settings JSON
// ({"scrubData":true,...}).
func ParseDataScrubbing(b []byte) (*DataScrubbing, error) {
	var ds DataScrubbing
	if err := json.Unmarshal(b, &ds); err != nil {
		return nil, fmt.Errorf("scrub: data scrubbing settings: %w", err)
	}
	return &ds, nil
}

// Noop reports whether the scrubber never changes anything.
func (s *Scrubber) Noop() bool {
	return s == nil || (s.advanced == nil && s.legacy == nil && !s.graphql)
}

// ScrubsIPAddresses reports whether IP addresses are removed
// (scrubIpAddresses). The caller should then not forward the client's
// address (e.g. X-Forwarded-For) either, or Sentry infers it again.
func (s *Scrubber) ScrubsIPAddresses() bool { return s != nil && s.scrubIPs }

// ScrubEvent scrubs an event or transaction payload. When nothing changed it
// returns the input slice itself and changed=false; otherwise out is a new
// valid JSON document with `_meta` merged. err is set only when the payload
// is not a JSON object (it is then returned unchanged as out).
func (s *Scrubber) ScrubEvent(event []byte) (out []byte, changed bool, err error) {
	return s.scrubDoc(event, eventSchema)
}

// Result is the outcome of ScrubEventMeta: the scrubbed event without its
// `_meta`, and the `_meta` object on its own (nil when there is none), for
// showing a person what was scrubbed.
type Result struct {
	Event   []byte
	Meta    []byte
	Changed bool
}

// ScrubEventMeta scrubs like ScrubEvent and splits the `_meta` off.
func (s *Scrubber) ScrubEventMeta(event []byte) (Result, error) {
	out, changed, err := s.ScrubEvent(event)
	if err != nil {
		return Result{}, err
	}
	root, err := parseJSON(out)
	if err != nil {
		return Result{}, fmt.Errorf("scrub: re-parse: %w", err)
	}
	res := Result{Changed: changed}
	var ev []byte
	ev = append(ev, '{')
	first := true
	for i, k := range root.keys {
		if k == "_meta" {
			res.Meta = appendJSON(nil, root.kids[i])
			continue
		}
		if !first {
			ev = append(ev, ',')
		}
		first = false
		ev = appendString(ev, k)
		ev = append(ev, ':')
		ev = appendJSON(ev, root.kids[i])
	}
	res.Event = append(ev, '}')
	return res, nil
}

// Item describes an envelope item for ScrubItem, from its item header.
type Item struct {
	Type           string // "event", "transaction", "log", "span", "attachment", …
	Filename       string // attachments: the file name
	AttachmentType string // attachments: e.g. "event.view_hierarchy"
	ContentType    string
}

// ScrubItem scrubs one envelope item payload according to its type, as Relay
// does (doc §1, §9):
//
//   - event, transaction, feedback: the event processor (with _meta);
//   - replay_event: the same, rooted at $replay;
//   - log, trace_metric and span v2 containers ({"items":[…]}): per item,
//     attributes as objects for the advanced config and keyed by their name
//     for the legacy settings (with _meta per item); a plain span is an event
//     rooted at $span;
//   - replay_recording: custom rrweb events only (no _meta, recompressed);
//   - attachment: view hierarchies as JSON, other files byte-wise with their
//     length kept, and only when an advanced selector names
//     $attachments.<file> (no _meta);
//   - everything else (sessions, client reports, check-ins, profiles,
//     user reports, raw security reports, replay videos) is returned as is.
//
// The contract on out/changed is ScrubEvent's. err means the payload could
// not be parsed for its type; out is then the unchanged input, which Sentry
// would reject as well.
func (s *Scrubber) ScrubItem(it Item, payload []byte) (out []byte, changed bool, err error) {
	if s.Noop() {
		return payload, false, nil
	}
	switch it.Type {
	case "event", "transaction", "feedback":
		return s.scrubDoc(payload, eventSchema)
	case "replay_event":
		return s.scrubDoc(payload, replaySchema)
	case "log":
		return s.scrubEAP(payload, ourLogSchema)
	case "trace_metric":
		return s.scrubEAP(payload, traceMetricSchema)
	case "span":
		if strings.Contains(it.ContentType, "span.v2") || isItemContainer(payload) {
			return s.scrubEAP(payload, spanV2Schema)
		}
		return s.scrubDoc(payload, spanRootSchema)
	case "attachment":
		return s.ScrubAttachment(it.Filename, it.AttachmentType, payload)
	case "replay_recording":
		return s.scrubRecording(payload)
	}
	return payload, false, nil
}

var spanRootSchema = func() *schema {
	c := *spanSchema
	return &c
}()

func isItemContainer(b []byte) bool {
	root, ps, err := parseDoc(b)
	if err != nil {
		return false
	}
	defer ps.release()
	it := root.get("items")
	return root.kind == kObject && it != nil && it.kind == kArray
}

func (s *Scrubber) scrubDoc(in []byte, sc *schema) ([]byte, bool, error) {
	if s.Noop() {
		return in, false, nil
	}
	root, ps, err := parseDoc(in)
	if err != nil {
		return in, false, fmt.Errorf("scrub: %w", err)
	}
	defer ps.release()
	if root.kind != kObject {
		return in, false, fmt.Errorf("scrub: payload is not a JSON object")
	}
	if m := root.get("_meta"); m != nil {
		attachMeta(root, m, 0)
	}
	changed := false
	if s.graphql && sc == eventSchema {
		changed = scrubGraphQL(root) || changed
	}
	if s.normalize && sc == eventSchema && (s.advanced != nil || s.legacy != nil) {
		changed = normalizeCookieHeader(root) || changed
	}
	for _, cfg := range []*compiledConfig{s.advanced, s.legacy} {
		if cfg == nil {
			continue
		}
		p := proc{cfg: cfg, states: make([]state, 0, 16), nodes: make([]*node, 0, 16), root: root}
		p.visit(root, "", -1, sc)
		changed = changed || p.changed
	}
	if !changed {
		return in, false, nil
	}
	return appendDoc(make([]byte, 0, len(in)+256), root), true, nil
}

// scrubEAP scrubs a container of EAP items ({"items":[…]}): each item is its
// own root; advanced rules see attributes as objects, legacy rules see each
// attribute's value keyed by the attribute name (doc §1, §7.4).
func (s *Scrubber) scrubEAP(in []byte, sc *schema) ([]byte, bool, error) {
	root, ps, err := parseDoc(in)
	if err != nil {
		return in, false, fmt.Errorf("scrub: %w", err)
	}
	defer ps.release()
	if root.kind != kObject {
		return in, false, fmt.Errorf("scrub: payload is not a JSON object")
	}
	items := root.get("items")
	if items == nil || items.kind != kArray {
		return in, false, nil
	}
	changed := false
	for _, it := range items.kids {
		if it.kind != kObject {
			continue
		}
		if m := it.get("_meta"); m != nil {
			attachMeta(it, m, 0)
		}
		ch := false
		for i, cfg := range []*compiledConfig{s.advanced, s.legacy} {
			if cfg == nil {
				continue
			}
			p := proc{cfg: cfg, valueOnly: i == 1, root: it}
			// Relay enters the item below an untyped root, so `$log.body`
			// has the depth it needs.
			p.pushState("", -1, 0)
			p.visit(it, "", -1, sc)
			ch = ch || p.changed
		}
		if ch {
			changed = true
			// re-serialise the item with its _meta
			b := appendDoc(nil, it)
			it.raw = b
			items.raw = nil
			root.raw = nil
		}
	}
	if !changed {
		return in, false, nil
	}
	return appendJSON(make([]byte, 0, len(in)+256), root), true, nil
}

// appendDoc writes an object root with its `_meta` (replacing any incoming
// one, whose entries were attached to the tree and are carried over).
func appendDoc(dst []byte, root *node) []byte {
	if !root.metaBelow {
		return appendJSON(dst, root)
	}
	dst = append(dst, '{')
	first := true
	for i, k := range root.keys {
		if k == "_meta" {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, k)
		dst = append(dst, ':')
		dst = appendJSON(dst, root.kids[i])
	}
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, `"_meta":`...)
	dst = appendMetaTree(dst, root, 0)
	return append(dst, '}')
}

// normalizeCookieHeader mirrors Relay's normalisation, which runs before
// scrubbing (doc §9.2): the Cookie request header is parsed into
// request.cookies when those are empty, and removed from the headers.
func normalizeCookieHeader(root *node) bool {
	req := root.get("request")
	if req == nil || req.kind != kObject {
		return false
	}
	h := req.get("headers")
	if h == nil {
		return false
	}
	var cookie string
	found := false
	switch h.kind {
	case kObject:
		for i := 0; i < len(h.keys); i++ {
			if strings.EqualFold(h.keys[i], "cookie") {
				if v, ok := h.kids[i].str(); ok && !found {
					cookie, found = v, true
				} else if !found {
					found = true
				}
				h.keys = append(h.keys[:i:i], h.keys[i+1:]...)
				h.kids = append(h.kids[:i:i], h.kids[i+1:]...)
				i--
			}
		}
	case kArray:
		for i := 0; i < len(h.kids); i++ {
			e := h.kids[i]
			if e.kind == kArray && len(e.kids) == 2 && e.kids[0].kind == kString && strings.EqualFold(e.kids[0].s, "cookie") {
				if v, ok := e.kids[1].str(); ok && !found {
					cookie = v
				}
				found = true
				h.kids = append(h.kids[:i:i], h.kids[i+1:]...)
				i--
			}
		}
	}
	if !found {
		return false
	}
	h.raw, req.raw, root.raw = nil, nil, nil
	if c := req.get("cookies"); emptyCookies(c) && cookie != "" {
		pairs := parseCookies(cookie)
		arr := &node{kind: kArray}
		for _, kv := range pairs {
			arr.kids = append(arr.kids, &node{kind: kArray, kids: []*node{
				{kind: kString, s: kv[0]}, {kind: kString, s: kv[1]},
			}})
		}
		replaced := false
		for i, k := range req.keys {
			if k == "cookies" {
				req.kids[i] = arr
				replaced = true
			}
		}
		if !replaced {
			req.keys = append(req.keys, "cookies")
			req.kids = append(req.kids, arr)
		}
	}
	return true
}

func emptyCookies(c *node) bool {
	if c == nil || c.kind == kNull {
		return true
	}
	switch c.kind {
	case kString:
		return c.s == ""
	case kArray, kObject:
		return len(c.kids) == 0
	}
	return false
}

// scrubGraphQL replaces GraphQL variables and the response data they appear
// in (doc §9.6). No remarks are written, as in Relay.
func scrubGraphQL(root *node) bool {
	req := root.get("request")
	if req == nil {
		return false
	}
	at, _ := req.get("api_target").str()
	if !strings.EqualFold(at, "graphql") {
		return false
	}
	data := req.get("data")
	if data == nil || data.kind != kObject {
		return false
	}
	changed := false
	keys := map[string]bool{}
	if vars := data.get("variables"); vars != nil && vars.kind == kObject {
		for i, k := range vars.keys {
			keys[k] = true
			v := vars.kids[i]
			if v.kind == kString && v.s == "[Filtered]" {
				continue
			}
			*v = node{kind: kString, s: "[Filtered]"}
			changed = true
		}
		if changed {
			vars.raw, data.raw, req.raw, root.raw = nil, nil, nil, nil
		}
	}
	ctx := root.get("contexts")
	resp := ctx.get("response")
	rdata := resp.get("data")
	if rdata == nil || rdata.kind != kObject {
		return changed
	}
	touchResp := func() { rdata.raw, resp.raw, ctx.raw, root.raw = nil, nil, nil, nil }
	if len(keys) == 0 {
		for i := 0; i < len(rdata.keys); i++ {
			if rdata.keys[i] == "data" {
				rdata.keys = append(rdata.keys[:i:i], rdata.keys[i+1:]...)
				rdata.kids = append(rdata.kids[:i:i], rdata.kids[i+1:]...)
				i--
				touchResp()
				changed = true
			}
		}
		return changed
	}
	if inner := rdata.get("data"); inner != nil && filterGraphQLResponse(inner, keys, 0) {
		inner.raw = nil
		touchResp()
		changed = true
	}
	return changed
}

func filterGraphQLResponse(n *node, keys map[string]bool, depth int) bool {
	if depth > maxDepth {
		return false
	}
	changed := false
	switch n.kind {
	case kObject:
		for i, k := range n.keys {
			c := n.kids[i]
			if c.kind == kObject {
				if filterGraphQLResponse(c, keys, depth+1) {
					changed = true
					n.raw = nil
				}
				continue
			}
			if keys[k] && !(c.kind == kString && c.s == "[Filtered]") {
				*c = node{kind: kString, s: "[Filtered]"}
				n.raw = nil
				changed = true
			}
		}
	case kArray:
		for _, c := range n.kids {
			if filterGraphQLResponse(c, keys, depth+1) {
				changed = true
				n.raw = nil
			}
		}
	}
	return changed
}

// addressesAttachments: a path selector that starts with $attachments and
// names something below it (doc §9.4).
func addressesAttachments(sel *Selector) bool {
	switch sel.kind {
	case selPath:
		return len(sel.items) >= 2 && sel.items[0].kind == itemType && sel.items[0].vt == vtAttachments
	case selAnd, selOr:
		for _, x := range sel.subs {
			if addressesAttachments(x) {
				return true
			}
		}
	}
	return false
}
