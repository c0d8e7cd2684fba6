package envelope

import (
	"fmt"
	"testing"
)

// The header's dsn goes through the cache: the same DSN as ParseDSN gives,
// as written, for plain and escaped JSON strings alike; an invalid one is
// refused every time and never remembered.
func TestHeaderDSNCached(t *testing.T) {
	const dsn = "https://0123456789abcdef0123456789abcdef@o1.ingest.example/sentry/42"
	want, err := ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[string]string{
		"plain":   `{"dsn":"` + dsn + `"}` + "\n",
		"escaped": `{"dsn":"https:\/\/0123456789abcdef0123456789abcdef@o1.ingest.example\/sentry\/42"}` + "\n",
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			for i := range 3 { // a miss, then hits
				e, err := Parse([]byte(body))
				if err != nil {
					t.Fatalf("parse %d: %v", i, err)
				}
				if e.Header.DSN != dsn {
					t.Fatalf("parse %d: dsn %q, want %q", i, e.Header.DSN, dsn)
				}
				got, err := ParseDSNCached(e.Header.DSN)
				if err != nil || got != want {
					t.Fatalf("parse %d: cached %+v, %v; want %+v", i, got, err, want)
				}
			}
		})
	}
	bad := "https://0123456789abcdef0123456789abcdef@o1.ingest.example/sentry/notanumber"
	for i := range 2 {
		if _, err := Parse([]byte(`{"dsn":"` + bad + `"}` + "\n")); err == nil {
			t.Fatalf("parse %d: invalid dsn accepted", i)
		}
		if _, err := ParseDSNCached(bad); err == nil {
			t.Fatalf("ParseDSNCached %d: invalid dsn accepted", i)
		}
	}
	if _, ok := lookupDSN(bad); ok {
		t.Fatal("an invalid dsn was remembered")
	}
}

// A DSN seen before costs the parse nothing: an envelope with one allocates
// what the same envelope without it does.
func TestHeaderDSNHitAllocatesNothing(t *testing.T) {
	with := []byte(`{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","dsn":"https://0123456789abcdef0123456789abcdef@o1.ingest.example/42"}` + "\n" +
		`{"type":"event","length":2}` + "\n{}\n")
	without := []byte(`{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}` + "\n" +
		`{"type":"event","length":2}` + "\n{}\n")
	parse := func(b []byte) func() {
		return func() {
			if _, err := Parse(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	parse(with)() // the miss
	a, b := testing.AllocsPerRun(200, parse(with)), testing.AllocsPerRun(200, parse(without))
	if a != b {
		t.Fatalf("%v allocations with a known dsn, %v without one", a, b)
	}
}

// The cache stays bounded however many distinct DSNs arrive.
func TestDSNCacheBounded(t *testing.T) {
	for i := range dsnCacheMax + 100 {
		if _, err := ParseDSNCached(fmt.Sprintf("https://0123456789abcdef0123456789abcdef@h%d.example/%d", i, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	dsnCache.RLock()
	n := len(dsnCache.m)
	dsnCache.RUnlock()
	if n > dsnCacheMax {
		t.Fatalf("%d entries, bound %d", n, dsnCacheMax)
	}
}
