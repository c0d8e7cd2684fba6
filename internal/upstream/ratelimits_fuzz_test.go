package upstream

import (
	"testing"
	"time"
)

func FuzzParseRateLimits(f *testing.F) {
	for _, seed := range []string{
		"",
		"60:transaction:key, 2700:default;error;security:organization:quota_exceeded",
		"17.1:error:project",
		"-inf:error:key, NaN, inf::",
		"100000000000000000000:error:key",
		"60:metric_bucket:organization::custom;spans:extra",
		"  60 : error ; foo : galaxy : why  ,,5",
		"0x1p4:error:key",
		"1e3::global:r",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		rl := ParseRateLimits(header, t0)
		if rl.Len() > maxLimits {
			t.Fatalf("%d limits, cap is %d", rl.Len(), maxLimits)
		}
		for _, l := range rl.Limits() {
			if !l.Until.After(t0) {
				t.Fatalf("parsed an expired limit %+v from %q", l, header)
			}
			switch l.Scope {
			case ScopeOrganization, ScopeProject, ScopeKey, ScopeGlobal:
			default:
				t.Fatalf("scope %q from %q", l.Scope, header)
			}
			for _, c := range l.Categories {
				if CanonicalCategory(c) != c {
					t.Fatalf("non-canonical category %q from %q", c, header)
				}
			}
		}
		// What we format, we parse back to the same header (formatting is
		// canonical: it is a fixed point after one round).
		out := rl.Format(t0)
		again := ParseRateLimits(out, t0)
		if again.Format(t0) != out {
			t.Fatalf("format not stable: %q -> %q -> %q", header, out, again.Format(t0))
		}
		if again.Len() != rl.Len() {
			t.Fatalf("round trip changed the number of limits: %q -> %q", header, out)
		}
		_, _ = rl.IsLimited([]string{"error", "transaction"}, t0.Add(time.Second))
	})
}
