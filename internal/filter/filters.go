package filter

import (
	"net/netip"
	"net/url"
	"regexp"
	"strings"
)

// ---- csp ----------------------------------------------------------------

// originPattern is one `disallowedSources` entry split into scheme, domain
// and port; "" stands for "*" (anything), as in Relay's SchemeDomainPort.
type originPattern struct{ scheme, domain, port string }

func parseOrigin(s string) originPattern {
	norm := func(p string) string {
		if p == "*" {
			return ""
		}
		return strings.ToLower(p)
	}
	var o originPattern
	rest := s
	if i := strings.Index(s, "://"); i >= 0 {
		o.scheme, rest = norm(s[:i]), s[i+3:]
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		o.domain, o.port = norm(rest[:i]), norm(rest[i+1:])
	} else {
		o.domain = norm(rest)
	}
	return o
}

func (s *Settings) matchCSP(ev *event) bool {
	if len(s.csp) == 0 || !ev.isCSP {
		return false
	}
	return s.matchOrigin(ev.cspBlockedURI) || s.matchOrigin(ev.cspSourceFile)
}

// matchOrigin is Relay's matches_any_origin: "*" matches everything (even
// an absent URL); otherwise scheme and port must be equal where the pattern
// names them, and the domain equal or, for "*.example.com", a subdomain of
// (or equal to) example.com.
func (s *Settings) matchOrigin(u string) bool {
	if s.cspAny {
		return true
	}
	if u == "" {
		return false
	}
	got := parseOrigin(u)
	for _, o := range s.csp {
		if o.scheme != "" && got.scheme != o.scheme {
			continue
		}
		if o.port != "" && got.port != o.port {
			continue
		}
		if o.domain != "" && got.domain != o.domain {
			if strings.HasPrefix(o.domain, "*") && got.domain != "" &&
				(strings.HasSuffix(got.domain, o.domain[1:]) || (len(o.domain) >= 2 && got.domain == o.domain[2:])) {
				return true
			}
			continue
		}
		return true
	}
	return false
}

// ---- localhost ------------------------------------------------------------

// matchLocalhost: the user's IP is a loopback literal; the request URL is a
// file:// URL or its host is localhost/127.0.0.1 or a subdomain of them;
// the request's X-Forwarded-For header is a loopback literal; or, when there
// is no URL, the Host/X-Forwarded-Host header names localhost/127.0.0.1.
// A user IP of "{{auto}}" is the client's address, as Relay's normalisation
// fills it in before filtering.
func matchLocalhost(ev *event, clientIP netip.Addr) bool {
	userIP := ev.userIP
	if userIP == "{{auto}}" && clientIP.IsValid() {
		userIP = clientIP.String()
	}
	if userIP == "127.0.0.1" || userIP == "::1" {
		return true
	}
	if ev.url != "" {
		if u, err := url.Parse(ev.url); err == nil && u.Scheme != "" {
			if strings.EqualFold(u.Scheme, "file") {
				return true
			}
			host := strings.ToLower(u.Hostname())
			if isLocalDomain(host) {
				return true
			}
		}
	}
	if ff := ev.header("X-Forwarded-For"); ff == "127.0.0.1" || ff == "::1" {
		return true
	}
	if ev.url == "" {
		for _, h := range [...]string{"Host", "X-Forwarded-Host"} {
			v := ev.header(h)
			if i := strings.IndexByte(v, ':'); i >= 0 {
				v = v[:i]
			}
			if v == "127.0.0.1" || v == "localhost" {
				return true
			}
		}
	}
	return false
}

func isLocalDomain(host string) bool {
	for _, d := range [...]string{"127.0.0.1", "localhost"} {
		if rest, ok := strings.CutSuffix(host, d); ok && (rest == "" || strings.HasSuffix(rest, ".")) {
			return true
		}
	}
	return false
}

// ---- browser extensions ----------------------------------------------------

// extensionValues matches the first exception's value against errors known
// to come from browser extensions and injected scripts (Relay's
// EXTENSION_EXC_VALUES; the list is Relay's, the expression is ours). Like
// every list below it is matched case-insensitively by lower-casing the
// input once: RE2's case folding is several times slower.
var extensionValues = lowerRegexp([]string{
	"globals", "createnotification", "contentdocument", "removeallhighlights", "epicplay",
	"zitereader", "jigsaw", "combosearch", "widdit", "atomicfindclose", "fb_xd_fragment",
	"bmi_safeaddonload", "ebcallbackmessagereceived", "_gcrweb", "conduitpage", "parentnode",
	"setsuspendstate", "invalidated", "webkit-masked-url:", "dead",
},
	`top\.globals`,
	`originalcreatenotification`,
	`canvas.contentdocument`,
	`myapp_removeallhighlights`,
	`http://tt\.epicplay\.com`,
	`can't\sfind\svariable:\szitereader`,
	`jigsaw\sis\snot\sdefined`,
	`combosearch\sis\snot\sdefined`,
	`http://loading\.retry\.widdit\.com/`,
	`atomicfindclose`,
	`fb_xd_fragment`,
	`bmi_safeaddonload`,
	`ebcallbackmessagereceived`,
	`_gcrweb`,
	`conduitpage`,
	`null\sis\snot\san\sobject\s\(evaluating\s'elt.parentnode'\)`,
	`plugin\.setsuspendstate\sis\snot\sa\sfunction`,
	`extension\scontext\sinvalidated`,
	`webkit-masked-url:`,
	`can't\saccess\sdead\sobject`,
)

// extensionSources matches the abs_path of the innermost named frame
// (Relay's EXTENSION_EXC_SOURCES).
var extensionSources = lowerRegexp([]string{
	"facebook", "woopra", "chrome", "moz-extension", "safari", "webkit-masked-url", "127.0.0.1:4001",
	"texthelp", "itunes", "kaspersky-labs",
},
	`graph\.facebook\.com`,
	`connect\.facebook\.net`,
	`eatdifferent\.com\.woopra-ns\.com`,
	`static\.woopra\.com/js/woopra\.js`,
	`^chrome(-extension)?://`,
	`^moz-extension://`,
	`^safari(-web)?-extension://`,
	`webkit-masked-url`,
	`127\.0\.0\.1:4001/isrunning`,
	`webappstoolbarba\.texthelp\.com/`,
	`metrics\.itunes\.apple\.com\.edgesuite\.net/`,
	`kaspersky-labs\.com`,
)

// needleRegexp is an expression over lower-cased text with a prefilter:
// every alternative contains one of the needles, so text holding none of
// them cannot match and the regexp — whose big alternations run on RE2's
// slow path — is skipped. Most text holds none.
type needleRegexp struct {
	needles []string
	re      *regexp.Regexp
}

// lowerRegexp joins lower-case alternatives into one expression, to be
// matched against lower-cased input; needles must cover every alternative.
func lowerRegexp(needles []string, alts ...string) needleRegexp {
	return needleRegexp{needles: needles, re: regexp.MustCompile(strings.Join(alts, "|"))}
}

func (n needleRegexp) match(lower string) bool {
	for _, nd := range n.needles {
		if strings.Contains(lower, nd) {
			return n.re.MatchString(lower)
		}
	}
	return false
}

// matchLower matches n against s lower-cased, s cut to maxMatchLen first:
// the lists look for short tokens, and no payload field may make a check
// slow.
func matchLower(n needleRegexp, s string) bool {
	if len(s) > maxMatchLen {
		s = s[:maxMatchLen]
	}
	return n.match(strings.ToLower(s))
}

// maxMatchLen bounds the text the fixed lists scan.
const maxMatchLen = 8 << 10

func matchBrowserExtension(ev *event) bool {
	if len(ev.exceptions) == 0 {
		return false
	}
	first := ev.exceptions[0]
	if first.hasValue && matchLower(extensionValues, first.value) {
		return true
	}
	// The last frame is the innermost; skip frames that name no source.
	for i := len(first.absPaths) - 1; i >= 0; i-- {
		p := first.absPaths[i]
		if p == "" {
			return false // Relay stops at a frame without abs_path
		}
		if p == "<anonymous>" || p == "[native code]" {
			continue
		}
		return matchLower(extensionSources, p)
	}
	return false
}

// ---- web crawlers ----------------------------------------------------------

// webCrawlerTokens and webCrawlerPattern are Relay's WEB_CRAWLERS list,
// split into plain substrings (cheap to look for) and the two generic
// patterns; allowedCrawler its exception (Slack's link expander 1.x is a
// person clicking a link, not a crawler). All lower case, matched against the
// lower-cased user agent.
var (
	webCrawlerTokens = []string{
		"mediapartners-google", "adsbot-google", "googlebot", "feedfetcher-google", "bingbot",
		"bingpreview", "baiduspider", "slurp", "sogou", "facebook", "ia_archiver", "slack",
		"pingdom", "lyticsbot", "bytespider",
	}
	webCrawlerPattern = lowerRegexp([]string{"bot", "spider", "calypso", "aws", "hubspot", "better"},
		`bots?[/\s\);]`, `spider[/\s\);]`, `calypso\sappcrawler`, `aws\ssecurity\sscanner`, `hubspot\scrawler`, `better\suptime`)
	allowedCrawler = lowerRegexp([]string{"slackbot"}, `slackbot\s1\.\d+`)
)

func matchWebCrawler(ua string) bool {
	if ua == "" {
		return false
	}
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
	}
	ua = strings.ToLower(ua)
	hit := false
	for _, tok := range webCrawlerTokens {
		if strings.Contains(ua, tok) {
			hit = true
			break
		}
	}
	if !hit && !webCrawlerPattern.match(ua) {
		return false
	}
	return !allowedCrawler.match(ua)
}

// ---- legacy browsers -------------------------------------------------------

// legacyConfig is the compiled `legacyBrowsers.options` set.
type legacyConfig struct {
	dflt  bool
	rules []legacyRule
}

// legacyRule filters one family when the major version satisfies test.
type legacyRule struct {
	family string
	test   func(major int) bool
}

func (l legacyConfig) active() bool { return l.dflt || len(l.rules) > 0 }

// legacyOptions are Relay's LegacyBrowser options. The per-browser ones
// (`chrome`, `edge`, …, added in 2024 and raised since) use the cut-offs
// Sentry documents for them today: Chrome, Edge and Firefox 110 and lower,
// Safari 15, Opera 99, Opera Mini 34, Android 3, every IE. The `*_pre_*`
// ones are the deprecated originals. Unknown options are ignored.
var legacyOptions = map[string]legacyRule{
	"ie_pre_9":         {"IE", func(v int) bool { return v <= 8 }},
	"ie9":              {"IE", func(v int) bool { return v == 9 }},
	"ie10":             {"IE", func(v int) bool { return v == 10 }},
	"ie11":             {"IE", func(v int) bool { return v == 11 }},
	"opera_pre_15":     {"Opera", func(v int) bool { return v < 15 }},
	"opera_mini_pre_8": {"Opera Mini", func(v int) bool { return v < 8 }},
	"android_pre_4":    {"Android", func(v int) bool { return v < 4 }},
	"safari_pre_6":     {"Safari", func(v int) bool { return v < 6 }},
	"edge_pre_79":      {"Edge", func(v int) bool { return v < 79 }},
	"ie":               {"IE", func(v int) bool { return v <= 11 }},
	"edge":             {"Edge", func(v int) bool { return v <= 110 }},
	"safari":           {"Safari", func(v int) bool { return v <= 15 }},
	"firefox":          {"Firefox", func(v int) bool { return v <= 110 }},
	"chrome":           {"Chrome", func(v int) bool { return v <= 110 }},
	"opera":            {"Opera", func(v int) bool { return v <= 99 }},
	"android":          {"Android", func(v int) bool { return v <= 3 }},
	"opera_mini":       {"Opera Mini", func(v int) bool { return v <= 34 }},
}

// legacyMinVersions is the `default` option: families below these majors
// are filtered (Relay's min_version; 0 = none of that family).
var legacyMinVersions = map[string]int{
	"Chrome": 0, "IE": 10, "Firefox": 0, "Safari": 6, "Edge": 0, "Opera": 15, "Android": 4, "Opera Mini": 8,
}

func compileLegacy(options []string) legacyConfig {
	var l legacyConfig
	seen := map[string]bool{}
	for _, o := range options {
		if o == "default" {
			l.dflt = true
			continue
		}
		if r, ok := legacyOptions[o]; ok && !seen[o] {
			seen[o] = true
			l.rules = append(l.rules, r)
		}
	}
	return l
}

// match: IE Mobile counts as IE; `default`, when present, replaces every
// other option (as in Relay).
func (l legacyConfig) match(ua userAgent) bool {
	if !ua.hasVer {
		return false
	}
	family := ua.family
	if family == "IE Mobile" {
		family = "IE"
	}
	if l.dflt {
		min, ok := legacyMinVersions[family]
		return ok && ua.major < min
	}
	for _, r := range l.rules {
		if r.family == family && r.test(ua.major) {
			return true
		}
	}
	return false
}

// ClientIP is the address the client-IP filter checks (Relay's
// RequestMeta::client_addr): the first entry of the forwarded-for chain,
// else the socket peer. An entry that is not an address gives the zero Addr,
// which matches nothing.
func ClientIP(forwardedFor, remoteAddr string) netip.Addr {
	s := remoteAddr
	if forwardedFor != "" {
		s, _, _ = strings.Cut(forwardedFor, ",")
	}
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}
