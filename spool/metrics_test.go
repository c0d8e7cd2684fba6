package spool

import (
	"bytes"
	"context"
	"math"
	"os"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// scrape returns the value of each unlabeled metric in set's exposition.
func scrape(t *testing.T, set *metrics.Set) map[string]float64 {
	t.Helper()
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	out := map[string]float64{}
	for _, m := range regexp.MustCompile(`(?m)^(relay_spool_\w+) (\S+)$`).FindAllStringSubmatch(buf.String(), -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("%s: %v", m[0], err)
		}
		out[m[1]] = v
	}
	return out
}

// fakeClock is a settable clock for the age marks.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Two spools open at once each report their own gauges through their own
// set, and the oldest age follows the oldest live record as records are
// deleted.
func TestMetricsSetPerSpool(t *testing.T) {
	a := openT(t, t.TempDir(), Options{MaxDiskSize: 1 << 20})
	b := openT(t, t.TempDir(), Options{MaxDiskSize: 2 << 20})
	clk := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	a.now = clk.now

	putN(t, a, 0, 3, 100) // committed at T
	clk.add(10 * time.Second)
	putN(t, a, 3, 2, 100) // committed at T+10s
	clk.add(5 * time.Second)
	putN(t, b, 0, 1, 50)
	if err := a.Bury(context.Background(), []byte("dead"), "test"); err != nil {
		t.Fatal(err)
	}

	ma, mb := scrape(t, a.Metrics()), scrape(t, b.Metrics())
	want := map[string]float64{
		"relay_spool_records":            5,
		"relay_spool_bytes":              500,
		"relay_spool_capacity_bytes":     1 << 20,
		"relay_spool_oldest_age_seconds": 15,
		"relay_spool_dead_letters":       1,
		"relay_spool_dead_letter_bytes":  4,
	}
	for k, v := range want {
		if ma[k] != v {
			t.Errorf("spool a: %s = %v, want %v", k, ma[k], v)
		}
	}
	if mb["relay_spool_records"] != 1 || mb["relay_spool_bytes"] != 50 || mb["relay_spool_capacity_bytes"] != 2<<20 || mb["relay_spool_dead_letters"] != 0 {
		t.Errorf("spool b reports %v", mb)
	}
	if ma["relay_spool_disk_bytes"] <= 0 {
		t.Errorf("spool a: disk bytes %v", ma["relay_spool_disk_bytes"])
	}

	// Delete the three from T: the oldest left was committed at T+10s.
	recs, err := a.Oldest(3)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(recs[0].ID, recs[1].ID, recs[2].ID); err != nil {
		t.Fatal(err)
	}
	if got := scrape(t, a.Metrics())["relay_spool_oldest_age_seconds"]; got != 5 {
		t.Errorf("after deleting the oldest three: age %v, want 5", got)
	}
	recs, err = a.Oldest(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(recs[0].ID, recs[1].ID); err != nil {
		t.Fatal(err)
	}
	got := scrape(t, a.Metrics())
	if got["relay_spool_oldest_age_seconds"] != 0 || got["relay_spool_records"] != 0 {
		t.Errorf("empty spool reports %v", got)
	}
}

// Records found on disk at Open are dated by their file's last write, so
// the age after a restart does not start again from zero.
func TestOldestAgeAfterReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	putN(t, s, 0, 2, 10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if len(e.Name()) > 4 && e.Name()[len(e.Name())-4:] == ".seg" {
			if err := os.Chtimes(dir+"/"+e.Name(), old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	s = openT(t, dir, Options{})
	age, err := s.OldestAge()
	if err != nil {
		t.Fatal(err)
	}
	if age < 59*time.Minute || age > 61*time.Minute {
		t.Fatalf("age after reopen %v, want about an hour", age)
	}
	if v := scrape(t, s.Metrics())["relay_spool_oldest_age_seconds"]; math.Abs(v-age.Seconds()) > 60 {
		t.Fatalf("gauge %v, OldestAge %v", v, age)
	}
}

// The marks stay bounded however many commits an outage makes.
func TestAgeMarksTrimmed(t *testing.T) {
	var m ageMarks
	t0 := time.Unix(0, 0)
	for i := range 1000 {
		m.note(uint64(i), t0.Add(time.Duration(i)*time.Second))
		m.note(uint64(i)+1, t0.Add(time.Duration(i)*time.Second+time.Millisecond)) // within ageMarkEvery: no mark
	}
	if m.len() != 1000 {
		t.Fatalf("%d marks, want 1000 (one per second)", m.len())
	}
	at, ok := m.since(990)
	if !ok || !at.Equal(t0.Add(990*time.Second)) || m.len() != 10 {
		t.Fatalf("since(990) = %v %v, %d marks left", at, ok, m.len())
	}
}
