package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads a duration the way config.yml accepts it: Sentry Relay's form, an integer
// number of seconds ("30", also fractional "0.5"), or a Go duration string ("1m30s", "250ms").
// Negative durations are rejected: no setting of the relay means anything by them.
func ParseDuration(s string) (time.Duration, error) {
	str := strings.TrimSpace(s)
	if str == "" {
		return 0, fmt.Errorf("empty duration")
	}
	if isDecimal(str) {
		secs, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number of seconds", s)
		}
		if secs*float64(time.Second) >= math.MaxInt64 {
			return 0, fmt.Errorf("%q is too long", s)
		}
		return time.Duration(secs * float64(time.Second)), nil
	}
	if str[0] == '-' {
		return 0, fmt.Errorf("%q is negative", s)
	}
	d, err := time.ParseDuration(str)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (expected seconds such as 30, or a duration such as 1m30s or 250ms)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// isDecimal reports whether s is digits with at most one '.', the only number form accepted
// for seconds (no signs, exponents, "inf" or "nan").
func isDecimal(s string) bool {
	dots := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			dots++
		case c < '0' || c > '9':
			return false
		}
	}
	return dots <= 1 && s != "."
}
