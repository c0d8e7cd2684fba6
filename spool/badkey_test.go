package spool

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// damageKey rewrites, in every copy found in the segment file, the key of
// the record holding payload(seq, size) to newID, and flips a byte of its
// payload when breakValue is set. The spool may be open: its memory map sees
// the write, as it would see a bit rotting on disk after Open checked it.
func damageKey(t *testing.T, seg string, seq, size int, newID uint64, breakValue bool) {
	t.Helper()
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	want := payload(seq, size)
	n := 0
	for off := 0; ; {
		i := bytes.Index(data[off:], want)
		if i < 0 {
			break
		}
		i += off
		off = i + len(want)
		// A leaf element's key is stored right before its value, and the
		// value is the 5-byte record header and the payload.
		writeAt(t, seg, binary.BigEndian.AppendUint64(nil, newID), int64(i-recordHeaderLen-8))
		if breakValue {
			writeAt(t, seg, []byte{want[20] ^ 0xff}, int64(i+20))
		}
		n++
	}
	if n == 0 {
		t.Fatalf("record %d not found in %s", seq, seg)
	}
}

// A record whose key was damaged cannot be deleted by its (wrong) ID: it is
// set aside once, deleted where it was read, and never re-buried, and no
// other record is deleted in its name.
func TestDamagedKeyIsSetAsideOnce(t *testing.T) {
	const size = 1000
	for _, tc := range []struct {
		name       string
		newID      func(floors []uint64) uint64 // the damaged key, given the segment floors
		breakValue bool
		active     bool // damage the active segment's last record, not the second segment's
	}{
		{"key below every floor, payload damaged", func([]uint64) uint64 { return 0 }, true, false},
		{"key in the next segment's range, payload damaged", func(f []uint64) uint64 { return f[2] + 3 }, true, false},
		{"key in the next segment's range, payload intact", func(f []uint64) uint64 { return f[2] + 3 }, false, false},
		{"key beyond every ID, payload intact", func([]uint64) uint64 { return 1 << 62 }, false, false},
		{"active segment, key beyond every ID, payload intact", func([]uint64) uint64 { return 1 << 62 }, false, true},
		{"key lowered out of order, payload intact", func(f []uint64) uint64 { return f[1] + 2 }, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spool.db")
			s := openT(t, dir, withQuietLog(Options{NoSync: true, SegmentSize: 64 << 10, MaxBuried: 20}))
			putN(t, s, 0, 300, size)
			recs := all(t, s)
			segs, _ := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
			slices.Sort(segs)
			if len(segs) < 4 {
				t.Fatalf("%d segments, want ≥4", len(segs))
			}
			var floors []uint64
			for _, p := range segs {
				floors = append(floors, parseFloor(t, p))
			}
			// The last record of the second (or the active) segment.
			victimSeg := segs[1]
			victim := recs[len(recs)-1]
			if tc.active {
				victimSeg = segs[len(segs)-1]
			} else {
				for _, r := range recs {
					if r.ID < floors[2] {
						victim = r
					}
				}
			}
			victimSeq := seqOf(t, victim.Data)
			damageKey(t, victimSeg, victimSeq, size, tc.newID(floors), tc.breakValue)

			// Drain as the drainer does; a damaged key must not make it spin.
			seen := make(map[int]int)
			for round := 0; ; round++ {
				if round > 100 {
					t.Fatal("the drain does not end")
				}
				got, err := s.Oldest(16)
				if err != nil {
					t.Fatalf("Oldest: %v", err)
				}
				if len(got) == 0 {
					break
				}
				ids := make([]uint64, len(got))
				for i, r := range got {
					ids[i] = r.ID
					seen[seqOf(t, r.Data)]++
				}
				if err := s.Delete(ids...); err != nil {
					t.Fatal(err)
				}
			}
			for seq := 0; seq < 300; seq++ {
				if seq == victimSeq {
					continue
				}
				if seen[seq] != 1 {
					t.Fatalf("record %d drained %d times, want once", seq, seen[seq])
				}
			}
			if seen[victimSeq] != 0 {
				t.Fatalf("the record with the damaged key was drained %d times", seen[victimSeq])
			}
			buried, err := s.Buried(100)
			if err != nil {
				t.Fatal(err)
			}
			if len(buried) != 1 {
				t.Fatalf("%d dead letters, want the damaged record once", len(buried))
			}
			if !strings.Contains(buried[0].Reason, filepath.Base(victimSeg)) {
				t.Fatalf("dead letter reason %q does not name the segment", buried[0].Reason)
			}
			if !tc.breakValue {
				// Its payload was intact: an operator can send it again.
				if data := buried[0].Data; seqOf(t, data) != victimSeq || !bytes.Equal(data, payload(victimSeq, size)) {
					t.Fatalf("dead letter holds %.30q, want record %d's payload", buried[0].Data, victimSeq)
				}
			}
			if st := s.Stats(); st.Records != 0 || st.Buried != 1 {
				t.Fatalf("stats after the drain %+v", st)
			}
			if _, err := s.Oldest(16); err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); st.Buried != 1 {
				t.Fatalf("read again: %d dead letters, want 1", st.Buried)
			}
			// Nothing left behind that a restart would find.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := openT(t, dir, withQuietLog(Options{NoSync: true, SegmentSize: 64 << 10}))
			if n := len(all(t, s2)); n != 0 {
				t.Fatalf("%d records after reopening a drained spool", n)
			}
		})
	}
}

// A damaged key that equals another record's key: the bucket is rebuilt
// without the records set aside, and it cannot hold both under one key, so
// one of them goes to the dead letters too. Nothing is lost, nothing is
// drained twice, and the drain ends.
func TestDamagedKeySharedWithAnotherRecord(t *testing.T) {
	const size = 1000
	dir := filepath.Join(t.TempDir(), "spool.db")
	s := openT(t, dir, withQuietLog(Options{NoSync: true}))
	putN(t, s, 0, 20, size)
	// Record 3 (seq 2) now claims ID 9, which record 9 (seq 8) has too.
	damageKey(t, filepath.Join(dir, segName(1)), 2, size, 9, false)

	seen := make(map[int]int)
	for round := 0; ; round++ {
		if round > 100 {
			t.Fatal("the drain does not end")
		}
		got, err := s.Oldest(5)
		if err != nil {
			t.Fatalf("Oldest: %v", err)
		}
		if len(got) == 0 {
			break
		}
		ids := make([]uint64, len(got))
		for i, r := range got {
			ids[i] = r.ID
			seen[seqOf(t, r.Data)]++
		}
		if err := s.Delete(ids...); err != nil {
			t.Fatal(err)
		}
	}
	buried, err := s.Buried(100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range buried {
		seen[seqOf(t, r.Data)]++
	}
	for seq := 0; seq < 20; seq++ {
		if seen[seq] != 1 {
			t.Fatalf("record %d drained or buried %d times, want once (%d dead letters)", seq, seen[seq], len(buried))
		}
	}
	if st := s.Stats(); st.Records != 0 || st.Buried != int64(len(buried)) {
		t.Fatalf("stats after the drain %+v", st)
	}
}
