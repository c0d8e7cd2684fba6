package scrub

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

type method uint8

const (
	mDefault method = iota // like remove, but does not override inner rules in multiple/alias
	mRemove
	mReplace
	mMask
	mHash
	mOther // unknown method: the match is dropped without a remark
)

type redaction struct {
	method method
	text   string // replace text
}

// ruleSpec is one rule as written in a piiConfig (or a builtin).
type ruleSpec struct {
	typ           string
	pattern       string
	replaceGroups []int
	keyPattern    string
	rules         []string // multiple
	rule          string   // alias
	hideInner     bool
	redaction     redaction
}

// piiConfig is the parsed (not yet compiled) advanced configuration.
type piiConfig struct {
	rules map[string]*ruleSpec
	apps  []appSpec // sorted by selector (doc §5.4), unique selectors
}

type appSpec struct {
	sel *Selector
	ids []string
}

type matchKind uint8

const (
	matchValue    matchKind = iota // search the string value, replace groups
	matchKeyValue                  // key matches → whole value; else value search → whole value
	matchKeyOnly                   // key matches → whole value
)

type matcher struct {
	kind   matchKind
	re     *regexp.Regexp
	groups []int             // value mode: groups to replace, ascending
	pre    func(string) bool // necessary condition for re to match; nil = none
	// is, when set, answers re.MatchString exactly but faster.
	is func(string) bool
	// feat: necessary condition on a value's features, checked before pre.
	feat func(*features) bool
	// find, when set, replaces re.FindAllStringSubmatchIndex(s, -1).
	find func(string) [][]int
}

// matches reports whether re matches s, using the prefilter and fast path.
func (m *matcher) matches(s string) bool {
	if m.pre != nil && !m.pre(s) {
		return false
	}
	if m.is != nil {
		return m.is(s)
	}
	return m.re.MatchString(s)
}

// leaf is one compiled rule: what it matches, how it redacts, which id the
// remark carries.
type leaf struct {
	id       string // the rule's own id (sort key)
	origin   string // id reported in remarks
	anything bool
	cookies  bool // bulk Cookie header: filter the values of sensitive cookies
	matchers []matcher
	red      redaction
}

type application struct {
	sel   *Selector
	rules []*leaf
}

type compiledConfig struct {
	apps []application
}

// ---- builtin rules (doc §5.1) ----

var builtins = buildBuiltins()

func buildBuiltins() map[string]*ruleSpec {
	m := map[string]*ruleSpec{}
	add := func(id, typ string, r redaction) {
		m[id] = &ruleSpec{typ: typ, redaction: r}
	}
	alias := func(id, target string) {
		m[id] = &ruleSpec{typ: "alias", rule: target, hideInner: true}
	}
	rep := func(t string) redaction { return redaction{method: mReplace, text: t} }
	filter := rep("[Filtered]")
	hash := redaction{method: mHash}
	msk := redaction{method: mMask}
	rm := redaction{method: mRemove}

	alias("@anything", "@anything:replace")
	add("@anything:replace", "anything", filter)
	add("@anything:filter", "anything", filter)
	add("@anything:remove", "anything", rm)
	add("@anything:hash", "anything", hash)
	add("@anything:mask", "anything", msk)

	type fam struct {
		name, typ, text, alias string
		filter                 bool
	}
	for _, f := range []fam{
		{"ip", "ip", "[ip]", "replace", false},
		{"imei", "imei", "[imei]", "replace", false},
		{"mac", "mac", "[mac]", "mask", false},
		{"uuid", "uuid", "[uuid]", "mask", false},
		{"email", "email", "[email]", "replace", false},
		{"iban", "iban", "[iban]", "replace", true},
		{"creditcard", "creditcard", "[creditcard]", "replace", true},
		{"pemkey", "pemkey", "[pemkey]", "replace", true},
		{"urlauth", "url_auth", "[auth]", "replace", false},
		{"usssn", "us_ssn", "[us-ssn]", "mask", true},
		{"userpath", "userpath", "[user]", "replace", false},
		{"password", "password", "[password]", "remove", true},
		{"bearer", "bearer", "Bearer [token]", "replace", true},
	} {
		id := "@" + f.name
		alias(id, id+":"+f.alias)
		add(id+":replace", f.typ, rep(f.text))
		add(id+":hash", f.typ, hash)
		add(id+":mask", f.typ, msk)
		add(id+":remove", f.typ, rm)
		if f.filter {
			add(id+":filter", f.typ, filter)
		}
	}
	// Relay quirk kept for parity: @imei:mask is defined with the hash method.
	add("@imei:mask", "imei", hash)
	// @urlauth:legacy only replaces the password of scheme://user:password@.
	m["@urlauth:legacy"] = &ruleSpec{typ: "pattern", pattern: reURLAuthOld.String(), replaceGroups: []int{2}, redaction: filter}
	m["@common"] = &ruleSpec{typ: "multiple", rules: []string{
		"@iban", "@ip", "@email", "@creditcard", "@pemkey", "@urlauth", "@userpath", "@password", "@usssn",
	}}
	// @userpath:filter is referenced but never defined by Relay: it is skipped.
	m["@common:filter"] = &ruleSpec{typ: "multiple", rules: []string{
		"@bearer:filter", "@creditcard:filter", "@iban:filter", "@pemkey:filter", "@urlauth:legacy",
		"@userpath:filter", "@password:filter", "@usssn:filter",
	}}
	// Newest Relay: a bulk cookie string keeps its structure and only the
	// values of sensitive cookies are replaced (doc §15.1).
	m["@cookies:filter"] = &ruleSpec{typ: "cookies", redaction: filter}
	return m
}

// matchersFor returns the matchers of a builtin rule type (doc §4), or
// ok=false for an unknown type (skipped, like Relay's Unknown variant).
func matchersFor(spec *ruleSpec) (ms []matcher, anything, cookies, ok bool) {
	g0 := []int{0}
	g1 := []int{1}
	switch spec.typ {
	case "anything":
		return []matcher{{kind: matchValue, re: reAnything, groups: g0}}, true, false, true
	case "ip":
		return []matcher{
			{kind: matchValue, re: reIPv4, groups: g0, pre: preIPv4, feat: fIPv4},
			{kind: matchValue, re: reIPv6, groups: g1, pre: preIPv6, feat: fIPv6, find: findIPv6},
		}, false, false, true
	case "imei":
		return []matcher{{kind: matchValue, re: reIMEI, groups: g0, feat: fIMEI}}, false, false, true
	case "mac":
		return []matcher{{kind: matchValue, re: reMAC, groups: g0, feat: fMAC}}, false, false, true
	case "uuid":
		return []matcher{{kind: matchValue, re: reUUID, groups: g0, feat: fUUID}}, false, false, true
	case "email":
		return []matcher{{kind: matchValue, re: reEmail, groups: g0, feat: fEmail}}, false, false, true
	case "iban":
		return []matcher{{kind: matchValue, re: reIBAN, groups: g0, feat: fIBAN}}, false, false, true
	case "creditcard":
		return []matcher{{kind: matchValue, re: reCreditCard, groups: g0, feat: fCreditCard}}, false, false, true
	case "userpath":
		return []matcher{{kind: matchValue, re: reUserPath, groups: g1, feat: fUserPath}}, false, false, true
	case "pemkey":
		return []matcher{{kind: matchValue, re: rePEMKey, groups: g1, pre: prePEM, feat: fPEM}}, false, false, true
	case "url_auth":
		return []matcher{{kind: matchValue, re: reURLAuth, groups: g1, pre: preURLAuth, feat: fURLAuth}}, false, false, true
	case "us_ssn":
		return []matcher{{kind: matchValue, re: reUSSSN, groups: g0, feat: fUSSSN}}, false, false, true
	case "bearer":
		return []matcher{{kind: matchValue, re: reBearer, groups: g0, pre: preBearer, feat: fBearer}}, false, false, true
	case "password":
		return []matcher{
			{kind: matchValue, re: reBearer, groups: g0, pre: preBearer, feat: fBearer},
			{kind: matchKeyOnly, re: reToken, pre: preToken, is: isToken},
			{kind: matchKeyValue, re: rePassword, is: isPassword},
		}, false, false, true
	case "cookies":
		return nil, false, true, true
	case "pattern":
		re, err := compileUserRegex(spec.pattern)
		if err != nil {
			// Relay logs and the rule does nothing.
			return nil, false, false, true
		}
		pre := literalPrefilter(spec.pattern)
		var feat func(*features) bool
		if spec.pattern == reURLAuthOld.String() {
			pre, feat = preURLAuth, fURLAuth
		}
		groups := slices.Clone(spec.replaceGroups)
		if len(groups) == 0 {
			groups = g0
		}
		slices.Sort(groups)
		groups = slices.Compact(groups)
		return []matcher{{kind: matchValue, re: re, groups: groups, pre: pre, feat: feat}}, false, false, true
	case "redact_pair", "redactPair":
		re, err := compileUserRegex(spec.keyPattern)
		if err != nil {
			return nil, false, false, true
		}
		return []matcher{{kind: matchKeyValue, re: re, pre: literalPrefilter(spec.keyPattern)}}, false, false, true
	}
	return nil, false, false, false
}

// regexCache shares compiled user regexes across configs built in this
// process (the same project config is typically compiled many times).
var regexCache = newRECache()

// compileUserRegex compiles a Rust-syntax pattern with Go's RE2. Relay caps
// the compiled size at 256 KiB; Go has its own program-size limits.
func compileUserRegex(p string) (*regexp.Regexp, error) {
	return regexCache.get(p)
}

// ---- config parsing (doc §3) ----

func parsePIIConfig(b []byte) (*piiConfig, error) {
	root, err := parseJSON(b)
	if err != nil {
		return nil, fmt.Errorf("piiConfig: %w", err)
	}
	if root.kind == kNull {
		return nil, nil
	}
	if root.kind != kObject {
		return nil, fmt.Errorf("piiConfig: expected an object")
	}
	cfg := &piiConfig{rules: map[string]*ruleSpec{}}
	if r := root.get("rules"); r != nil && r.kind != kNull {
		if r.kind != kObject {
			return nil, fmt.Errorf("piiConfig: rules: expected an object")
		}
		for i, id := range r.keys {
			spec, err := parseRuleSpec(r.kids[i])
			if err != nil {
				return nil, fmt.Errorf("piiConfig: rule %q: %w", id, err)
			}
			cfg.rules[strings.Clone(id)] = spec
		}
	}
	if a := root.get("applications"); a != nil && a.kind != kNull {
		if a.kind != kObject {
			return nil, fmt.Errorf("piiConfig: applications: expected an object")
		}
		var apps []appSpec
		for i, key := range a.keys {
			sel, err := ParseSelector(strings.Clone(key))
			if err != nil {
				return nil, fmt.Errorf("piiConfig: applications: %w", err)
			}
			v := a.kids[i]
			if v.kind != kArray {
				return nil, fmt.Errorf("piiConfig: applications[%q]: expected an array of rule ids", key)
			}
			ids := make([]string, 0, len(v.kids))
			for _, x := range v.kids {
				s, ok := x.str()
				if !ok {
					return nil, fmt.Errorf("piiConfig: applications[%q]: rule ids must be strings", key)
				}
				ids = append(ids, strings.Clone(s))
			}
			apps = append(apps, appSpec{sel: sel, ids: ids})
		}
		cfg.apps = sortApps(apps)
	}
	if v := root.get("vars"); v != nil && v.kind != kNull && v.kind != kObject {
		return nil, fmt.Errorf("piiConfig: vars: expected an object")
	}
	return cfg, nil
}

// sortApps orders applications by selector; equal selectors collapse, the
// last one written wins (a BTreeMap insert in Relay).
func sortApps(apps []appSpec) []appSpec {
	sort.SliceStable(apps, func(i, j int) bool { return compareSelectors(apps[i].sel, apps[j].sel) < 0 })
	out := apps[:0]
	for _, a := range apps {
		if len(out) > 0 && compareSelectors(out[len(out)-1].sel, a.sel) == 0 {
			out[len(out)-1] = a
			continue
		}
		out = append(out, a)
	}
	return out
}

func parseRuleSpec(n *node) (*ruleSpec, error) {
	if n.kind != kObject {
		return nil, fmt.Errorf("expected an object")
	}
	getStr := func(k string) (string, bool, error) {
		v := n.get(k)
		if v == nil || v.kind == kNull {
			return "", false, nil
		}
		s, ok := v.str()
		if !ok {
			return "", false, fmt.Errorf("%s: expected a string", k)
		}
		return strings.Clone(s), true, nil
	}
	typ, ok, err := getStr("type")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("missing field `type`")
	}
	spec := &ruleSpec{typ: typ}
	switch typ {
	case "pattern":
		if spec.pattern, ok, err = getStr("pattern"); err != nil {
			return nil, err
		} else if !ok {
			return nil, fmt.Errorf("missing field `pattern`")
		}
		if g := n.get("replaceGroups"); g != nil && g.kind != kNull {
			if g.kind != kArray {
				return nil, fmt.Errorf("replaceGroups: expected an array")
			}
			for _, x := range g.kids {
				var v int
				if x.kind != kNumber {
					return nil, fmt.Errorf("replaceGroups: expected group numbers")
				}
				if _, err := fmt.Sscan(x.s, &v); err != nil || v < 0 || v > 255 {
					return nil, fmt.Errorf("replaceGroups: %q is not a group index (0-255)", x.s)
				}
				spec.replaceGroups = append(spec.replaceGroups, v)
			}
		}
	case "redact_pair", "redactPair":
		if spec.keyPattern, ok, err = getStr("keyPattern"); err != nil {
			return nil, err
		} else if !ok {
			return nil, fmt.Errorf("missing field `keyPattern`")
		}
	case "multiple":
		r := n.get("rules")
		if r == nil || r.kind != kArray {
			return nil, fmt.Errorf("missing field `rules` (an array of rule ids)")
		}
		for _, x := range r.kids {
			s, ok := x.str()
			if !ok {
				return nil, fmt.Errorf("rules: expected rule ids")
			}
			spec.rules = append(spec.rules, strings.Clone(s))
		}
	case "alias":
		if spec.rule, ok, err = getStr("rule"); err != nil {
			return nil, err
		} else if !ok {
			return nil, fmt.Errorf("missing field `rule`")
		}
	}
	if h := n.get("hideInner"); h != nil && h.kind == kBool {
		spec.hideInner = h.s == "true"
	}
	if r := n.get("redaction"); r != nil && r.kind != kNull {
		if r.kind != kObject {
			return nil, fmt.Errorf("redaction: expected an object")
		}
		m, _ := r.get("method").str()
		switch m {
		case "", "default":
			spec.redaction.method = mDefault
		case "remove":
			spec.redaction.method = mRemove
		case "replace":
			spec.redaction.method = mReplace
			spec.redaction.text = "[Filtered]"
			if t, ok := r.get("text").str(); ok {
				spec.redaction.text = strings.Clone(t)
			}
		case "mask":
			spec.redaction.method = mMask
		case "hash":
			spec.redaction.method = mHash
		default:
			spec.redaction.method = mOther
		}
	}
	return spec, nil
}

// ---- compilation (doc §5.2) ----

func compileConfig(cfg *piiConfig) *compiledConfig {
	if cfg == nil {
		return nil
	}
	cc := &compiledConfig{}
	for _, a := range cfg.apps {
		seen := map[string]bool{}
		var leaves []*leaf
		for _, id := range a.ids {
			collectRules(cfg, id, nil, seen, &leaves)
		}
		sort.SliceStable(leaves, func(i, j int) bool { return leaves[i].id < leaves[j].id })
		if len(leaves) > 0 {
			cc.apps = append(cc.apps, application{sel: a.sel, rules: leaves})
		}
	}
	if len(cc.apps) == 0 {
		return nil
	}
	return cc
}

type originRef struct {
	id  string
	red redaction
}

func lookupRule(cfg *piiConfig, id string) *ruleSpec {
	if r, ok := cfg.rules[id]; ok {
		return r
	}
	return builtins[id]
}

func collectRules(cfg *piiConfig, id string, origin *originRef, seen map[string]bool, out *[]*leaf) {
	if seen[id] {
		return
	}
	spec := lookupRule(cfg, id)
	if spec == nil {
		return // unknown ids are skipped silently
	}
	seen[id] = true
	switch spec.typ {
	case "multiple", "alias":
		child := origin
		if spec.hideInner && origin == nil {
			child = &originRef{id: id, red: spec.redaction}
		}
		if spec.typ == "alias" {
			collectRules(cfg, spec.rule, child, seen, out)
		} else {
			for _, c := range spec.rules {
				collectRules(cfg, c, child, seen, out)
			}
		}
		return
	}
	ms, anything, cookies, ok := matchersFor(spec)
	if !ok {
		return
	}
	l := &leaf{id: id, origin: id, anything: anything, cookies: cookies, matchers: ms, red: spec.redaction}
	if origin != nil {
		l.origin = origin.id
		if origin.red.method != mDefault {
			l.red = origin.red
		}
	}
	*out = append(*out, l)
}
