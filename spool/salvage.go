package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// The parts of bbolt's file format the salvage reads (go.etcd.io/bbolt
// internal/common; the format is stable and versioned by the meta page).
// Integers are in the machine's byte order, as bbolt writes them.
const (
	boltMagic          = 0xED0CDAED
	boltPageHeaderLen  = 16 // id u64, flags u16, count u16, overflow u32
	boltLeafElemLen    = 16 // flags u32, pos u32, ksize u32, vsize u32
	boltLeafPageFlag   = 0x02
	boltBucketLeafFlag = 0x01
	boltInBucketLen    = 16 // root pgid u64, sequence u64; an inline bucket's page follows
)

// salvage copies what can be read out of the damaged bbolt file src into a
// new bbolt file dst (bucket), without trusting src's B-tree: it reads src
// page by page with plain reads (no memory map, so nothing can fault) and
// takes every element of every leaf page that has an 8-byte key ≥ floor and
// a value that valid accepts (the values carry a CRC, so junk is not taken
// for a record). Keys are never reused, so copies of one key found on
// several pages hold the same data and are stored once.
//
// Leaf pages freed by an earlier transaction but not yet overwritten are
// found as well, so records deleted before the damage can come back: a
// salvage errs on the side of duplicates (at-least-once), never of loss.
func (s *Spool) salvage(src, dst string, bucket []byte, floor uint64, valid salvageFunc) (res salvageResult, err error) {
	res.next = floor
	if err := os.Remove(dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, err
	}
	f, err := os.Open(src)
	if err != nil {
		return res, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return res, err
	}
	size := st.Size()
	ps := salvagePageSize(f)

	o := s.boltOptions(false, true)
	o.NoSync = true // one fsync at the end
	out, err := openBolt(dst, o)
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()

	type kv struct{ k, v []byte }
	var batch []kv
	var batchBytes int
	var maxKey uint64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := out.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucket)
			if err != nil {
				return err
			}
			for _, e := range batch {
				if b.Get(e.k) != nil {
					continue // another copy of a key already taken
				}
				n, _ := valid(e.v)
				if err := b.Put(e.k, e.v); err != nil {
					return err
				}
				res.records++
				res.bytes += n
			}
			return nil
		})
		batch, batchBytes = batch[:0], 0
		return err
	}
	emit := func(k, v []byte) error {
		if len(k) != 8 {
			return nil // not a record (e.g. the meta bucket's keys)
		}
		id := binary.BigEndian.Uint64(k)
		if _, ok := valid(v); !ok || id < floor {
			res.skipped++
			return nil
		}
		maxKey = max(maxKey, id)
		batch = append(batch, kv{slices.Clone(k), slices.Clone(v)})
		batchBytes += len(v)
		if batchBytes >= 8<<20 {
			return flush()
		}
		return nil
	}
	meta := func(k, v []byte, isBucket bool) {
		switch {
		case isBucket && bytes.Equal(k, metaBucket):
			if next, count, ok := metaCopy(v); ok {
				res.noteMeta(next, count)
			}
		case isBucket && bytes.Equal(k, bucket) && len(v) >= boltInBucketLen:
			// Every copy of the bucket's header still on disk; the sequence
			// only grows, so the highest is the newest.
			res.headerSeq = max(res.headerSeq, binary.NativeEndian.Uint64(v[8:16]))
			res.seq = max(res.seq, res.headerSeq)
		case !isBucket && bytes.Equal(k, nextKey) && len(v) == 8:
			res.nextSeen = max(res.nextSeen, binary.BigEndian.Uint64(v))
			res.next = max(res.next, res.nextSeen)
		}
	}

	buf := make([]byte, ps)
	for pg := int64(2); pg*ps < size; pg++ { // pages 0 and 1 are the meta pages
		n, err := f.ReadAt(buf, pg*ps)
		if err != nil && !errors.Is(err, io.EOF) {
			return res, fmt.Errorf("read %s: %w", src, err)
		}
		if n < boltPageHeaderLen {
			break
		}
		page := buf[:n]
		ne := binary.NativeEndian
		if ne.Uint64(page[0:8]) != uint64(pg) || ne.Uint16(page[8:10]) != boltLeafPageFlag {
			continue
		}
		if overflow := int64(ne.Uint32(page[12:16])); overflow > 0 {
			span := min((overflow+1)*ps, size-pg*ps)
			if span > math.MaxInt32 {
				continue // larger than any value bbolt allows: junk
			}
			big := make([]byte, span)
			n, err := f.ReadAt(big, pg*ps)
			if err != nil && !errors.Is(err, io.EOF) {
				return res, fmt.Errorf("read %s: %w", src, err)
			}
			page = big[:n]
		}
		if err := scanLeaf(page, emit, meta, 0); err != nil {
			return res, err
		}
	}
	if err := flush(); err != nil {
		return res, err
	}
	if res.records > 0 {
		res.next = max(res.next, maxKey+1)
		res.seq = max(res.seq, maxKey)
		// The bucket's sequence (the dead letters' next ID) goes with the
		// records: a copy restarting at 0 would hand out salvaged IDs again.
		if err := out.Update(func(tx *bolt.Tx) error {
			if err := tx.Bucket(bucket).SetSequence(res.seq); err != nil {
				return err
			}
			if err := putCount(tx, res.records); err != nil {
				return err
			}
			return putNext(tx, res.next)
		}); err != nil {
			return res, err
		}
	}
	if err := out.Sync(); err != nil {
		return res, err
	}
	_ = out.View(func(tx *bolt.Tx) error { res.used = tx.Size(); return nil })
	return res, nil
}

// scanLeaf calls meta for each element of a leaf page and emit for each one
// that is not a bucket, with every bound checked, descending once into inline
// buckets (a small bucket's page is stored inside its parent's leaf value).
func scanLeaf(page []byte, emit func(k, v []byte) error, meta func(k, v []byte, isBucket bool), depth int) error {
	ne := binary.NativeEndian
	count := int(ne.Uint16(page[10:12]))
	for i := 0; i < count; i++ {
		e := boltPageHeaderLen + i*boltLeafElemLen
		if e+boltLeafElemLen > len(page) {
			break
		}
		flags := ne.Uint32(page[e:])
		ks := int64(e) + int64(ne.Uint32(page[e+4:]))
		ke := ks + int64(ne.Uint32(page[e+8:]))
		ve := ke + int64(ne.Uint32(page[e+12:]))
		if ve > int64(len(page)) {
			continue
		}
		k, v := page[ks:ke], page[ke:ve]
		if flags&boltBucketLeafFlag != 0 {
			meta(k, v, true)
			if depth == 0 && len(v) >= boltInBucketLen+boltPageHeaderLen && ne.Uint64(v[0:8]) == 0 &&
				ne.Uint16(v[boltInBucketLen+8:]) == boltLeafPageFlag {
				if err := scanLeaf(v[boltInBucketLen:], emit, meta, depth+1); err != nil {
					return err
				}
			}
			continue
		}
		meta(k, v, false)
		if err := emit(k, v); err != nil {
			return err
		}
	}
	return nil
}

// metaCopy reads the next ID and the record count from one copy of an inline
// meta bucket (v is its value in the parent leaf); ok is false when the copy
// lacks the count (a file written before the count was kept) or is not
// inline.
func metaCopy(v []byte) (next uint64, count int64, ok bool) {
	ne := binary.NativeEndian
	if len(v) < boltInBucketLen+boltPageHeaderLen || ne.Uint64(v[0:8]) != 0 ||
		ne.Uint16(v[boltInBucketLen+8:]) != boltLeafPageFlag {
		return 0, 0, false
	}
	var hasCount bool
	_ = scanLeaf(v[boltInBucketLen:], func(k, v []byte) error { return nil }, func(k, v []byte, isBucket bool) {
		switch {
		case isBucket || len(v) != 8:
		case bytes.Equal(k, nextKey):
			next = binary.BigEndian.Uint64(v)
		case bytes.Equal(k, countKey):
			count, hasCount = int64(min(binary.BigEndian.Uint64(v), math.MaxInt64)), true
		}
	}, 1)
	return next, count, hasCount
}

// noteMeta keeps the newest copy of the meta bucket seen so far. A commit
// that adds records raises next; between two such commits only deletes
// happen, which lower the count. So the newest copy has the highest next
// and, among those, the lowest count.
func (r *salvageResult) noteMeta(next uint64, count int64) {
	if !r.metaFound || next > r.metaNext || (next == r.metaNext && count < r.metaCount) {
		r.metaFound, r.metaNext, r.metaCount = true, next, count
	}
}

// lost estimates how many records the damaged file held that the salvage
// did not copy (see DamagedFile.Lost). The file's IDs run from floor (at
// least 1) to below end; end is 0 when the caller does not know it.
func (r *salvageResult) lost(floor, end uint64) (int64, LostEstimate) {
	if r.metaFound {
		return max(r.metaCount-r.records, 0), LostCounted
	}
	end = max(end, r.nextSeen)
	if r.headerSeq > 0 {
		end = max(end, r.headerSeq+1)
	}
	first := max(floor, 1)
	if end <= first {
		return -1, LostUnknown
	}
	width := end - first
	if width > math.MaxInt64 {
		width = math.MaxInt64
	}
	return max(int64(width)-r.records, 0), LostAtMost
}

// salvagePageSize reads the page size from the first meta page if it looks
// sane, else assumes the OS page size (bbolt's default, which the spool uses).
func salvagePageSize(f *os.File) int64 {
	var hdr [boltPageHeaderLen + 12]byte
	if _, err := f.ReadAt(hdr[:], 0); err == nil {
		ne := binary.NativeEndian
		if ne.Uint32(hdr[16:20]) == boltMagic {
			ps := int64(ne.Uint32(hdr[24:28]))
			if ps >= 512 && ps <= 1<<16 && ps&(ps-1) == 0 {
				return ps
			}
		}
	}
	return int64(os.Getpagesize())
}
