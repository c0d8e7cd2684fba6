package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	bolt "go.etcd.io/bbolt"
)

// Dead letters are envelopes the upstream rejected for good (a 4xx other than
// 429) and records found damaged on disk. They are never retried; they are
// kept, capped, for an operator to look at. They live in their own file
// (dead.db, bucket "dead") so that they never hold a segment's disk.
var deadBucket = []byte("dead")

// A dead-letter value is:
//
//	[0]       format version (deadVersion)
//	[1:5]     CRC-32C of bytes [5:], little-endian
//	[5:13]    buried-at, Unix nanoseconds, big-endian
//	[13:15]   reason length r, big-endian
//	[15:15+r] reason
//	[15+r:]   data
const (
	deadVersion    = 1
	deadHeaderLen  = 15
	maxReasonBytes = 1024
)

var (
	buriedTotal = metrics.NewCounter(`relay_spool_buried_total`)
	deadRefused = metrics.NewCounter(`relay_spool_bury_refused_total{reason="dead_letters_full"}`)
	// unburiedTotal counts dead letters an operator moved back to the live
	// records.
	unburiedTotal = metrics.NewCounter(`relay_spool_unburied_total`)
)

func appendDead(dst []byte, at time.Time, reason string, data []byte) []byte {
	if len(reason) > maxReasonBytes {
		reason = reason[:maxReasonBytes]
	}
	start := len(dst)
	dst = append(dst, deadVersion, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, uint64(at.UnixNano()))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(reason)))
	dst = append(dst, reason...)
	dst = append(dst, data...)
	binary.LittleEndian.PutUint32(dst[start+1:], crc32.Checksum(dst[start+5:], castagnoli))
	return dst
}

// deadShape returns the reason length of a dead-letter value, or false when
// its shape is wrong. It does not verify the checksum.
func deadShape(v []byte) (int, bool) {
	if len(v) < deadHeaderLen || v[0] != deadVersion {
		return 0, false
	}
	r := int(binary.BigEndian.Uint16(v[13:15]))
	if deadHeaderLen+r > len(v) {
		return 0, false
	}
	return r, true
}

func deadPayload(v []byte) (int64, bool) {
	r, ok := deadShape(v)
	if !ok {
		return 0, false
	}
	return int64(len(v) - deadHeaderLen - r), true
}

// decodeDead decodes a dead letter; crcOK reports whether its checksum holds.
func decodeDead(id uint64, v []byte) (rec Record, crcOK, ok bool) {
	r, ok := deadShape(v)
	if !ok {
		return Record{}, false, false
	}
	crcOK = crc32.Checksum(v[5:], castagnoli) == binary.LittleEndian.Uint32(v[1:5])
	return Record{
		ID:       id,
		BuriedAt: time.Unix(0, int64(binary.BigEndian.Uint64(v[5:13]))),
		Reason:   string(v[deadHeaderLen : deadHeaderLen+r]),
		Data:     append([]byte(nil), v[deadHeaderLen+r:]...),
	}, crcOK, true
}

func salvageDead(v []byte) (int64, bool) {
	if _, crcOK, ok := decodeDead(0, v); !ok || !crcOK {
		return 0, false
	}
	return deadPayload(v)
}

type deadStore struct {
	log      interface{ Warn(string, ...any) }
	maxCount int64
	maxBytes int64
	path     string

	mu    sync.Mutex // serialises writers and guards the fields below
	db    *bolt.DB   // nil once closed
	count int64
	bytes int64
}

func (s *Spool) openDead() (*deadStore, error) {
	path := filepath.Join(s.dir, deadName)
	d := &deadStore{log: s.log, maxCount: int64(s.opts.MaxBuried), maxBytes: s.opts.MaxBuriedBytes, path: path}
	var fi fileInfo
	var seq uint64 // the least the bucket's sequence must be
	if _, err := os.Stat(path); err == nil {
		var damage string
		fi, damage, err = s.checkFile(path, deadBucket, 0, deadPayload)
		if err != nil {
			return nil, err
		}
		if damage != "" {
			res, err := s.recoverFile(path, deadBucket, 0, 0, salvageDead, damage)
			if err != nil {
				return nil, err
			}
			fi = fileInfo{records: res.records, bytes: res.bytes}
			seq = res.seq
		}
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	db, err := openBolt(path, s.boltOptions(false, true))
	if err != nil {
		return nil, fmt.Errorf("spool: open dead letters %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(deadBucket)
		if err != nil {
			return err
		}
		// When nothing could be salvaged the file starts afresh; its IDs
		// still continue after the set-aside file's.
		if b.Sequence() < seq {
			return b.SetSequence(seq)
		}
		return nil
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("spool: open dead letters %s: %w", path, err)
	}
	// A new file's directory entry is durable only once the directory is
	// fsynced; the commits inside it do not cover it.
	if created {
		if err := s.opts.syncDir(s.dir); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("spool: create dead letters %s: %w", path, err)
		}
	}
	d.db, d.count, d.bytes = db, fi.records, fi.bytes
	return d, nil
}

// Bury keeps data as a dead letter with the reason it will never be
// forwarded (e.g. "upstream answered 400: <detail>"; never the payload). It
// returns after the commit, so the caller may then ack the message. At
// MaxBuried records or MaxBuriedBytes it refuses with ErrDeadFull (counted in
// relay_spool_bury_refused_total) and stores nothing: dead letters are never
// evicted to make room, because each is an envelope an SDK was promised.
func (s *Spool) Bury(ctx context.Context, data []byte, reason string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("spool: bury: not stored: %w", err)
	}
	if err := s.dead.bury(data, reason); err != nil {
		return fmt.Errorf("spool: bury: %w", err)
	}
	return nil
}

// DeadFull reports whether the dead letters are at their cap, so that the
// next Bury would fail with ErrDeadFull.
func (s *Spool) DeadFull() bool {
	d := s.dead
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.full(0)
}

// full reports whether burying n more payload bytes would pass a cap.
// d.mu must be held.
func (d *deadStore) full(n int) bool {
	return d.count >= d.maxCount || d.bytes+int64(n) > d.maxBytes
}

func (d *deadStore) bury(data []byte, reason string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.db == nil {
		return ErrClosed
	}
	// An envelope larger than the whole byte cap is still taken into empty
	// dead letters: refusing it would hold it in the stream forever.
	if d.full(len(data)) && (d.count > 0 || d.count >= d.maxCount) {
		deadRefused.Inc()
		return fmt.Errorf("%w (%d of %d records, %d of %d bytes)", ErrDeadFull, d.count, d.maxCount, d.bytes, d.maxBytes)
	}
	err := d.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(deadBucket)
		if err != nil {
			return err
		}
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put(encodeKey(nil, id), appendDead(nil, time.Now(), reason, data)); err != nil {
			return err
		}
		if err := putNext(tx, id+1); err != nil {
			return err
		}
		return putCount(tx, d.count+1)
	})
	if err != nil {
		return fmt.Errorf("commit to %s: %w", d.path, err)
	}
	d.count++
	d.bytes += int64(len(data))
	buriedTotal.Inc()
	return nil
}

// Buried returns up to n dead letters, oldest first. A dead letter whose
// checksum fails is still returned, with that noted in its Reason.
func (s *Spool) Buried(n int) ([]Record, error) {
	return s.BuriedFrom(0, n)
}

// BuriedFrom returns up to n dead letters with IDs from id on, oldest first,
// as Buried does: a listing pages through them without holding them all.
func (s *Spool) BuriedFrom(id uint64, n int) ([]Record, error) {
	d := s.dead
	d.mu.Lock()
	db := d.db
	d.mu.Unlock()
	if db == nil {
		return nil, fmt.Errorf("spool: buried: %w", ErrClosed)
	}
	var out []Record
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(deadBucket)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(encodeKey(nil, id)); k != nil && len(out) < n; k, v = c.Next() {
			rec, crcOK, ok := decodeDead(decodeKey(k), v)
			if !ok {
				out = append(out, Record{ID: decodeKey(k), Reason: "spool: dead letter damaged on disk (unknown format)", Data: append([]byte(nil), v...)})
				continue
			}
			if !crcOK {
				rec.Reason += " [spool: damaged on disk: checksum failed]"
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("spool: buried: %w", err)
	}
	return out, nil
}

// DeleteBuried removes dead letters, e.g. once an operator has dealt with
// them. Unknown IDs are ignored.
func (s *Spool) DeleteBuried(ids ...uint64) error {
	d := s.dead
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.db == nil {
		return fmt.Errorf("spool: delete buried: %w", ErrClosed)
	}
	count, bytes := d.count, d.bytes
	err := d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(deadBucket)
		if b == nil {
			return nil
		}
		for _, id := range ids {
			k := encodeKey(nil, id)
			v := b.Get(k)
			if v == nil {
				continue
			}
			n, _ := deadPayload(v)
			if err := b.Delete(k); err != nil {
				return err
			}
			count--
			bytes -= n
		}
		return putCount(tx, count)
	})
	if err != nil {
		return fmt.Errorf("spool: delete buried: %w", err)
	}
	d.count, d.bytes = count, bytes
	return nil
}

// ErrNotBuried is returned (wrapped) by Unbury when an ID is not a dead letter.
var ErrNotBuried = errors.New("no such dead letter")

// Unbury moves the dead letters with these IDs back into the live records,
// where the drain sends them upstream again (an operator's retry, once the
// cause is fixed). They are stored with one PutBatch, under new IDs, in ID
// order, and deleted from the dead letters only after that commit: a crash or
// an error in between leaves them in both places (a duplicate upstream),
// never in neither. Nothing is moved when an ID is not a dead letter
// (ErrNotBuried) or a dead letter is damaged on disk; a full spool refuses
// with ErrFull as Put does.
func (s *Spool) Unbury(ctx context.Context, ids ...uint64) error {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) == 0 {
		return nil
	}
	d := s.dead
	d.mu.Lock()
	db := d.db
	d.mu.Unlock()
	if db == nil {
		return fmt.Errorf("spool: unbury: %w", ErrClosed)
	}
	datas := make([][]byte, 0, len(ids))
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(deadBucket)
		var missing []uint64
		for _, id := range ids {
			var v []byte
			if b != nil {
				v = b.Get(encodeKey(nil, id))
			}
			if v == nil {
				missing = append(missing, id)
				continue
			}
			rec, crcOK, ok := decodeDead(id, v)
			if !ok || !crcOK {
				return fmt.Errorf("dead letter %d is damaged on disk (its checksum fails); it cannot be sent again", id)
			}
			datas = append(datas, rec.Data)
		}
		if len(missing) > 0 {
			return fmt.Errorf("%w: %v", ErrNotBuried, missing)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("spool: unbury: %w", err)
	}
	if err := s.PutBatch(ctx, datas); err != nil {
		return fmt.Errorf("spool: unbury: nothing moved: %w", err)
	}
	if s.afterUnburyPut != nil {
		s.afterUnburyPut()
	}
	if err := s.DeleteBuried(ids...); err != nil {
		return fmt.Errorf("spool: unbury: back in the live records, but still in the dead letters too (they will be sent once and stay here): %w", err)
	}
	unburiedTotal.Add(len(ids))
	return nil
}

// stats returns the dead letters' count and payload bytes, and disk plus the
// file's size.
func (d *deadStore) stats(disk int64) (count, bytes, diskOut int64) {
	d.mu.Lock()
	count, bytes = d.count, d.bytes
	d.mu.Unlock()
	if fi, err := os.Stat(d.path); err == nil {
		disk += fi.Size()
	}
	return count, bytes, disk
}

func (d *deadStore) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.db == nil {
		return nil
	}
	err := d.db.Close()
	d.db = nil
	if err != nil {
		return fmt.Errorf("spool: close %s: %w", d.path, err)
	}
	return nil
}
