package stream

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"sync"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go/jetstream"
)

// The start-up loss check.
//
// nats-server recovers a damaged store quietly: a block cut short is rebuilt
// from the records that still verify, a block cut to zero or removed loses
// all its messages, and none of that shows in StreamState.Lost. Worse, a
// rebuild can forget the deletes of acked messages, which come back: the
// stream can hold as many messages as before the damage and still miss some.
// So the relay keeps its own account — a seqRecord beside the store — of the
// sequences it holds open: published (a PubAck) and not yet acked by a
// worker. Acked messages are deleted from the work queue; the record tells
// those from lost ones, because an ack takes the sequence out of the record.
// When Open loads the stream, every sequence still in the record that the
// stream does not hold was acknowledged to an SDK and never forwarded: lost.
// The count and the sequences are exact (within the caveats below).
//
// The record is an append-only file of small checksummed entries ("add
// sequence", "ack started", "ack done"), stored before a Publish returns
// and before an ack is sent, and never fsynced: it survives the relay being
// killed, which is what it is for. The file is written with room for many
// entries (zeros, the end of the record) and mapped shared: an entry is
// copied into the mapping, i.e. into the page cache, as a write(2) would
// put it there, without a system call per publish. Where the file cannot be
// mapped (or a store into the mapping faults) entries are appended with
// write(2) instead (concurrent callers share one write; "ack done" rides
// along with the next). It is rewritten from memory (the open sequences as
// ranges: a handful, since acks come roughly in order) when the entries
// outgrow the set or the room, and at every Open.
//
// An ack is noted as started before it is sent and as done (or undone)
// when its answer comes. A kill in between leaves it started: at the next
// Open such a sequence is still open if the stream holds it (the ack never
// arrived) and acked if it does not (it did) — so a kill neither invents a
// loss nor hides one.
//
// An ack sent without waiting (Delivery.AckNoWait) stays started until a
// later round trip to the server, one per batch of such acks, showed it was
// read (acknowait.go); until then it is resolved like an ack a kill cut
// short.
//
// A message whose PubAck came but whose Publish had not yet returned when
// the relay died may be missing from the record: nobody was told it was
// kept, so its loss breaks no promise and is not reported.
//
// What can make it wrong, and which way:
//   - an ack that failed on the way back after the server took it: the
//     sequence stays open and is reported lost if it is later missing;
//   - an ack that was started and never answered (a kill) for a message a
//     damaged block also lost: counted as acked (a miss);
//   - a PubAck marked duplicate (the same Nats-Msg-Id again) is added only
//     when above every sequence seen, since an older one may have been acked
//     already (a possible miss);
//   - acks by other processes sharing the durable through Config.Listen do
//     not pass through here: with Listen set the record is not kept and the
//     check is off (Open says so);
//   - a power loss can roll the record back along with the store; a report
//     after one may name messages acked just before it.
var recordWriteErrors = metrics.NewCounter(`relay_stream_record_errors_total`)

const (
	// recordMagic: v03 may end in zeros (the mapped room) and a torn entry
	// before them; v02 files (appended only) are read as well.
	recordMagic     = "RLYSEQ03"
	recordMagicV2   = "RLYSEQ02"
	recordEntrySize = 8 + 8 + 4 // lo (top bit: an ack), hi, crc32c of the 16 bytes
	removeBit       = 1 << 63
	// hi of an ack entry (lo = sequence|removeBit).
	ackStarted = 0
	ackDone    = 1
	// earlyMax bounds acks remembered for sequences whose PubAck was not yet
	// recorded (a worker can ack a message before its publisher records it).
	earlyMax = 1 << 16
	// compactEntries: rewrite the file once it has this many entries more
	// than the set needs.
	compactEntries = 1 << 16
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type seqRange struct{ lo, hi uint64 }

// seqSet is a set of sequences as sorted, disjoint, non-adjacent ranges,
// plus the acks that came before their adds.
type seqSet struct {
	ranges  []seqRange
	high    uint64              // highest sequence ever added
	early   map[uint64]struct{} // removed before added
	pending map[uint64]struct{} // taken out for an ack not yet answered
}

func (s *seqSet) contains(q uint64) bool {
	i := sort.Search(len(s.ranges), func(i int) bool { return s.ranges[i].hi >= q })
	return i < len(s.ranges) && s.ranges[i].lo <= q
}

// add adds lo..hi; a single sequence that was removed early cancels out.
// Adding a pending sequence (its ack failed) puts it back.
func (s *seqSet) add(lo, hi uint64) {
	if lo == hi {
		delete(s.pending, lo)
		if _, ok := s.early[lo]; ok {
			delete(s.early, lo)
			s.high = max(s.high, hi)
			return
		}
	}
	s.high = max(s.high, hi)
	i := sort.Search(len(s.ranges), func(i int) bool { return s.ranges[i].hi+1 >= lo })
	j := i
	for j < len(s.ranges) && s.ranges[j].lo <= hi+1 {
		lo, hi = min(lo, s.ranges[j].lo), max(hi, s.ranges[j].hi)
		j++
	}
	s.ranges = append(s.ranges[:i], append([]seqRange{{lo, hi}}, s.ranges[j:]...)...)
}

// startAck takes q out for an ack about to be sent: it is pending until
// doneAck (or add, when the ack failed).
func (s *seqSet) startAck(q uint64) {
	if s.contains(q) {
		if s.pending == nil {
			s.pending = map[uint64]struct{}{}
		}
		s.pending[q] = struct{}{}
	}
	s.remove(q)
}

func (s *seqSet) doneAck(q uint64) { delete(s.pending, q) }

// remove takes q out; a q not in the set is remembered as acked early.
func (s *seqSet) remove(q uint64) {
	i := sort.Search(len(s.ranges), func(i int) bool { return s.ranges[i].hi >= q })
	if i == len(s.ranges) || s.ranges[i].lo > q {
		if s.early == nil {
			s.early = map[uint64]struct{}{}
		}
		if len(s.early) >= earlyMax {
			// Entries far below the newest sequence will never see their
			// add: acks of messages that were never in the record.
			for e := range s.early {
				if e+earlyMax < s.high {
					delete(s.early, e)
				}
			}
		}
		if len(s.early) < earlyMax {
			s.early[q] = struct{}{}
		}
		return
	}
	r := s.ranges[i]
	switch {
	case r.lo == q && r.hi == q:
		s.ranges = append(s.ranges[:i], s.ranges[i+1:]...)
	case r.lo == q:
		s.ranges[i].lo++
	case r.hi == q:
		s.ranges[i].hi--
	default:
		s.ranges = append(s.ranges[:i+1], append([]seqRange{{q + 1, r.hi}}, s.ranges[i+1:]...)...)
		s.ranges[i].hi = q - 1
	}
}

func (s *seqSet) count() (n uint64) {
	for _, r := range s.ranges {
		n += r.hi - r.lo + 1
	}
	return n
}

func encodeEntry(b []byte, lo, hi uint64) {
	binary.LittleEndian.PutUint64(b, lo)
	binary.LittleEndian.PutUint64(b[8:], hi)
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], crcTable))
}

// replayRecord reads a record file into a set. A torn last entry (a kill in
// the middle of a write) is ignored; any other damage is an error.
//
// In a v03 file an all-zero entry is the end: the room of a mapped record
// not yet written (no entry is all zeros: its checksum is not). Only zeros
// may follow it, and an entry that fails its checksum is a torn store (a
// kill in the middle of copying it) only when only zeros follow it.
func replayRecord(b []byte) (*seqSet, error) {
	if len(b) < len(recordMagic) {
		return nil, errors.New("not a record file")
	}
	mapped := string(b[:len(recordMagic)]) == recordMagic
	if !mapped && string(b[:len(recordMagicV2)]) != recordMagicV2 {
		return nil, errors.New("not a record file")
	}
	s := &seqSet{}
	b = b[len(recordMagic):]
	for n := 0; len(b) >= recordEntrySize; n++ {
		e := b[:recordEntrySize]
		if mapped && allZero(e) {
			if !allZero(b) {
				return nil, fmt.Errorf("entry %d: entries after the end", n)
			}
			break
		}
		b = b[recordEntrySize:]
		if crc32.Checksum(e[:16], crcTable) != binary.LittleEndian.Uint32(e[16:]) {
			if mapped && allZero(b) {
				break // torn: the last store a kill cut short
			}
			return nil, fmt.Errorf("entry %d: checksum mismatch", n)
		}
		lo, hi := binary.LittleEndian.Uint64(e), binary.LittleEndian.Uint64(e[8:])
		if lo&removeBit != 0 {
			switch hi {
			case ackStarted:
				s.startAck(lo &^ removeBit)
			case ackDone:
				s.doneAck(lo &^ removeBit)
			default:
				return nil, fmt.Errorf("entry %d: bad ack entry %d", n, hi)
			}
			continue
		}
		if lo == 0 || lo > hi {
			return nil, fmt.Errorf("entry %d: bad range %d-%d", n, lo, hi)
		}
		s.add(lo, hi)
	}
	return s, nil
}

func allZero(b []byte) bool { return len(bytes.TrimLeft(b, "\x00")) == 0 }

// recordPath is the record's file: in the store directory, beside (not in)
// nats-server's jetstream directory.
func recordPath(storeDir, stream string) string {
	return filepath.Join(storeDir, "relay-"+stream+".seq")
}

// readRecord returns the set left by the last run; nil when there is none
// (first start), an error when there is one that cannot be read.
func readRecord(path string) (*seqSet, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	s, err := replayRecord(b)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return s, nil
}

// seqRecord is the relay's account of the open sequences, kept in one file.
//
// Entries are written as a group: a caller queues its entry (the set changes
// at once, under mu, in the same order as the entries) and, if no write is
// in progress, writes everything queued in one write(2) with mu released;
// callers arriving meanwhile queue behind it and are written by the next
// one. Each returns once its own entry is written. Concurrent publishes and
// acks so share system calls, as they share fsyncs in syncer.go.
type seqRecord struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	cond    *sync.Cond // on mu: a group write finished
	f       *os.File   // nil once closed
	set     *seqSet
	entries int // in the file or queued, since the last rewrite
	errOnce bool

	// The mapped file (nil when appending with write(2)): entries are
	// copied into m at used, under mu, in order, so a kill can tear only
	// the last one. noMap: mapping failed once; append from then on.
	m     []byte
	used  int
	noMap bool

	queued  []byte // entries not yet written, in order
	spare   []byte // the last written group's buffer, for reuse
	queuedN uint64 // entries ever queued
	doneN   uint64 // of those, written (or made moot by a rewrite or close)
	writing bool   // a group write is in progress (mu released)

	// entry is queueLocked's scratch for one encoded entry (under mu): a
	// local array was allocated on every publish and ack, as its slice
	// reaches crc32.Checksum (assembly: escape analysis assumes the worst).
	entry [recordEntrySize]byte
}

// startRecord writes set as a new record file and keeps appending to it.
func startRecord(path string, set *seqSet, log *slog.Logger) (*seqRecord, error) {
	r := &seqRecord{path: path, log: log, set: set}
	r.cond = sync.NewCond(&r.mu)
	if err := r.rewriteLocked(); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	return r, nil
}

// rewriteLocked replaces the file with the set (a new file renamed over the
// old one: a kill leaves one or the other, whole). No group write may be in
// progress. Queued entries are moot: the set already holds them.
func (r *seqRecord) rewriteLocked() error {
	tmp := r.path + ".tmp"
	b := make([]byte, 0, len(recordMagic)+(len(r.set.ranges)+len(r.set.early)+2*len(r.set.pending)+3)*recordEntrySize)
	b = append(b, recordMagic...)
	var e [recordEntrySize]byte
	put := func(lo, hi uint64) {
		encodeEntry(e[:], lo, hi)
		b = append(b, e[:]...)
	}
	if h := r.set.high; h > 0 && !r.set.contains(h) {
		// Keep the highest sequence seen: added, and acked.
		put(h, h)
		put(h|removeBit, ackStarted)
		put(h|removeBit, ackDone)
	}
	for _, rg := range r.set.ranges {
		put(rg.lo, rg.hi)
	}
	for q := range r.set.early {
		put(q|removeBit, ackStarted) // not in the set: early again
	}
	for q := range r.set.pending {
		put(q, q)
		put(q|removeBit, ackStarted)
	}
	used := len(b)
	if !r.noMap {
		// The room, written as zeros (not a hole: a store into the mapping
		// must not need the file system to find a block, e.g. on a full
		// disk). As large as the set again three times, at least
		// compactEntries in all.
		room := max(compactEntries-(used-len(recordMagic))/recordEntrySize, 3*(used-len(recordMagic))/recordEntrySize)
		b = append(b, make([]byte, room*recordEntrySize)...)
	}
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, r.path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	r.unmapLocked()
	if r.f != nil {
		r.f.Close() // the old file, replaced; nothing of ours is unwritten in it
	}
	f, err := os.OpenFile(r.path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		r.f = nil
		return fmt.Errorf("open %s: %w", r.path, err)
	}
	r.f, r.entries, r.used = f, 0, used
	r.queued, r.doneN = r.queued[:0], r.queuedN
	if !r.noMap {
		if r.m, err = mapRecord(f, len(b)); err != nil {
			if !errors.Is(err, errors.ErrUnsupported) { // no mmap here: nothing to tell
				r.log.Warn("the start-up loss record cannot be mapped; appending to it with write(2)", "path", r.path, "err", err)
			}
			r.noMap = true
			return r.truncateLocked()
		}
	}
	return nil
}

// unmapLocked drops the mapping (the stores in it are in the page cache).
func (r *seqRecord) unmapLocked() {
	if r.m == nil {
		return
	}
	if err := unmapRecord(r.m); err != nil {
		r.noteErrLocked(err)
	}
	r.m = nil
}

// truncateLocked cuts the room off the file, so that entries appended with
// write(2) follow the last one stored.
func (r *seqRecord) truncateLocked() error {
	if err := r.f.Truncate(int64(r.used)); err != nil {
		return fmt.Errorf("truncate %s: %w", r.path, err)
	}
	return nil
}

// storeLocked copies one entry into the mapping. A fault (the file cut
// short under us, an I/O error) panics instead of killing the process, and
// is returned.
func (r *seqRecord) storeLocked(e []byte) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store into the mapping of %s: %v", r.path, p)
		}
	}()
	copy(r.m[r.used:], e)
	r.used += len(e)
	return nil
}

// published records a PubAck; it returns once the entry is written.
func (r *seqRecord) published(ack *jetstream.PubAck) {
	if r == nil || ack == nil || ack.Sequence == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ack.Duplicate && ack.Sequence <= r.set.high {
		return // may have been acked already (see the caveats above)
	}
	r.set.add(ack.Sequence, ack.Sequence)
	r.writeLocked(r.queueLocked(ack.Sequence, ack.Sequence))
}

// acking takes seq out before its ack is sent (and returns once that is
// written); acked notes the server's answer; undo puts it back when the
// ack failed.
func (r *seqRecord) acking(seq uint64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.set.startAck(seq)
	r.writeLocked(r.queueLocked(seq|removeBit, ackStarted))
}

// acked is not waited for: it rides along with the next write. Losing it
// to a kill costs nothing — an ack started and not done is resolved at the
// next Open by whether the stream still holds the message.
func (r *seqRecord) acked(seq uint64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.set.pending[seq]; ok && r.f != nil {
		r.set.doneAck(seq)
		r.queueLocked(seq|removeBit, ackDone)
	}
}

func (r *seqRecord) undo(seq uint64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.set.add(seq, seq)
	r.writeLocked(r.queueLocked(seq, seq))
}

// queueLocked queues one entry and returns its number. With the file
// mapped the entry is stored at once (and so counts as written); when the
// room is full the file is rewritten instead (the set already holds the
// entry).
func (r *seqRecord) queueLocked(lo, hi uint64) uint64 {
	e := &r.entry
	encodeEntry(e[:], lo, hi)
	r.entries++
	r.queuedN++
	if r.m != nil {
		err := error(nil)
		if r.used+recordEntrySize > len(r.m) {
			if err = r.rewriteLocked(); err == nil {
				return r.queuedN
			}
		} else if err = r.storeLocked(e[:]); err == nil {
			r.doneN = r.queuedN
			return r.queuedN
		}
		// Go on appending with write(2), after the last entry stored.
		r.noteErrLocked(err)
		r.unmapLocked()
		r.noMap = true
		if r.f != nil {
			if err := r.truncateLocked(); err != nil {
				r.noteErrLocked(err)
			}
		}
	}
	r.queued = append(r.queued, e[:]...)
	return r.queuedN
}

// writeLocked returns once entry n is written, writing the queued group
// itself when no one else is. A failure does not fail the publish or ack
// (the envelope is safe in the stream either way); it makes the next
// start-up check unreliable, so it is counted and logged once.
func (r *seqRecord) writeLocked(n uint64) {
	for r.doneN < n {
		if r.writing {
			r.cond.Wait()
			continue
		}
		if r.f == nil { // closed with the connection; an ack now fails anyway
			r.queued, r.doneN = r.queued[:0], r.queuedN
			return
		}
		if r.entries >= compactEntries && r.entries >= 4*(len(r.set.ranges)+len(r.set.early)+len(r.set.pending)) {
			err := r.rewriteLocked()
			if err == nil || r.f == nil {
				continue
			}
			// The old file is still whole: append to it, and try the
			// rewrite again only after as many entries more.
			r.noteErrLocked(err)
			r.entries = 0
		}
		buf, upto, f := r.queued, r.queuedN, r.f
		r.queued, r.spare = r.spare[:0], nil
		r.writing = true
		r.mu.Unlock()
		_, err := f.Write(buf)
		r.mu.Lock()
		r.writing, r.spare, r.doneN = false, buf[:0], upto
		r.cond.Broadcast()
		if err != nil {
			r.noteErrLocked(fmt.Errorf("write %s: %w", r.path, err))
		}
	}
}

func (r *seqRecord) noteErrLocked(err error) {
	recordWriteErrors.Inc()
	if !r.errOnce {
		r.errOnce = true
		r.log.Error("writing the start-up loss record failed; the next start-up check may be wrong", "path", r.path, "err", err)
	}
}

func (r *seqRecord) close() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.writing {
		r.cond.Wait()
	}
	if r.f == nil {
		return nil
	}
	var err error
	if r.m != nil { // leave the file as long as what it holds
		r.unmapLocked()
		err = r.truncateLocked()
	}
	if len(r.queued) > 0 { // acks done, riding along with a write that did not come
		if _, werr := r.f.Write(r.queued); werr != nil {
			err = errors.Join(err, fmt.Errorf("write %s: %w", r.path, werr))
		}
		r.queued, r.doneN = r.queued[:0], r.queuedN
	}
	err = errors.Join(err, r.f.Close())
	r.f = nil
	if err != nil {
		return fmt.Errorf("record: close %s: %w", r.path, err)
	}
	return nil
}

// startupLoss is what compareRecord found.
type startupLoss struct {
	open     uint64 // sequences the record held open
	lost     uint64 // of those, the ones the stream does not hold
	from, to uint64 // the first and last lost sequence (0 when none)
	// kept is the record for this run: the open sequences the stream holds,
	// and the ones it holds above the record's highest (stored after its
	// last write).
	kept *seqSet
}

// compareRecord checks the open sequences of rec against a loaded stream's
// state; deleted is its interior gaps (StreamState.Deleted, sorted).
func compareRecord(rec *seqSet, state jetstream.StreamState, deleted []uint64) startupLoss {
	out := startupLoss{open: rec.count(), kept: &seqSet{high: max(rec.high, state.LastSeq)}}
	// Walk each range in stretches that are wholly held or wholly missing:
	// below FirstSeq, above LastSeq, an interior gap, or between gaps.
	for _, rg := range rec.ranges {
		for q := rg.lo; ; {
			end, held := rg.hi, false
			switch {
			case state.LastSeq == 0 || q > state.LastSeq:
			case q < state.FirstSeq:
				end = min(end, state.FirstSeq-1)
			default:
				end = min(end, state.LastSeq)
				i := sort.Search(len(deleted), func(i int) bool { return deleted[i] >= q })
				switch {
				case i < len(deleted) && deleted[i] == q:
					end = q
				case i < len(deleted):
					end, held = min(end, deleted[i]-1), true
				default:
					held = true
				}
			}
			if held {
				out.kept.add(q, end)
			} else {
				out.lost += end - q + 1
				if out.from == 0 {
					out.from = q
				}
				out.to = max(out.to, end)
			}
			if end >= rg.hi {
				break
			}
			q = end + 1
		}
	}
	// Held above everything the record saw: stored after its last write (a
	// kill between a PubAck and the write).
	for _, rg := range heldSet(state, deleted).ranges {
		if rg.hi > rec.high {
			out.kept.add(max(rg.lo, rec.high+1), rg.hi)
		}
	}
	// Acks a kill cut short: still open if the stream holds the message
	// (the ack never arrived), acked if not.
	for q := range rec.pending {
		if held(state, deleted, q) {
			out.kept.add(q, q)
		}
	}
	for q := range rec.early {
		out.kept.remove(q)
	}
	return out
}

// held tells whether a loaded stream holds q.
func held(state jetstream.StreamState, deleted []uint64, q uint64) bool {
	if state.LastSeq == 0 || q < state.FirstSeq || q > state.LastSeq {
		return false
	}
	i := sort.Search(len(deleted), func(i int) bool { return deleted[i] >= q })
	return i == len(deleted) || deleted[i] != q
}

// heldSet is every sequence a loaded stream holds (for a first record).
func heldSet(state jetstream.StreamState, deleted []uint64) *seqSet {
	s := &seqSet{high: state.LastSeq}
	if state.Msgs == 0 {
		return s
	}
	lo := state.FirstSeq
	for _, d := range deleted {
		if d < lo || d > state.LastSeq {
			continue
		}
		if d > lo {
			s.add(lo, d-1)
		}
		lo = d + 1
	}
	if lo <= state.LastSeq {
		s.add(lo, state.LastSeq)
	}
	return s
}

// checkStartupLoss compares the last run's record with the stream Open has
// just loaded, reports a loss (an ERROR line and
// relay_stream_recovery_lost_total), and starts the record for this run.
func (c *Conn) checkStartupLoss(ctx context.Context, info *jetstream.StreamInfo, streamDir string) (startupLoss, error) {
	path := recordPath(c.cfg.StoreDir, c.cfg.Stream)
	rec, err := readRecord(path)
	if err != nil {
		c.log.Warn("the start-up loss record is unreadable; this start is not checked for lost messages", "err", err)
	}
	state := info.State
	if state.NumDeleted > 0 {
		// The interior gaps, to tell held from missing (the list is as
		// long as the gaps: acks out of order).
		full, err := c.stream.Info(ctx, jetstream.WithDeletedDetails(true))
		if err != nil {
			return startupLoss{}, fmt.Errorf("stream %s info with deleted details: %w", c.cfg.Stream, err)
		}
		state = full.State
		sort.Slice(state.Deleted, func(i, j int) bool { return state.Deleted[i] < state.Deleted[j] })
	}
	var loss startupLoss
	if rec != nil {
		loss = compareRecord(rec, state, state.Deleted)
	} else {
		// First start (or an unreadable record): nothing to compare; from
		// now on everything the stream holds is accounted for.
		loss.kept = heldSet(state, state.Deleted)
	}
	if loss.lost > 0 {
		recoveryLost.Add(int(loss.lost))
		var serverLost uint64
		if l := state.Lost; l != nil {
			serverLost = uint64(len(l.Msgs))
		}
		c.log.Error("jetstream store came back without messages the relay acknowledged and no worker acked: messages lost",
			"store_dir", c.cfg.StoreDir, "stream_dir", streamDir, "stream", c.cfg.Stream, "lost_messages", loss.lost,
			"lost_first_seq", loss.from, "lost_last_seq", loss.to,
			"open_messages", loss.open, "held_messages", state.Msgs, "server_reported_lost", serverLost)
	}
	if c.rec, err = startRecord(path, loss.kept, c.log); err != nil {
		// A diagnostic must not keep the relay from starting (a full disk
		// is handled by the store watch). Without a record the next start
		// is not checked; a stale one must not be compared either.
		recordWriteErrors.Inc()
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		c.log.Error("the start-up loss record cannot be written; the next start is not checked for lost messages", "path", path, "err", err)
		c.rec = nil
	}
	return loss, nil
}
