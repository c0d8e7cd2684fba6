package filter

import (
	"regexp"
	"strconv"
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
	re     *regexp.Regexp
	family string
}

var uaRules = []uaRule{
	{regexp.MustCompile(`Opera Mini(?:/att)?/?(\d+)`), "Opera Mini"},
	{regexp.MustCompile(`Mobile Safari.*OPR/(\d+)`), "Opera Mobile"},
	{regexp.MustCompile(`OPR/(\d+)`), "Opera"},
	{regexp.MustCompile(`Opera/9\.80.*Version/(\d+)`), "Opera"},
	{regexp.MustCompile(`Opera[/ ](\d+)`), "Opera"},
	{regexp.MustCompile(`EdgiOS/(\d+)`), "Edge Mobile"},
	{regexp.MustCompile(`EdgA/(\d+)`), "Edge Mobile"},
	{regexp.MustCompile(`Edge?/(\d+)`), "Edge"},
	{regexp.MustCompile(`IEMobile[ /](\d+)`), "IE Mobile"},
	{regexp.MustCompile(`MSIE (\d+)`), "IE"},
	{regexp.MustCompile(`Trident/[78]\.0.*rv:(\d+)`), "IE"},
	{regexp.MustCompile(`SamsungBrowser/(\d+)`), "Samsung Internet"},
	{regexp.MustCompile(`FxiOS/(\d+)`), "Firefox iOS"},
	{regexp.MustCompile(`Android.*Mobile.*Firefox/(\d+)`), "Firefox Mobile"},
	{regexp.MustCompile(`Firefox/(\d+)`), "Firefox"},
	{regexp.MustCompile(`CriOS/(\d+)`), "Chrome Mobile iOS"},
	{regexp.MustCompile(`; wv\).*Chrome/(\d+)`), "Chrome Mobile WebView"},
	{regexp.MustCompile(`Android.*Chrome/(\d+).*Mobile`), "Chrome Mobile"},
	{regexp.MustCompile(`HeadlessChrome/(\d+)`), "HeadlessChrome"},
	{regexp.MustCompile(`(?:Chrome|Chromium)/(\d+)`), "Chrome"},
	{regexp.MustCompile(`Android[- ](\d+)`), "Android"},
	{regexp.MustCompile(`(?:iPhone|iPad|iPod).*Version/(\d+).*Safari`), "Mobile Safari"},
	{regexp.MustCompile(`Version/(\d+).*Safari/`), "Safari"},
}

// parseUserAgent returns the family ("Other" when no rule matches).
func parseUserAgent(s string) userAgent {
	if len(s) > maxUserAgent {
		s = s[:maxUserAgent]
	}
	for _, r := range uaRules {
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
