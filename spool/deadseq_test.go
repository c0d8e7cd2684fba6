package spool

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A salvaged dead.db keeps its ID sequence: the next burial gets an ID above
// every salvaged one instead of restarting at 1 and overwriting salvaged
// dead letters.
func TestSalvagedDeadLettersKeepTheirIDSequence(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"junk over the meta pages", func(t *testing.T, p string) {
			writeAt(t, p, junk(2*os.Getpagesize(), 7), 0)
		}},
		{"truncated", func(t *testing.T, p string) {
			if err := os.Truncate(p, usedSize(t, p)*7/10); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spool.db")
			opts := withQuietLog(Options{NoSync: true})
			s := openT(t, dir, opts)
			ctx := context.Background()
			for i := 0; i < 40; i++ {
				if err := s.Bury(ctx, payload(i, 1500), "rejected"); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, filepath.Join(dir, deadName))

			s, err := openWithin(t, dir, opts, 20*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if rep := s.Report(); len(rep.Damaged) != 1 || rep.Damaged[0].Salvaged == 0 {
				t.Fatalf("report %+v, want dead.db salvaged", rep.Damaged)
			}
			salvaged, err := s.Buried(1000)
			if err != nil {
				t.Fatal(err)
			}
			var maxSalvaged uint64
			for _, r := range salvaged {
				maxSalvaged = max(maxSalvaged, r.ID)
			}
			for i := 100; i < 105; i++ {
				if err := s.Bury(ctx, payload(i, 1500), "rejected later"); err != nil {
					t.Fatal(err)
				}
			}
			// Nothing overwritten: every salvaged dead letter is still there,
			// unchanged, and the new ones come after all of them.
			after, err := s.Buried(1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(after) != len(salvaged)+5 {
				t.Fatalf("%d dead letters after 5 burials, want %d+5: new burials overwrote salvaged ones", len(after), len(salvaged))
			}
			for i, r := range salvaged {
				if after[i].ID != r.ID || !bytes.Equal(after[i].Data, r.Data) {
					t.Fatalf("salvaged dead letter %d changed: now %d %.20q", r.ID, after[i].ID, after[i].Data)
				}
			}
			for i, r := range after[len(salvaged):] {
				if r.ID <= maxSalvaged || seqOf(t, r.Data) != 100+i {
					t.Fatalf("new dead letter %d (seq %d) not after the salvaged ones (max ID %d)", r.ID, seqOf(t, r.Data), maxSalvaged)
				}
			}
			if st := s.Stats(); st.Buried != int64(len(after)) {
				t.Fatalf("Stats.Buried %d, want %d", st.Buried, len(after))
			}
		})
	}
}
