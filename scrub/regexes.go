package scrub

import (
	"regexp"
	"strings"
)

// Builtin regexes, verbatim from the doc §4 (Relay writes them in (?x) mode;
// these are the compact RE2 equivalents). Compiled once at package init.
var (
	reIMEI = regexp.MustCompile(`\b(\d{2}-?\d{6}-?\d{6}-?\d{1,2})\b`)
	reMAC  = regexp.MustCompile(`\b([[:xdigit:]]{2}[:-]){5}[[:xdigit:]]{2}\b`)
	reUUID = regexp.MustCompile(`(?i)\b[a-z0-9]{8}-?[a-z0-9]{4}-?[a-z0-9]{4}-?[a-z0-9]{4}-?[a-z0-9]{12}\b`)
	// Go's regexp accepts this class verbatim; the backtick in it is why the
	// string is concatenated.
	reEmail = regexp.MustCompile(`\b[a-zA-Z0-9.!#$%&'*+/=?^_` + "`" + `{|}~-]+@[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*\.[a-zA-Z]{2,}\b`)
	reIBAN  = regexp.MustCompile(`\b(AT|AD|AE|AL|AZ|BA|BE|BG|BH|BR|BY|CH|CR|CY|CZ|DE|DK|DO|EE|EG|ES|FI|FO|FR|GB|GE|GI|GL|GR|GT|HR|HU|IE|IL|IQ|IS|IT|JO|KW|KZ|LB|LC|LI|LT|LU|LV|LY|MC|MD|ME|MK|MR|MT|MU|NL|NO|PK|PL|PS|PT|QA|RO|RU|RS|SA|SC|SE|SI|SK|SM|ST|SV|TL|TN|TR|UA|VA|VG|XK|DZ|AO|BJ|BF|BI|CV|CM|CF|TD|KM|CG|CI|DJ|GQ|GA|GW|HN|IR|MG|ML|MA|MZ|NI|NE|SN|TG)\d{2}[a-zA-Z0-9]{11,29}\b`)
	reIPv4  = regexp.MustCompile(`\b(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\b`)
	// The missing '|' after the fe80…%zone branch is Relay's and kept for parity.
	reIPv6       = regexp.MustCompile(`(?i)(?:[\s]|[[:punct:]]|^)(([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,7}:|([0-9a-fA-F]{1,4}:){1,6}::[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,5}:(:[0-9a-fA-F]{1,4}){1,2}|([0-9a-fA-F]{1,4}:){1,4}:(:[0-9a-fA-F]{1,4}){1,3}|([0-9a-fA-F]{1,4}:){1,3}:(:[0-9a-fA-F]{1,4}){1,4}|([0-9a-fA-F]{1,4}:){1,2}:(:[0-9a-fA-F]{1,4}){1,5}|[0-9a-fA-F]{1,4}:((:[0-9a-fA-F]{1,4}){1,6})|:((:[0-9a-fA-F]{1,4}){1,7}|:)|fe80:(:[0-9a-fA-F]{1,4}){0,4}%[0-9a-zA-Z]{1,}::(ffff(:0{1,4}){0,1}:){0,1}(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)|([0-9a-fA-F]{1,4}:){1,4}:(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?))([\s]|[[:punct:]]|$)`)
	reCreditCard = regexp.MustCompile(`\b((?:3[47]\d|4\d{3}|5[1-5]\d\d|65\d\d|6011)([-\s]?\d){12})\b`)
	reUserPath   = regexp.MustCompile(`(?i)(?:(?:\b(?:[a-zA-Z]:[\\/])?(?:users|home|documentsandsettings|[^/\\]+[/\\]profiles)[\\/])|(?:/(?:home|users)/))([^/\\\r\n\x00]+)`)
	rePEMKey     = regexp.MustCompile(`(?s)(?:-----BEGIN[A-Z ]+(?:PRIVATE|PUBLIC) KEY-----[\t ]*\r?\n?)(.+?)(?:\r?\n?-----END[A-Z ]+(?:PRIVATE|PUBLIC) KEY-----)`)
	reURLAuth    = regexp.MustCompile(`\b(?:(?:[a-z0-9+-]+:)?//([a-zA-Z0-9%_.-]+(?::[a-zA-Z0-9%_.-]+)?))@`)
	reURLAuthOld = regexp.MustCompile(`\b((?:[a-z0-9]+:)?//[a-zA-Z0-9%_.-]+:)([a-zA-Z0-9%_.-]+)@`)
	reUSSSN      = regexp.MustCompile(`\b([0-9]{3}-[0-9]{2}-[0-9]{4})\b`)
	reBearer     = regexp.MustCompile(`(?i)\b(Bearer\s+)([^\s]+)`)
	reToken      = regexp.MustCompile(`(?i)(token)`)
	// PASSWORD_KEY_REGEX (newest), case-insensitive substring search.
	rePassword = regexp.MustCompile(`(?i)(password|secret|passwd|api[-_]key|apikey|auth|credentials|mysql_pwd|privatekey|private[-_]key|token[^\s]*[:=]|^otp$|^two[-_]factor$)`)
	reAnything = regexp.MustCompile(`.*`)
)

// Prefilters: cheap byte checks that are necessary conditions for a regex to
// match. A false answer skips the regex entirely; most strings in an event
// fail every prefilter, so the default rules cost a few byte scans per string.

func countDigits(s string, atLeast int) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' {
			n++
			if n >= atLeast {
				return true
			}
		}
	}
	return false
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func preIPv4(s string) bool {
	return len(s) >= 7 && strings.IndexByte(s, '.') >= 0 && countDigits(s, 4)
}
func preIPv6(s string) bool    { return len(s) >= 2 && strings.Count(s, ":") >= 2 }
func prePEM(s string) bool     { return strings.Contains(s, "-----BEGIN") }
func preURLAuth(s string) bool { return strings.Contains(s, "//") && strings.IndexByte(s, '@') >= 0 }
func preBearer(s string) bool  { return nonASCII(s) || containsFold(s, "bearer") }
func preToken(s string) bool   { return nonASCII(s) || containsFold(s, "token") }

// nonASCII disables the case-folding prefilters: Unicode (?i) also folds
// characters such as U+017F (ſ) and U+212A (K) onto ASCII letters.
func nonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains the lower-case ASCII word sub,
// ignoring ASCII case, without allocating.
func containsFold(s, sub string) bool {
	n := len(sub)
	if n == 0 {
		return true
	}
	first := sub[0]
	for i := 0; i+n <= len(s); i++ {
		c := s[i]
		if c|0x20 != first {
			continue
		}
		j := 1
		for ; j < n; j++ {
			d := s[i+j]
			if d >= 'A' && d <= 'Z' {
				d |= 0x20
			}
			if d != sub[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// isPassword is rePassword.MatchString for ASCII input, in one pass without
// the regex engine (Go's regexp has no DFA, and this runs on every key and
// most string values). Non-ASCII input goes to the regex: Unicode case
// folding maps characters such as U+212A (Kelvin sign) onto ASCII letters.
func isPassword(s string) bool {
	if len(s) == 3 && containsFoldAt(s, 0, "otp") {
		return true
	}
	if len(s) == 10 && containsFoldAt(s, 0, "two") && (s[3] == '-' || s[3] == '_') && containsFoldAt(s, 4, "factor") {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8RuneSelf {
			return rePassword.MatchString(s)
		}
		switch c | 0x20 {
		case 'p':
			if containsFoldAt(s, i, "password") || containsFoldAt(s, i, "passwd") ||
				containsFoldAt(s, i, "privatekey") || containsFoldAt(s, i, "private-key") || containsFoldAt(s, i, "private_key") {
				return true
			}
		case 's':
			if containsFoldAt(s, i, "secret") {
				return true
			}
		case 'a':
			if containsFoldAt(s, i, "auth") || containsFoldAt(s, i, "apikey") || containsFoldAt(s, i, "api-key") || containsFoldAt(s, i, "api_key") {
				return true
			}
		case 'c':
			if containsFoldAt(s, i, "credentials") {
				return true
			}
		case 'm':
			if containsFoldAt(s, i, "mysql_pwd") {
				return true
			}
		case 't':
			// token[^\s]*[:=]
			if containsFoldAt(s, i, "token") {
				for j := i + 5; j < len(s); j++ {
					d := s[j]
					if isSpace(d) {
						break
					}
					if d == ':' || d == '=' {
						return true
					}
					if d >= utf8RuneSelf {
						return rePassword.MatchString(s)
					}
				}
			}
		}
	}
	return false
}

// isSpace is RE2's \s for ASCII: [\t\n\f\r ].
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' }

func isToken(s string) bool {
	if nonASCII(s) {
		return reToken.MatchString(s)
	}
	return containsFold(s, "token")
}

func containsFoldAt(s string, i int, w string) bool {
	if i+len(w) > len(s) {
		return false
	}
	for j := 0; j < len(w); j++ {
		c := s[i+j]
		if c >= 'A' && c <= 'Z' {
			c |= 0x20
		}
		if c != w[j] {
			return false
		}
	}
	return true
}

// findIPv6 is reIPv6.FindAllStringSubmatchIndex(s, -1) for long strings,
// computed token by token. Go's regexp simulates this large pattern with an
// NFA, which costs seconds on a long colon-rich string; but a match is one
// delimiter, a body of [0-9A-Za-z:.%] and one delimiter, so it never spans
// whitespace: running the regex on each whitespace-separated token that has
// two colons (with the whitespace around it) finds the same matches. A \x01
// (neither delimiter nor body) stands in for a neighbour the previous match
// consumed, so `^`/`$` cannot match at a window edge that is not the
// string's. FuzzFastMatchers compares it with the regex.
func findIPv6(s string) [][]int {
	if len(s) < 512 {
		return reIPv6.FindAllStringSubmatchIndex(s, -1)
	}
	var out [][]int
	consumed := 0
	for i := 0; i < len(s); {
		if isSpace(s[i]) {
			i++
			continue
		}
		start := i
		colons := 0
		for i < len(s) && !isSpace(s[i]) {
			if s[i] == ':' {
				colons++
			}
			i++
		}
		end := i
		if colons < 2 {
			continue
		}
		a, b := start-1, end+1
		prefix, suffix := "", ""
		if a < consumed || a < 0 {
			a = start
			if start > 0 {
				prefix = "\x01"
			}
		}
		if b > len(s) {
			b = len(s)
		}
		win := prefix + s[a:b] + suffix
		for _, loc := range reIPv6.FindAllStringSubmatchIndex(win, -1) {
			m := make([]int, len(loc))
			for k, v := range loc {
				if v < 0 {
					m[k] = v
				} else {
					m[k] = v - len(prefix) + a
				}
			}
			out = append(out, m)
			consumed = m[1]
		}
	}
	return out
}
