package upstream

import (
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func secs(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

func TestParseRateLimits(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   []RateLimit
	}{
		{"empty", "", nil},
		{"only separators", " , ,, ", nil},
		{
			"relay example (§4.1)",
			"60:transaction:key, 2700:default;error;security:organization:quota_exceeded",
			[]RateLimit{
				{Categories: []string{"transaction"}, Scope: ScopeKey, Until: secs(60)},
				{Categories: []string{"default", "error", "security"}, Scope: ScopeOrganization, ReasonCode: "quota_exceeded", Until: secs(2700)},
			},
		},
		{"float rounds up", "17.1:error:project", []RateLimit{{Categories: []string{"error"}, Scope: ScopeProject, Until: secs(18)}}},
		{"float .7 rounds up", "17.7::key", []RateLimit{{Scope: ScopeKey, Until: secs(18)}}},
		{"integer", "17::key", []RateLimit{{Scope: ScopeKey, Until: secs(17)}}},
		{"negative is expired", "-2:error:key", nil},
		{"zero is expired", "0:error:key", nil},
		{"negative inf is expired", "-inf:error:key", nil},
		{"inf is expired", "inf:error:key", nil},
		{"NaN is expired", "NaN:error:key", nil},
		{"overflow is expired", "100000000000000000000:error:key", nil},
		{"unparsable entry skipped, others kept", "nope:error:key, 5:transaction:project", []RateLimit{{Categories: []string{"transaction"}, Scope: ScopeProject, Until: secs(5)}}},
		{"empty retry_after skipped", ":error:key", nil},
		{"empty categories = all", "60::organization", []RateLimit{{Scope: ScopeOrganization, Until: secs(60)}}},
		{"retry_after alone: all categories, key scope", "60", []RateLimit{{Scope: ScopeKey, Until: secs(60)}}},
		{"unknown scope becomes key", "60:error:galaxy", []RateLimit{{Categories: []string{"error"}, Scope: ScopeKey, Until: secs(60)}}},
		{"global scope", "60::global", []RateLimit{{Scope: ScopeGlobal, Until: secs(60)}}},
		{"unknown category kept as unknown", "60:error;foo:project", []RateLimit{{Categories: []string{"unknown", "error"}, Scope: ScopeProject, Until: secs(60)}}},
		{"alias", "60:user_report_v2:key", []RateLimit{{Categories: []string{"feedback"}, Scope: ScopeKey, Until: secs(60)}}},
		{"categories sorted by id, deduplicated", "60:security;transaction;error;transaction:key", []RateLimit{{Categories: []string{"error", "transaction", "security"}, Scope: ScopeKey, Until: secs(60)}}},
		{"namespaces", "60:metric_bucket:organization:limited:custom;spans", []RateLimit{{Categories: []string{"metric_bucket"}, Scope: ScopeOrganization, ReasonCode: "limited", Namespaces: []string{"custom", "spans"}, Until: secs(60)}}},
		{"empty reason then namespaces", "60:metric_bucket:organization::custom", []RateLimit{{Categories: []string{"metric_bucket"}, Scope: ScopeOrganization, Namespaces: []string{"custom"}, Until: secs(60)}}},
		{"extra trailing fields ignored", "60:error:key:r:ns:extra:more", []RateLimit{{Categories: []string{"error"}, Scope: ScopeKey, ReasonCode: "r", Namespaces: []string{"ns"}, Until: secs(60)}}},
		{"spaces trimmed", "  60 : error ; transaction : project : why  ,5::key", []RateLimit{
			{Categories: []string{"error", "transaction"}, Scope: ScopeProject, ReasonCode: "why", Until: secs(60)},
			{Scope: ScopeKey, Until: secs(5)},
		}},
		{"duplicate keeps later expiry", "10:error:key, 30:error:key:second, 20:error:key", []RateLimit{{Categories: []string{"error"}, Scope: ScopeKey, ReasonCode: "second", Until: secs(30)}}},
		{"same categories other scope are distinct", "10:error:key, 30:error:project", []RateLimit{
			{Categories: []string{"error"}, Scope: ScopeKey, Until: secs(10)},
			{Categories: []string{"error"}, Scope: ScopeProject, Until: secs(30)},
		}},
		{"category order irrelevant for identity", "10:error;transaction:key, 30:transaction;error:key", []RateLimit{{Categories: []string{"error", "transaction"}, Scope: ScopeKey, Until: secs(30)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseRateLimits(tt.header, t0).Limits()
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseRateLimits(%q)\n got %+v\nwant %+v", tt.header, got, tt.want)
			}
		})
	}
}

func TestParseRateLimitsCap(t *testing.T) {
	header := ""
	for i := range maxLimits + 10 {
		if i > 0 {
			header += ", "
		}
		header += "60:error:key:r:ns" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	if got := ParseRateLimits(header, t0).Len(); got != maxLimits {
		t.Fatalf("Len = %d, want the cap %d", got, maxLimits)
	}
}

func TestIsLimited(t *testing.T) {
	rl := ParseRateLimits("60:transaction:key, 2700:default;error;security:organization:quota_exceeded, 30:foo:key, 90:metric_bucket:key::custom", t0)
	tests := []struct {
		name       string
		categories []string
		now        time.Time
		wantUntil  time.Time
		wantOK     bool
	}{
		{"transaction", []string{"transaction"}, t0, secs(60), true},
		{"error", []string{"error"}, t0, secs(2700), true},
		{"both: the later", []string{"transaction", "error"}, t0, secs(2700), true},
		{"unlimited category", []string{"attachment"}, t0, time.Time{}, false},
		{"unknown limit matches nothing", []string{"foo"}, t0, time.Time{}, false},
		{"namespaced limit not matched", []string{"metric_bucket"}, t0, time.Time{}, false},
		{"no categories", nil, t0, time.Time{}, false},
		{"transaction limit expired", []string{"transaction"}, secs(60), time.Time{}, false},
		{"error still limited later", []string{"error", "transaction"}, secs(61), secs(2700), true},
		{"alias asked", []string{"user_report_v2"}, t0, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			until, ok := rl.IsLimited(tt.categories, tt.now)
			if ok != tt.wantOK || !until.Equal(tt.wantUntil) {
				t.Fatalf("IsLimited(%v) = %v, %v; want %v, %v", tt.categories, until, ok, tt.wantUntil, tt.wantOK)
			}
		})
	}

	all := ParseRateLimits("60::organization", t0)
	if until, ok := all.IsLimited(nil, t0); !ok || !until.Equal(secs(60)) {
		t.Fatalf("catch-all limit with no categories asked: %v %v", until, ok)
	}
	if _, ok := all.IsLimited([]string{"anything_new"}, t0); !ok {
		t.Fatalf("catch-all limit must match every category")
	}
	if _, ok := (RateLimits{}).IsLimited([]string{"error"}, t0); ok {
		t.Fatalf("empty set limits nothing")
	}
}

func TestMerge(t *testing.T) {
	a := ParseRateLimits("60:error:key:a, 10:transaction:project", t0)
	b := ParseRateLimits("30:error:key:b, 100:transaction:project:longer, 5::organization", t0)
	aBefore := a.Limits()

	got := a.Merge(b).Limits()
	want := []RateLimit{
		{Categories: []string{"error"}, Scope: ScopeKey, ReasonCode: "a", Until: secs(60)},
		{Categories: []string{"transaction"}, Scope: ScopeProject, ReasonCode: "longer", Until: secs(100)},
		{Scope: ScopeOrganization, Until: secs(5)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Merge\n got %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(a.Limits(), aBefore) {
		t.Fatalf("Merge modified its receiver: %+v", a.Limits())
	}
	if got := (RateLimits{}).Merge(a).Limits(); !reflect.DeepEqual(got, aBefore) {
		t.Fatalf("empty.Merge(a) = %+v", got)
	}
	// Merging limits learnt at different times compares absolute expiries.
	later := ParseRateLimits("30:error:key:c", secs(40)) // until secs(70)
	if until, _ := a.Merge(later).IsLimited([]string{"error"}, t0); !until.Equal(secs(70)) {
		t.Fatalf("merge across times: until %v, want %v", until, secs(70))
	}
}

func TestAddSharesNothing(t *testing.T) {
	base := ParseRateLimits("10:error:key, 10:transaction:key", t0)
	x := base.Add(RateLimit{Categories: []string{"error"}, Scope: ScopeKey, Until: secs(50)})
	y := base.Add(RateLimit{Categories: []string{"attachment"}, Until: secs(50)})
	if until, _ := base.IsLimited([]string{"error"}, t0); !until.Equal(secs(10)) {
		t.Fatalf("Add changed the receiver: %v", until)
	}
	if until, _ := x.IsLimited([]string{"error"}, t0); !until.Equal(secs(50)) {
		t.Fatalf("Add did not extend: %v", until)
	}
	if y.Len() != 3 || y.Limits()[2].Scope != ScopeKey {
		t.Fatalf("Add with no scope: %+v", y.Limits())
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		name string
		rl   RateLimits
		now  time.Time
		want string
	}{
		{"empty", RateLimits{}, t0, ""},
		{
			"relay's format test",
			RateLimits{}.
				Add(RateLimit{Scope: ScopeOrganization, ReasonCode: "my_limit", Until: secs(42)}).
				Add(RateLimit{Categories: []string{"transaction", "security"}, Scope: ScopeProject, Until: secs(4711)}),
			t0,
			"42::organization:my_limit, 4711:transaction;security:project",
		},
		{
			"namespaces without reason get an empty reason field",
			RateLimits{}.Add(RateLimit{Categories: []string{"metric_bucket"}, Scope: ScopeOrganization, Namespaces: []string{"custom"}, Until: secs(60)}),
			t0,
			"60:metric_bucket:organization::custom",
		},
		{
			"remaining seconds rounded up",
			RateLimits{}.Add(RateLimit{Categories: []string{"error"}, Scope: ScopeKey, Until: secs(60)}),
			t0.Add(500 * time.Millisecond),
			"60:error:key",
		},
		{
			"expired limits left out",
			ParseRateLimits("5:error:key, 60:transaction:key", t0),
			secs(5),
			"55:transaction:key",
		},
		{"all expired", ParseRateLimits("5:error:key", t0), secs(6), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rl.Format(tt.now); got != tt.want {
				t.Fatalf("Format = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFormatParseRoundTrip(t *testing.T) {
	for _, h := range []string{
		"60:transaction:key, 2700:default;error;security:organization:quota_exceeded",
		"42::organization:my_limit, 4711:transaction;security:project",
		"60:metric_bucket:organization::custom;spans",
		"1::global",
	} {
		if got := ParseRateLimits(h, t0).Format(t0); got != h {
			t.Errorf("round trip of %q gave %q", h, got)
		}
	}
}

func TestActiveAndLongest(t *testing.T) {
	rl := ParseRateLimits("5:error:key, 60:transaction:key", t0)
	if got := rl.Longest(t0); got != 60*time.Second {
		t.Fatalf("Longest = %v", got)
	}
	if got := rl.Longest(secs(61)); got != 0 {
		t.Fatalf("Longest after expiry = %v", got)
	}
	act := rl.Active(secs(10))
	if act.Len() != 1 || act.Limits()[0].Categories[0] != "transaction" {
		t.Fatalf("Active = %+v", act.Limits())
	}
}
