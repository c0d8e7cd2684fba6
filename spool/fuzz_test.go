package spool

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// The salvage scanner and the record decoders read bytes from damaged files:
// whatever they are given, they must not panic, and what they accept must be
// well formed.
func FuzzScanLeaf(f *testing.F) {
	// A well-formed leaf page with one record, and its truncations.
	rec := appendRecord(nil, []byte("hello"))
	page := make([]byte, boltPageHeaderLen+boltLeafElemLen)
	ne := binary.NativeEndian
	ne.PutUint64(page[0:], 2)
	ne.PutUint16(page[8:], boltLeafPageFlag)
	ne.PutUint16(page[10:], 1)
	ne.PutUint32(page[boltPageHeaderLen+4:], boltLeafElemLen) // pos: right after the element
	ne.PutUint32(page[boltPageHeaderLen+8:], 8)
	ne.PutUint32(page[boltPageHeaderLen+12:], uint32(len(rec)))
	page = append(page, encodeKey(nil, 42)...)
	page = append(page, rec...)
	f.Add(page)
	f.Add(page[:20])
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, page []byte) {
		if len(page) < boltPageHeaderLen {
			return
		}
		_ = scanLeaf(page, func(k, v []byte) error {
			if data, ok := decodeRecord(v); ok && len(data) != len(v)-recordHeaderLen {
				t.Fatalf("decodeRecord returned %d bytes of a %d-byte value", len(data), len(v))
			}
			_, _ = salvageDead(v)
			return nil
		}, func(k, v []byte, isBucket bool) {}, 0)
	})
}

func FuzzDecodeDead(f *testing.F) {
	f.Add(appendDead(nil, time.Unix(1, 2), "reason", []byte("data")))
	f.Add([]byte{deadVersion, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		rec, crcOK, ok := decodeDead(1, v)
		if !ok {
			return
		}
		if crcOK {
			if again := appendDead(nil, rec.BuriedAt, rec.Reason, rec.Data); !bytes.Equal(again, v) {
				t.Fatalf("a dead letter with a valid CRC does not re-encode to itself")
			}
		}
	})
}
