package project

import (
	"net/url"
	"strings"
)

// matchOrigin reports whether a request's origin (its Origin header, else
// its Referer) is allowed by a project's allowedDomains, with Relay's rules
// (relay-filter's matches_any_origin behind ProjectInfo::is_valid_origin):
//
//   - no origin: allowed (server-side SDKs send none);
//   - an empty list: nothing with an origin is allowed;
//   - each entry is [scheme://]domain[:port][/path], where a missing part or
//     "*" matches anything, "*.example.com" matches example.com and every
//     subdomain, a path ending in "*" matches by prefix, and everything else
//     matches exactly, ignoring ASCII case.
//
// The origin is compared in the form a URL parser gives it (lowercase scheme
// and host, no default port, at least "/" as the path), as Relay compares
// its parsed Url.
func matchOrigin(origin string, allowed []string) bool {
	if origin == "" {
		return true
	}
	if len(allowed) == 0 {
		return false
	}
	for _, a := range allowed {
		if a == "*" { // the default: spare the URL parse
			return true
		}
	}
	norm, ok := normalizeOrigin(origin)
	if !ok {
		// Ingest only passes http(s) URLs that parse; anything else cannot
		// match a domain, only a bare "*".
		norm = origin
	}
	u := splitURL(norm)
	for _, a := range allowed {
		if newPattern(a).match(u) {
			return true
		}
	}
	return false
}

// normalizeOrigin serialises origin the way a WHATWG URL parser does for
// http(s): lowercase scheme and host, the default port dropped, an empty
// path as "/".
func normalizeOrigin(origin string) (string, bool) {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p := u.Port(); p != "" && !(scheme == "http" && p == "80") && !(scheme == "https" && p == "443") {
		host += ":" + p
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	s := scheme + "://" + host + path
	if u.RawQuery != "" || u.ForceQuery {
		s += "?" + u.RawQuery
	}
	if u.Fragment != "" {
		s += "#" + u.EscapedFragment()
	}
	return s, true
}

// urlParts is a URL cut into the four parts the rules compare. A part that
// is absent is "" (hasScheme etc. tell absent from empty where it matters).
type urlParts struct {
	scheme, domain, port, path  string
	hasScheme, hasPort, hasPath bool
}

// splitURL cuts s at the first "://", the first "/" after it and the first
// ":" of the host, exactly as Relay's ParsedUrl does (no further parsing).
func splitURL(s string) urlParts {
	var p urlParts
	rest := s
	if i := strings.Index(s, "://"); i >= 0 {
		p.scheme, p.hasScheme, rest = s[:i], true, s[i+3:]
	}
	host := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host = rest[:i]
		if path := rest[i+1:]; path != "" {
			p.path, p.hasPath = path, true
		}
	}
	p.domain = host
	if i := strings.IndexByte(host, ':'); i >= 0 {
		p.domain, p.port, p.hasPort = host[:i], host[i+1:], true
	}
	return p
}

type componentKind uint8

const (
	matchAll          componentKind = iota // absent or "*"
	matchExact                             // equal, ignoring ASCII case
	matchDomainSuffix                      // "*.example.com"
	matchPathPrefix                        // "foo/*"
)

type component struct {
	kind componentKind
	text string // exact text, ".example.com" for a suffix, the prefix for a path
}

func (c component) match(s string) bool {
	switch c.kind {
	case matchAll:
		return true
	case matchExact:
		return strings.EqualFold(c.text, s)
	case matchDomainSuffix:
		return strings.EqualFold(c.text[1:], s) ||
			len(s) >= len(c.text) && strings.EqualFold(s[len(s)-len(c.text):], c.text)
	case matchPathPrefix:
		return len(s) >= len(c.text) && strings.EqualFold(s[:len(c.text)], c.text)
	}
	return false
}

type pattern struct {
	scheme, domain, port, path component
}

func newPattern(s string) pattern {
	u := splitURL(s)
	opt := func(v string, present bool) component {
		if !present || v == "*" {
			return component{kind: matchAll}
		}
		return component{kind: matchExact, text: v}
	}
	p := pattern{
		scheme: opt(u.scheme, u.hasScheme),
		domain: opt(u.domain, true),
		port:   opt(u.port, u.hasPort),
		path:   opt(u.path, u.hasPath),
	}
	if p.domain.kind == matchExact && strings.HasPrefix(p.domain.text, "*.") {
		p.domain = component{kind: matchDomainSuffix, text: p.domain.text[1:]}
	}
	if p.path.kind == matchExact && strings.HasSuffix(p.path.text, "*") {
		p.path = component{kind: matchPathPrefix, text: strings.TrimSuffix(p.path.text, "*")}
	}
	return p
}

func (p pattern) match(u urlParts) bool {
	return p.scheme.match(u.scheme) && p.domain.match(u.domain) &&
		p.port.match(u.port) && p.path.match(u.path)
}
