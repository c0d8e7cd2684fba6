package spool

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// OldestAfter walks the spool from any point: IDs above after, lowest first,
// across segments, past deleted records, and never the records at or below
// after.
func TestOldestAfter(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool.db")
	s := openT(t, dir, Options{NoSync: true, SegmentSize: 16 << 10})
	putN(t, s, 0, 60, 1000) // several segments
	recs := all(t, s)
	if len(recs) != 60 {
		t.Fatalf("%d records, want 60", len(recs))
	}
	if st := s.Stats(); st.Segments < 3 {
		t.Fatalf("%d segments; the test wants the walk to cross several", st.Segments)
	}
	ids := make([]uint64, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	// Delete every third record: a walk skips holes.
	var deleted []uint64
	for i := 0; i < len(ids); i += 3 {
		deleted = append(deleted, ids[i])
	}
	if err := s.Delete(deleted...); err != nil {
		t.Fatal(err)
	}
	live := slices.DeleteFunc(slices.Clone(ids), func(id uint64) bool { return slices.Contains(deleted, id) })

	tests := []struct {
		name  string
		after uint64
		n     int
		want  []uint64
	}{
		{"zero is Oldest", 0, 5, live[:5]},
		{"from inside", ids[10], 4, idsAbove(live, ids[10], 4)},
		{"after a deleted id", ids[9], 3, idsAbove(live, ids[9], 3)},
		{"across the rest", ids[20], 100, idsAbove(live, ids[20], 100)},
		{"after the newest", ids[59], 10, nil},
		{"the largest id", math.MaxUint64, 10, nil},
		{"n zero", 0, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.OldestAfter(tt.after, tt.n)
			if err != nil {
				t.Fatalf("OldestAfter(%d, %d): %v", tt.after, tt.n, err)
			}
			gotIDs := make([]uint64, len(got))
			for i, r := range got {
				gotIDs[i] = r.ID
				if want := payload(seqOf(t, r.Data), 1000); !bytes.Equal(r.Data, want) {
					t.Fatalf("record %d: wrong data", r.ID)
				}
			}
			if !slices.Equal(gotIDs, tt.want) {
				t.Fatalf("OldestAfter(%d, %d) = %v, want %v", tt.after, tt.n, gotIDs, tt.want)
			}
		})
	}
}

func idsAbove(live []uint64, after uint64, n int) []uint64 {
	var out []uint64
	for _, id := range live {
		if id > after && len(out) < n {
			out = append(out, id)
		}
	}
	return out
}

// A damaged record past the point read from is handled as Oldest handles
// it: moved to the dead letters and not returned.
func TestOldestAfterQuarantinesDamage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool.db")
	s := openT(t, dir, Options{NoSync: true})
	putN(t, s, 0, 20, 200)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, segName(1))
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// Every copy: bbolt leaves earlier versions of a leaf page in free
	// pages, and the first copy in the file need not be the live one.
	mark := payload(15, 10)[:16]
	found := 0
	for off := 0; ; {
		i := bytes.Index(data[off:], mark)
		if i < 0 {
			break
		}
		writeAt(t, seg, []byte("X"), int64(off+i+20))
		found++
		off += i + len(mark)
	}
	if found == 0 {
		t.Fatal("payload 15 not found in the file")
	}

	s = openT(t, dir, Options{NoSync: true})
	recs, err := s.OldestAfter(10, 100) // IDs 11..20: payloads 10..19
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int
	for _, r := range recs {
		seqs = append(seqs, seqOf(t, r.Data))
	}
	if want := []int{10, 11, 12, 13, 14, 16, 17, 18, 19}; !slices.Equal(seqs, want) {
		t.Fatalf("OldestAfter(10) returned payloads %v, want %v (the damaged one left out)", seqs, want)
	}
	buried, err := s.Buried(10)
	if err != nil || len(buried) != 1 {
		t.Fatalf("dead letters %d (%v), want the damaged record", len(buried), err)
	}
}
