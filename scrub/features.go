package scrub

// features summarise a string in one pass so the prefilters of all value
// rules can reject it without scanning it again each (legacy defaults run
// about ten value rules on every pii=true string).
type features struct {
	s      string
	digits int
	colons int // ':'
	dashes int // '-'
	flags  uint16
}

const (
	fAt uint16 = 1 << iota
	fDot
	fSlash
	fBackslash
	fB // 'b' or 'B'
	fUpperUpperDigitDigit
	fNonASCII
)

func computeFeatures(f *features, s string) {
	*f = features{s: s}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			f.digits++
			if i >= 2 && i+1 < len(s) && isUpper(s[i-2]) && isUpper(s[i-1]) && isDigit(s[i+1]) {
				f.flags |= fUpperUpperDigitDigit
			}
		case c == ':':
			f.colons++
		case c == '-':
			f.dashes++
		case c == '@':
			f.flags |= fAt
		case c == '.':
			f.flags |= fDot
		case c == '/':
			f.flags |= fSlash
		case c == '\\':
			f.flags |= fBackslash
		case c == 'b' || c == 'B':
			f.flags |= fB
		case c >= 0x80:
			f.flags |= fNonASCII
		}
	}
}

func (f *features) has(fl uint16) bool { return f.flags&fl != 0 }

// Feature gates: necessary conditions for the builtin regexes (doc §4).
// FuzzFastMatchers checks them against the regexes.
func fCreditCard(f *features) bool { return f.digits >= 15 }
func fIMEI(f *features) bool       { return f.digits >= 15 }
func fIBAN(f *features) bool       { return len(f.s) >= 15 && f.has(fUpperUpperDigitDigit) }
func fUSSSN(f *features) bool      { return f.digits >= 9 && f.dashes >= 2 }
func fIPv4(f *features) bool       { return f.digits >= 4 && f.has(fDot) }
func fIPv6(f *features) bool       { return f.colons >= 2 }
func fMAC(f *features) bool        { return len(f.s) >= 17 && f.colons+f.dashes >= 5 }
func fUUID(f *features) bool       { return len(f.s) >= 32 }
func fEmail(f *features) bool      { return f.has(fAt) && f.has(fDot) }
func fPEM(f *features) bool        { return f.dashes >= 10 }
func fURLAuth(f *features) bool    { return f.has(fAt) && f.has(fSlash) }
func fUserPath(f *features) bool   { return f.has(fSlash) || f.has(fBackslash) }
func fBearer(f *features) bool     { return f.has(fB) || f.has(fNonASCII) }
