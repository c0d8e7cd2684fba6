package spool

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
)

func buryN(t *testing.T, s *Spool, from, n, size int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := s.Bury(context.Background(), payload(i, size), "upstream_rejected: status 400"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUnbury(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "spool.db")
	opts := withQuietLog(Options{NoSync: true, MaxDiskSize: 20 * (1000 + recordOverhead)})
	s := openT(t, dir, opts)
	buryN(t, s, 0, 10, 1000)
	putN(t, s, 100, 2, 1000)

	// Unknown IDs and a full spool move nothing.
	if err := s.Unbury(ctx, 3, 99); !errors.Is(err, ErrNotBuried) {
		t.Fatalf("Unbury of an unknown ID: %v, want ErrNotBuried", err)
	}
	deadIDs := make([]uint64, 0, 10)
	for id := uint64(1); id <= 10; id++ {
		deadIDs = append(deadIDs, id)
	}
	putN(t, s, 200, 9, 1000) // 11 live: room for 9 more, not 10
	if err := s.Unbury(ctx, deadIDs...); !errors.Is(err, ErrFull) {
		t.Fatalf("Unbury into a full spool: %v, want ErrFull", err)
	}
	if st := s.Stats(); st.Buried != 10 || st.Records != 11 {
		t.Fatalf("a refused Unbury changed the spool: %+v", st)
	}
	for _, r := range all(t, s)[2:] {
		if err := s.Delete(r.ID); err != nil {
			t.Fatal(err)
		}
	}

	// IDs 3 and 5 (given out of order, one twice) go back, in ID order,
	// after the live records, and leave the dead letters.
	if err := s.Unbury(ctx, 5, 3, 5); err != nil {
		t.Fatal(err)
	}
	recs := all(t, s)
	if len(recs) != 4 || seqOf(t, recs[2].Data) != 2 || seqOf(t, recs[3].Data) != 4 {
		t.Fatalf("live records after Unbury: %d, want 100, 101, then dead letters 3 and 5 (seq 2, 4)", len(recs))
	}
	buried, err := s.Buried(100)
	if err != nil {
		t.Fatal(err)
	}
	if len(buried) != 8 {
		t.Fatalf("%d dead letters left, want 8", len(buried))
	}
	for _, r := range buried {
		if r.ID == 3 || r.ID == 5 {
			t.Fatalf("dead letter %d still there", r.ID)
		}
	}
	// BuriedFrom pages from an ID on.
	page, err := s.BuriedFrom(5, 2)
	if err != nil || len(page) != 2 || page[0].ID != 6 || page[1].ID != 7 {
		t.Fatalf("BuriedFrom(5, 2) = %v %v, want 6 and 7", page, err)
	}

	// Survives a restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, opts)
	if st := s.Stats(); st.Records != 4 || st.Buried != 8 {
		t.Fatalf("after reopen %+v", st)
	}
}

// A cut between the commit of the live records and the delete of the dead
// letters leaves the envelopes in both places, never in neither.
func TestUnburyCutInBetween(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool.db")
	opts := withQuietLog(Options{NoSync: true})
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	buryN(t, s, 0, 3, 500)
	s.afterUnburyPut = func() {
		if err := s.dead.close(); err != nil {
			t.Error(err)
		}
	}
	if err := s.Unbury(context.Background(), 1, 2); err == nil || !errors.Is(err, ErrClosed) {
		t.Fatalf("Unbury with dead.db cut: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, opts)
	recs := all(t, s)
	buried, err := s.Buried(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || len(buried) != 3 {
		t.Fatalf("after the cut: %d live, %d dead; want 2 live and all 3 still dead", len(recs), len(buried))
	}
	for i, r := range recs {
		if !bytes.Equal(r.Data, buried[i].Data) {
			t.Fatalf("live record %d is not dead letter %d", r.ID, buried[i].ID)
		}
	}
}
