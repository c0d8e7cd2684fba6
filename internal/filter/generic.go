package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Generic filters (`filterSettings.generic`, Relay's relay-filter/src/generic.rs): a list of
// {id, isEnabled, condition}, where the condition is Relay's RuleCondition DSL evaluated over
// the event's fields (Relay's `Getter for Event`). They run before every other filter, in the
// order given; the first enabled one whose condition matches filters the event, with its id
// as the reason. A document whose `version` is above the one supported here (1) applies no
// generic filter at all, as in Relay.

// maxGenericVersion is Relay's MAX_SUPPORTED_VERSION.
const maxGenericVersion = 1

// maxConditionDepth bounds the nesting of a condition: a settings document is typed by hand
// in static mode, and evaluation recurses.
const maxConditionDepth = 32

type genericFilter struct {
	id   Reason
	cond condition
}

type genericJSON struct {
	Version int             `json:"version"`
	Filters json.RawMessage `json:"filters"`
}

type genericFilterJSON struct {
	ID        string          `json:"id"`
	IsEnabled bool            `json:"isEnabled"`
	Condition json.RawMessage `json:"condition"`
}

// compileGeneric returns the enabled filters with a condition, first occurrence of an id
// winning. `filters` may be a list (Relay's format) or an object keyed by id (older configs).
func compileGeneric(raw json.RawMessage) ([]genericFilter, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var g genericJSON
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, fmt.Errorf("generic: %w", err)
	}
	if g.Version > maxGenericVersion {
		return nil, nil
	}
	var list []genericFilterJSON
	fs := bytes.TrimSpace(g.Filters)
	switch {
	case len(fs) == 0 || string(fs) == "null":
	case fs[0] == '{':
		dec := json.NewDecoder(bytes.NewReader(fs))
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("generic: filters: %w", err)
		}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, fmt.Errorf("generic: filters: %w", err)
			}
			var f genericFilterJSON
			if err := dec.Decode(&f); err != nil {
				return nil, fmt.Errorf("generic: filters: %w", err)
			}
			if f.ID == "" {
				f.ID, _ = k.(string)
			}
			list = append(list, f)
		}
	default:
		if err := json.Unmarshal(fs, &list); err != nil {
			return nil, fmt.Errorf("generic: filters: %w", err)
		}
	}
	seen := map[string]bool{}
	var out []genericFilter
	for _, f := range list {
		if seen[f.ID] {
			continue
		}
		seen[f.ID] = true
		c := bytes.TrimSpace(f.Condition)
		if !f.IsEnabled || len(c) == 0 || string(c) == "null" {
			continue
		}
		cond, err := parseCondition(c, 0)
		if err != nil {
			return nil, fmt.Errorf("generic: filter %q: %w", f.ID, err)
		}
		out = append(out, genericFilter{id: Reason(f.ID), cond: cond})
	}
	return out, nil
}

// ---- conditions -------------------------------------------------------------

type condition interface {
	match(g *getter) bool
}

type condJSON struct {
	Op      string          `json:"op"`
	Name    string          `json:"name"`
	Value   json.RawMessage `json:"value"`
	Inner   json.RawMessage `json:"inner"`
	Options struct {
		IgnoreCase bool `json:"ignoreCase"`
	} `json:"options"`
}

var errConditionDepth = errors.New("condition nested too deeply")

func parseCondition(raw json.RawMessage, depth int) (condition, error) {
	if depth > maxConditionDepth {
		return nil, errConditionDepth
	}
	var c condJSON
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	switch c.Op {
	case "eq":
		var v any
		dec := json.NewDecoder(bytes.NewReader(c.Value))
		dec.UseNumber()
		if len(bytes.TrimSpace(c.Value)) > 0 {
			if err := dec.Decode(&v); err != nil {
				return nil, fmt.Errorf("eq %s: %w", c.Name, err)
			}
		}
		return eqCond{name: c.Name, value: v, ignoreCase: c.Options.IgnoreCase}, nil
	case "gte", "lte", "gt", "lt":
		var v json.Number
		var s string
		cc := cmpCond{name: c.Name, op: c.Op}
		switch {
		case json.Unmarshal(c.Value, &v) == nil:
			cc.num, cc.isNum = v, true
		case json.Unmarshal(c.Value, &s) == nil:
			cc.str, cc.isStr = s, true
		}
		return cc, nil
	case "glob":
		var pats []string
		if err := json.Unmarshal(c.Value, &pats); err != nil {
			return nil, fmt.Errorf("glob %s: the value must be a list of patterns: %w", c.Name, err)
		}
		return globCond{name: c.Name, globs: compileGlobs(pats)}, nil
	case "cidr":
		var nets []string
		if err := json.Unmarshal(c.Value, &nets); err != nil {
			return nil, fmt.Errorf("cidr %s: the value must be a list: %w", c.Name, err)
		}
		cc := cidrCond{name: c.Name}
		for _, n := range nets {
			if p, ok := parseNetwork(n); ok {
				cc.nets = append(cc.nets, p)
			}
		}
		return cc, nil
	case "and", "or":
		var inner []json.RawMessage
		if err := json.Unmarshal(c.Inner, &inner); err != nil {
			return nil, fmt.Errorf("%s: inner: %w", c.Op, err)
		}
		lc := logicCond{and: c.Op == "and"}
		for _, in := range inner {
			sub, err := parseCondition(in, depth+1)
			if err != nil {
				return nil, err
			}
			lc.inner = append(lc.inner, sub)
		}
		return lc, nil
	case "not":
		sub, err := parseCondition(c.Inner, depth+1)
		if err != nil {
			return nil, err
		}
		return notCond{sub}, nil
	}
	// Relay's RuleCondition::Unsupported (unknown ops; `any`/`all` over arrays are not
	// implemented here): never matches.
	return never{}, nil
}

type never struct{}

func (never) match(*getter) bool { return false }

type eqCond struct {
	name       string
	value      any // decoded with UseNumber
	ignoreCase bool
}

// match follows Relay's EqCondition: an absent field equals null; strings compare with
// strings (or any string of a list); booleans with booleans; numbers never.
func (c eqCond) match(g *getter) bool {
	v, ok := g.get(c.name)
	if !ok {
		return c.value == nil
	}
	eq := func(a, b string) bool {
		if c.ignoreCase {
			return strings.EqualFold(a, b)
		}
		return a == b
	}
	switch f := v.(type) {
	case string:
		switch want := c.value.(type) {
		case string:
			return eq(f, want)
		case []any:
			for _, w := range want {
				if s, ok := w.(string); ok && eq(s, f) {
					return true
				}
			}
		}
	case bool:
		b, ok := c.value.(bool)
		return ok && b == f
	}
	return false
}

type cmpCond struct {
	name         string
	op           string
	num          json.Number
	isNum, isStr bool
	str          string
}

func (c cmpCond) match(g *getter) bool {
	v, ok := g.get(c.name)
	if !ok {
		return false
	}
	var r int
	switch f := v.(type) {
	case json.Number:
		if !c.isNum {
			return false
		}
		a, ea := strconv.ParseFloat(string(f), 64)
		b, eb := strconv.ParseFloat(string(c.num), 64)
		if ea != nil || eb != nil || math.IsNaN(a) || math.IsNaN(b) {
			return false
		}
		switch {
		case a < b:
			r = -1
		case a > b:
			r = 1
		}
	case string:
		if !c.isStr {
			return false
		}
		r = strings.Compare(f, c.str)
	default:
		return false
	}
	switch c.op {
	case "gte":
		return r >= 0
	case "lte":
		return r <= 0
	case "gt":
		return r > 0
	default:
		return r < 0
	}
}

type globCond struct {
	name  string
	globs globs
}

func (c globCond) match(g *getter) bool {
	v, ok := g.get(c.name)
	s, isStr := v.(string)
	return ok && isStr && c.globs.match(s)
}

type cidrCond struct {
	name string
	nets []netip.Prefix
}

func (c cidrCond) match(g *getter) bool {
	v, ok := g.get(c.name)
	s, isStr := v.(string)
	if !ok || !isStr {
		return false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, n := range c.nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

type logicCond struct {
	and   bool
	inner []condition
}

func (c logicCond) match(g *getter) bool {
	for _, in := range c.inner {
		if in.match(g) != c.and {
			return !c.and
		}
	}
	return c.and
}

type notCond struct{ inner condition }

func (c notCond) match(g *getter) bool { return !c.inner.match(g) }

// ---- the event's fields --------------------------------------------------------

// getter resolves Relay's `event.*` field names over the event's JSON. Only what a condition
// asks for is decoded: the top-level members are split once (without decoding them), and a
// member is decoded the first time a field under it is read. Values are string, bool or
// json.Number; a field Relay does not expose, or of the wrong type, is absent.
type getter struct {
	payload []byte
	ev      *event
	members map[string]json.RawMessage
	values  map[string]any
	split   bool
}

// top returns the decoded top-level member key.
func (g *getter) top(key string) (any, bool) {
	if !g.split {
		g.split = true
		g.members = topMembers(g.payload)
	}
	if v, ok := g.values[key]; ok {
		return v, v != nil
	}
	raw, ok := g.members[key]
	if !ok {
		return nil, false
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		v = nil
	}
	if g.values == nil {
		g.values = make(map[string]any, 4)
	}
	g.values[key] = v
	return v, v != nil
}

// at walks object keys, the first being a top-level member.
func (g *getter) at(path ...string) (any, bool) {
	v, ok := g.top(path[0])
	if !ok {
		return nil, false
	}
	for _, k := range path[1:] {
		o, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = o[k]; !ok || v == nil {
			return nil, false
		}
	}
	return v, true
}

// str is an Annotated<String>: only a JSON string.
func str(v any, ok bool) (any, bool) {
	s, isStr := v.(string)
	return s, ok && isStr
}

// lenientStr is a LenientString: strings, and numbers and booleans as their text.
func lenientStr(v any, ok bool) (any, bool) {
	switch x := v.(type) {
	case string:
		return x, ok
	case json.Number:
		return string(x), ok
	case bool:
		return strconv.FormatBool(x), ok
	}
	return nil, false
}

// nonEmpty is Relay's or_none: an empty string is absent.
func nonEmpty(v any, ok bool) (any, bool) {
	if s, isStr := v.(string); ok && isStr && s != "" {
		return s, true
	}
	return nil, false
}

func scalar(v any, ok bool) (any, bool) {
	switch v.(type) {
	case string, bool, json.Number:
		return v, ok
	}
	return nil, false
}

// contextFields are the contexts Relay's getter exposes ("contexts.<key>.<field>").
var contextFields = map[string]bool{
	"app.in_foreground": true, "device.arch": true, "device.battery_level": true, "device.brand": true,
	"device.charging": true, "device.family": true, "device.model": true, "device.locale": true,
	"device.online": true, "device.orientation": true, "device.name": true, "device.screen_density": true,
	"device.screen_dpi": true, "device.screen_width_pixels": true, "device.screen_height_pixels": true,
	"device.simulator": true, "device.uuid": true, "os.build": true, "os.kernel_version": true, "os.name": true,
	"os.version": true, "browser.name": true, "browser.version": true, "profile.profile_id": true,
	"trace.status": true, "trace.op": true, "response.status_code": true, "unreal.crash_type": true,
}

// levels are Relay's Level names, with the aliases its parser accepts.
var levels = map[string]string{
	"debug": "debug", "info": "info", "log": "info", "warning": "warning", "warn": "warning",
	"error": "error", "fatal": "fatal", "critical": "fatal",
}

func (g *getter) get(name string) (any, bool) {
	path, ok := strings.CutPrefix(name, "event.")
	if !ok {
		return nil, false
	}
	switch path {
	case "level":
		s, ok := str(g.at("level"))
		if !ok {
			return nil, false
		}
		l, ok := levels[s.(string)]
		return l, ok
	case "release":
		return lenientStr(g.at("release"))
	case "dist", "environment", "transaction", "logger":
		return str(g.at(path))
	case "platform":
		if s, ok := str(g.at("platform")); ok {
			return s, true
		}
		return "other", true
	case "user.email", "user.segment":
		return nonEmpty(str(g.at("user", path[5:])))
	case "user.id":
		return nonEmpty(lenientStr(g.at("user", "id")))
	case "user.ip_address", "user.name":
		return str(g.at("user", path[5:]))
	case "user.geo.city", "user.geo.country_code", "user.geo.region", "user.geo.subdivision":
		return str(g.at("user", "geo", path[9:]))
	case "request.method", "request.url":
		return str(g.at("request", path[8:]))
	case "transaction.source":
		return str(g.at("transaction_info", "source"))
	case "sdk.name", "sdk.version":
		return str(g.at("sdk", path[4:]))
	case "duration":
		return g.duration()
	}
	switch {
	case strings.HasPrefix(path, "contexts."):
		rest := path[len("contexts."):]
		if !contextFields[rest] {
			return nil, false
		}
		ctx, field, _ := strings.Cut(rest, ".")
		return scalar(g.at("contexts", ctx, field))
	case strings.HasPrefix(path, "measurements."):
		n, ok := strings.CutSuffix(path[len("measurements."):], ".value")
		if !ok {
			return nil, false
		}
		v, ok := g.at("measurements", n, "value")
		num, isNum := v.(json.Number)
		return num, ok && isNum
	case strings.HasPrefix(path, "breakdowns."):
		b, meas, ok := strings.Cut(path[len("breakdowns."):], ".")
		if !ok {
			return nil, false
		}
		v, ok := g.at("breakdowns", b, meas, "value")
		num, isNum := v.(json.Number)
		return num, ok && isNum
	case strings.HasPrefix(path, "extra."):
		return scalar(g.at(append([]string{"extra"}, strings.Split(path[len("extra."):], ".")...)...))
	case strings.HasPrefix(path, "tags."):
		tags, _ := g.top("tags")
		return tag(tags, path[len("tags."):])
	case strings.HasPrefix(path, "request.headers."):
		if g.ev == nil {
			return nil, false
		}
		want := path[len("request.headers."):]
		for _, h := range g.ev.headers {
			if strings.EqualFold(h.name, want) {
				return h.value, true
			}
		}
	}
	return nil, false
}

// tag looks a tag up in either shape SDKs send: an object or a list of [key, value] pairs.
func tag(tags any, key string) (any, bool) {
	switch t := tags.(type) {
	case map[string]any:
		return lenientStr(t[key], t[key] != nil)
	case []any:
		for _, p := range t {
			pair, ok := p.([]any)
			if ok && len(pair) == 2 && pair[0] == key {
				return lenientStr(pair[1], pair[1] != nil)
			}
		}
	}
	return nil, false
}

// duration is a transaction's length in milliseconds (Relay's computed field).
func (g *getter) duration() (any, bool) {
	if t, _ := g.top("type"); t != "transaction" {
		return nil, false
	}
	st, _ := g.top("start_timestamp")
	et, _ := g.top("timestamp")
	start, ok1 := timestamp(st)
	end, ok2 := timestamp(et)
	if !ok1 || !ok2 || end.Before(start) {
		return nil, false
	}
	ms := float64(end.Sub(start)) / float64(time.Millisecond)
	return json.Number(strconv.FormatFloat(ms, 'f', -1, 64)), true
}

// timestamp reads Sentry's two timestamp forms: Unix seconds (a number) or RFC 3339.
func timestamp(v any) (time.Time, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil || math.IsInf(f, 0) || math.Abs(f) > 1e11 {
			return time.Time{}, false
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), true
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		return t, err == nil
	}
	return time.Time{}, false
}

// topMembers splits a JSON object into its members' raw values (aliasing b, nothing decoded).
// b has been validated by parseEvent; on anything unexpected the split stops where it is.
// A key with escapes or invalid UTF-8 is decoded by encoding/json; a repeated key keeps its
// last value, as encoding/json does.
func topMembers(b []byte) map[string]json.RawMessage {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil
	}
	out := make(map[string]json.RawMessage, 16)
	i++
	for {
		i = skipWS(b, i)
		if i >= len(b) || b[i] != '"' {
			return out
		}
		kEnd := skipString(b, i)
		key := b[i+1 : max(i+1, kEnd-1)]
		var k string
		if bytes.IndexByte(key, '\\') >= 0 || !utf8.Valid(key) { // as encoding/json decodes keys
			if json.Unmarshal(b[i:kEnd], &k) != nil {
				return out
			}
		} else {
			k = string(key)
		}
		i = skipWS(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return out
		}
		vStart := skipWS(b, i+1)
		vEnd := skipValue(b, vStart)
		if vEnd <= vStart {
			return out
		}
		out[k] = b[vStart:vEnd]
		i = skipWS(b, vEnd)
		if i >= len(b) || b[i] != ',' {
			return out
		}
		i++
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index past the string starting at b[i] (a '"').
func skipString(b []byte, i int) int {
	for i++; i < len(b); {
		switch b[i] {
		case '\\':
			i += 2
		case '"':
			return i + 1
		default:
			i++
		}
	}
	return len(b)
}

// skipValue returns the index past the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}
