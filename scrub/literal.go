package scrub

import (
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// literalPrefilter derives a cheap necessary condition from a user pattern:
// a literal that every match must contain (the longest literal of a
// top-level concatenation). nil when none is found or the pattern does not
// parse (then the regex alone decides).
func literalPrefilter(pattern string) func(string) bool {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	re = re.Simplify()
	for re.Op == syntax.OpCapture && len(re.Sub) == 1 {
		re = re.Sub[0]
	}
	var best *syntax.Regexp
	consider := func(r *syntax.Regexp) {
		if r.Op == syntax.OpLiteral && (best == nil || len(r.Rune) > len(best.Rune)) {
			best = r
		}
	}
	switch re.Op {
	case syntax.OpLiteral:
		consider(re)
	case syntax.OpConcat:
		for _, s := range re.Sub {
			for s.Op == syntax.OpCapture && len(s.Sub) == 1 {
				s = s.Sub[0]
			}
			consider(s)
		}
	}
	if best == nil || len(best.Rune) < 2 {
		return nil
	}
	lit := string(best.Rune)
	if best.Flags&syntax.FoldCase == 0 {
		return func(s string) bool { return strings.Contains(s, lit) }
	}
	for _, r := range best.Rune {
		if r >= utf8.RuneSelf {
			return nil
		}
	}
	lower := strings.ToLower(lit)
	for i := 0; i < len(lower); i++ {
		if c := lower[i]; !(c >= 'a' && c <= 'z') {
			// containsFold compares the first byte with |0x20; only letters
			// are safe there, and non-letters elsewhere compare exactly.
			if i == 0 {
				return nil
			}
		}
	}
	return func(s string) bool { return nonASCII(s) || containsFold(s, lower) }
}
