//go:build unix

package stream

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// replayFile replays the record file as it is on disk now (what a kill of
// the relay would leave: the mapping's stores are in the page cache).
func replayFile(t *testing.T, path string) (*seqSet, error) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return replayRecord(b)
}

func sameSet(a, b *seqSet) bool {
	return fmt.Sprint(a.ranges) == fmt.Sprint(b.ranges) && a.high == b.high &&
		fmt.Sprint(a.early) == fmt.Sprint(b.early) && fmt.Sprint(a.pending) == fmt.Sprint(b.pending)
}

// TestRecordMapped: entries stored into the mapping are in the file without
// a write or a close (a kill leaves them), a store torn by a kill is
// ignored, and damage is still refused.
func TestRecordMapped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.seq")
	r, err := startRecord(path, &seqSet{}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if r.m == nil {
		t.Fatal("the record is not mapped")
	}
	for q := uint64(1); q <= 300; q++ { // past the first page of the file
		r.published(&jetstream.PubAck{Sequence: q})
	}
	for q := uint64(1); q <= 300; q += 3 {
		r.acking(q)
	}
	for q := uint64(1); q <= 300; q += 6 {
		r.acked(q)
	}
	r.undo(4)
	r.acking(400) // before its PubAck
	if len(r.set.pending) == 0 || len(r.set.early) == 0 {
		t.Fatal("test does not test: no pending or early acks")
	}
	if r.queuedN != r.doneN || len(r.queued) != 0 {
		t.Fatalf("entries left to write(2): %d of %d", r.queuedN-r.doneN, r.queuedN)
	}
	s, err := replayFile(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(s, r.set) {
		t.Fatalf("replayed %v high %d early %v pending %v, want %v high %d early %v pending %v",
			s.ranges, s.high, s.early, s.pending, r.set.ranges, r.set.high, r.set.early, r.set.pending)
	}

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) <= r.used || !allZero(b[r.used:]) {
		t.Fatal("no zero room after the entries")
	}
	var e [recordEntrySize]byte
	encodeEntry(e[:], 500, 500)
	torn := bytes.Clone(b)
	copy(torn[r.used:], e[:11]) // a kill in the middle of the copy
	if s, err := replayRecord(torn); err != nil || !sameSet(s, r.set) {
		t.Fatalf("torn last store: %v, replayed %v", err, s)
	}
	whole := bytes.Clone(b)
	copy(whole[r.used:], e[:])
	if s, err := replayRecord(whole); err != nil || !s.contains(500) {
		t.Fatalf("a whole last store: %v, not replayed", err)
	}
	for name, at := range map[string]int{
		"a damaged entry before others":  r.used - recordEntrySize - 5,
		"data after the end of the room": r.used + 3*recordEntrySize + 2,
	} {
		c := bytes.Clone(b)
		c[at] ^= 0x40
		if _, err := replayRecord(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if allZero(make([]byte, 16)) && crcOfZeros() == 0 {
		t.Fatal("an all-zero entry would be valid: it cannot mark the end")
	}

	// A v02 record (appended only, no room) is still read.
	v2 := append([]byte(recordMagicV2), b[len(recordMagic):r.used]...)
	if s, err := replayRecord(v2); err != nil || !sameSet(s, r.set) {
		t.Fatalf("v02 record: %v", err)
	}
	// Closed, the file is as long as its entries.
	used := r.used
	if err := r.close(); err != nil {
		t.Fatal(err)
	}
	if n := fileSize(t, path); n != int64(used) {
		t.Fatalf("closed record file %d bytes, want %d", n, used)
	}
}

func crcOfZeros() uint32 {
	var e [recordEntrySize]byte
	encodeEntry(e[:], 0, 0)
	return uint32(e[16]) | uint32(e[17])<<8 | uint32(e[18])<<16 | uint32(e[19])<<24
}

// TestRecordMappedRoomFull: a full room rewrites the file, mapped again,
// and what it holds replays to the set at every step.
func TestRecordMappedRoomFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.seq")
	r, err := startRecord(path, &seqSet{}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	room := len(r.m)
	rewrites := 0
	for q := uint64(1); q <= 2*compactEntries; q++ {
		before := r.m
		r.published(&jetstream.PubAck{Sequence: q})
		if q%2 == 0 {
			r.acking(q)
			r.acked(q)
		}
		if &r.m[0] != &before[0] {
			rewrites++
		}
	}
	if rewrites == 0 || r.m == nil {
		t.Fatalf("%d rewrites, mapped %v: the room never filled", rewrites, r.m != nil)
	}
	if len(r.m) <= room {
		t.Fatalf("room %d bytes with %d ranges open: not grown with the set", len(r.m), len(r.set.ranges))
	}
	s, err := replayFile(t, path)
	if err != nil || !sameSet(s, r.set) {
		t.Fatalf("after %d rewrites: %v", rewrites, err)
	}
}

// TestRecordMappedFault: the file cut short under the mapping (a store
// then faults, SIGBUS) does not kill the relay: it is counted, and the
// record goes on with write(2) and stays exact from its next rewrite.
func TestRecordMappedFault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.seq")
	r, err := startRecord(path, &seqSet{}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	for q := uint64(1); q <= 1000; q++ { // past the first pages
		r.published(&jetstream.PubAck{Sequence: q})
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	errs := recordWriteErrors.Get()
	r.published(&jetstream.PubAck{Sequence: 1002}) // faults
	if recordWriteErrors.Get() == errs {
		t.Fatal("the fault was not counted")
	}
	if r.m != nil || !r.noMap {
		t.Fatal("still mapped after a fault")
	}
	size := fileSize(t, path)
	r.published(&jetstream.PubAck{Sequence: 1004})
	if fileSize(t, path) != size+recordEntrySize {
		t.Fatal("not appending with write(2) after the fault")
	}
	r.mu.Lock()
	err = r.rewriteLocked()
	r.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	r.published(&jetstream.PubAck{Sequence: 1006})
	if s, err := replayFile(t, path); err != nil || !sameSet(s, r.set) {
		t.Fatalf("after the rewrite: %v", err)
	}
}
