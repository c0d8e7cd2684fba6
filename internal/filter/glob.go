package filter

import (
	"errors"
	"regexp"
	"strings"
	"unicode/utf8"
)

// globs is a compiled list of Relay glob patterns (relay_common::GlobPatterns
// over relay_pattern): case-insensitive; `*` matches any run of characters,
// newlines and `/` included; `?` exactly one character; `[a-z]`, `[!a-z]`
// character classes; `{a,b}` alternatives (not nested); `\` escapes the next
// character. A pattern that does not parse is skipped, as Relay skips it. An
// empty message never matches.
type globs struct {
	res []*regexp.Regexp
}

// maxGlobLen bounds one pattern: the upstream's settings are trusted, but a
// project file is typed by hand and regexp compilation grows with the
// pattern's size.
const maxGlobLen = 4096

func compileGlobs(patterns []string) globs {
	var g globs
	for _, p := range patterns {
		re, err := compileGlob(p)
		if err != nil {
			continue // Relay: filter_map(... .build().ok())
		}
		g.res = append(g.res, re)
	}
	return g
}

func (g globs) empty() bool { return len(g.res) == 0 }

func (g globs) match(s string) bool {
	if s == "" {
		return false
	}
	for _, re := range g.res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

var (
	errGlobEscape = errors.New("dangling escape")
	errGlobClass  = errors.New("unterminated or empty character class")
	errGlobAlt    = errors.New("unbalanced or nested alternatives")
	errGlobLong   = errors.New("pattern too long")
)

// compileGlob translates one glob into an anchored, case-insensitive RE2
// expression (linear-time matching: no pattern can make a message slow).
func compileGlob(p string) (*regexp.Regexp, error) {
	if len(p) > maxGlobLen {
		return nil, errGlobLong
	}
	var b strings.Builder
	b.WriteString(`(?is)\A`)
	inAlt := false
	for i := 0; i < len(p); {
		r, n := utf8.DecodeRuneInString(p[i:])
		i += n
		switch r {
		case '\\':
			if i >= len(p) {
				return nil, errGlobEscape
			}
			e, m := utf8.DecodeRuneInString(p[i:])
			i += m
			b.WriteString(regexp.QuoteMeta(string(e)))
		case '*':
			for i < len(p) && p[i] == '*' {
				i++
			}
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '[':
			end, cls, err := globClass(p, i)
			if err != nil {
				return nil, err
			}
			b.WriteString(cls)
			i = end
		case '{':
			if inAlt {
				return nil, errGlobAlt
			}
			inAlt = true
			b.WriteString(`(?:`)
		case ',':
			if inAlt {
				b.WriteString(`|`)
			} else {
				b.WriteString(`,`)
			}
		case '}':
			if !inAlt {
				return nil, errGlobAlt
			}
			inAlt = false
			b.WriteString(`)`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	if inAlt {
		return nil, errGlobAlt
	}
	b.WriteString(`\z`)
	return regexp.Compile(b.String())
}

// globClass translates the class whose body starts at p[i] (just past '[')
// and returns the index past its ']'.
func globClass(p string, i int) (int, string, error) {
	var b strings.Builder
	b.WriteByte('[')
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		b.WriteByte('^')
		i++
	}
	members := 0
	for i < len(p) {
		r, n := utf8.DecodeRuneInString(p[i:])
		i += n
		switch {
		case r == ']' && members > 0:
			b.WriteByte(']')
			return i, b.String(), nil
		case r == '\\':
			if i >= len(p) {
				return 0, "", errGlobEscape
			}
			e, m := utf8.DecodeRuneInString(p[i:])
			i += m
			b.WriteString(classQuote(e))
		case r == '-' && members > 0 && i < len(p) && p[i] != ']':
			b.WriteByte('-')
			continue // a range: the next rune is its upper bound
		default:
			b.WriteString(classQuote(r))
		}
		members++
	}
	return 0, "", errGlobClass
}

// classQuote escapes a rune for use inside an RE2 character class.
func classQuote(r rune) string {
	switch r {
	case '\\', ']', '[', '^', '-':
		return `\` + string(r)
	}
	return string(r)
}
