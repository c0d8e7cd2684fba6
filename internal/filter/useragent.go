package filter

import (
	"regexp"
	"strconv"
	"strings"
)

// userAgent is the part of a parsed User-Agent the legacy-browsers filter
// needs: the browser family as uap-core (the parser behind Relay's relay_ua)
// names it, and the major version.
type userAgent struct {
	family string
	major  int
	hasVer bool
}

// uaRule maps a User-Agent to a family; the first rule that matches wins, as
// in uap-core's ordered regex list. Only the families the legacy-browsers
// filter compares against are told apart; the rules that precede them exist
// so that a browser is not mistaken for one it imitates (Edge and Opera send
// "Chrome/", Chrome sends "Safari/", every IE 11 hides behind "Trident").
// The major version is the first submatch.
type uaRule struct {
	needle string // a literal the regex cannot match without: skips most regexes cheaply
	re     *regexp.Regexp
	family string
}

var uaRules = []uaRule{
	{"Opera Mini", regexp.MustCompile(`Opera Mini(?:/att)?/?(\d+)`), "Opera Mini"},
	{"OPR/", regexp.MustCompile(`Mobile Safari.*OPR/(\d+)`), "Opera Mobile"},
	{"OPR/", regexp.MustCompile(`OPR/(\d+)`), "Opera"},
	{"Opera/9.80", regexp.MustCompile(`Opera/9\.80.*Version/(\d+)`), "Opera"},
	{"Opera", regexp.MustCompile(`Opera[/ ](\d+)`), "Opera"},
	{"EdgiOS/", regexp.MustCompile(`EdgiOS/(\d+)`), "Edge Mobile"},
	{"EdgA/", regexp.MustCompile(`EdgA/(\d+)`), "Edge Mobile"},
	{"Edg", regexp.MustCompile(`Edge?/(\d+)`), "Edge"},
	{"IEMobile", regexp.MustCompile(`IEMobile[ /](\d+)`), "IE Mobile"},
	{"MSIE ", regexp.MustCompile(`MSIE (\d+)`), "IE"},
	{"Trident/", regexp.MustCompile(`Trident/[78]\.0.*rv:(\d+)`), "IE"},
	{"SamsungBrowser/", regexp.MustCompile(`SamsungBrowser/(\d+)`), "Samsung Internet"},
	{"FxiOS/", regexp.MustCompile(`FxiOS/(\d+)`), "Firefox iOS"},
	{"Firefox/", regexp.MustCompile(`Android.*Mobile.*Firefox/(\d+)`), "Firefox Mobile"},
	{"Firefox/", regexp.MustCompile(`Firefox/(\d+)`), "Firefox"},
	{"CriOS/", regexp.MustCompile(`CriOS/(\d+)`), "Chrome Mobile iOS"},
	{"; wv)", regexp.MustCompile(`; wv\).*Chrome/(\d+)`), "Chrome Mobile WebView"},
	{"Chrome/", regexp.MustCompile(`Android.*Chrome/(\d+).*Mobile`), "Chrome Mobile"},
	{"HeadlessChrome/", regexp.MustCompile(`HeadlessChrome/(\d+)`), "HeadlessChrome"},
	{"Chrom", regexp.MustCompile(`(?:Chrome|Chromium)/(\d+)`), "Chrome"},
	{"Android", regexp.MustCompile(`Android[- ](\d+)`), "Android"},
	{"Version/", regexp.MustCompile(`(?:iPhone|iPad|iPod).*Version/(\d+).*Safari`), "Mobile Safari"},
	{"Version/", regexp.MustCompile(`Version/(\d+).*Safari/`), "Safari"},
}

// parseUserAgent returns the family ("Other" when no rule matches).
func parseUserAgent(s string) userAgent {
	if len(s) > maxUserAgent {
		s = s[:maxUserAgent]
	}
	for _, r := range uaRules {
		if !strings.Contains(s, r.needle) {
			continue
		}
		m := r.re.FindStringSubmatch(s)
		if m == nil {
			continue
		}
		ua := userAgent{family: r.family}
		if n, err := strconv.Atoi(m[1]); err == nil {
			ua.major, ua.hasVer = n, true
		}
		return ua
	}
	return userAgent{family: "Other"}
}

// maxUserAgent bounds the user agent the regexes scan; real ones are far
// shorter, and the version tokens sit in the first few hundred bytes.
const maxUserAgent = 1024
