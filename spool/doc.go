// Package spool is the relay's on-disk holding area for envelopes while the
// upstream is in outage: a store of opaque records (encoded stream.Message
// values) kept in bbolt files. It is storage only — it never talks HTTP and
// never interprets the bytes it keeps.
//
// # Guarantees
//
//   - Put returns nil only after the bbolt transaction holding the record has
//     committed: fsynced, unless Options.NoSync is set (then it survives the
//     death of the process but not a power loss; see shared/docs/durability.md).
//   - Concurrent Put calls are coalesced by one committer goroutine into one
//     transaction of up to Options.MaxBatch records (group commit): one fsync
//     is shared by every caller waiting at that moment, so throughput grows
//     with the number of callers instead of being capped at one fsync per put.
//     The committer owns the segment files; Close stops it after it has
//     committed everything already handed to it.
//   - Record IDs are uint64, strictly increasing in commit order, stored as
//     big-endian keys, and never reused — also across restarts (each segment
//     records the next ID) — so Oldest returns records oldest first (FIFO)
//     across restarts. After a damaged segment was set aside, IDs jump 2^40
//     past its floor, so that they cannot meet one left in the damaged file.
//   - A Put whose ctx ends while it waits returns the ctx error. If the record
//     had not yet been handed to a transaction it is certainly not stored;
//     otherwise it may or may not have been committed. Callers must treat any
//     error from Put as "not committed": at worst the record is stored twice
//     (a duplicate upstream later), never lost.
//   - Delete is idempotent: IDs not in the spool are ignored.
//   - Dead letters leave only by an operator's hand: DeleteBuried, or Unbury,
//     which commits them to the live records before it deletes them from
//     dead.db (an interruption leaves a duplicate, never a loss). Their IDs
//     come from dead.db's bucket sequence and are never reused.
//   - Directory entries are durable before anything relies on them: Open
//     fsyncs the parent of every directory it creates (the spool directory
//     and any missing parents, e.g. the config directory), top down, and
//     every segment or dead.db file created, renamed (salvage) or removed is
//     followed by an fsync of the spool directory before Open returns or the
//     next commit goes to it. A failed directory fsync fails Open.
//
// # On-disk layout
//
// The configured path (default <config dir>/spool.db) is a directory:
//
//	spool.db/
//	  LOCK                          flock'ed while a Spool is open
//	  00000000000000000001.seg      segment: bbolt file, buckets "records", "meta"
//	  00000000000000052113.seg      the newest segment is the active one
//	  dead.db                       dead letters: bbolt file, buckets "dead", "meta",
//	                                and "imports" (the transfer files imported)
//	  EXPORT                        only while an export is being completed
//	  00000000000000000001.seg.corrupt-20250102T150405Z   a damaged file set aside
//
// A segment's name is the first record ID it may hold (its floor), in 20
// decimal digits so that name order is ID order. Every record lives in the
// segment with the greatest floor not above its ID. Writes go to the newest
// (active) segment; once its used size passes Options.SegmentSize a new
// segment is started, whose floor is the next ID. Oldest reads segments in
// order. A bbolt file never shrinks by itself, so disk is reclaimed by whole
// files: a non-active segment whose last record was deleted is closed and
// removed, and when the whole spool is drained an active segment that has
// grown past 1 MiB is replaced by a fresh one. Disk use therefore falls back
// to a few tens of KiB once an outage's backlog has been drained.
//
// Record values are a version byte (1), a CRC-32C of the data, and the data.
// bbolt has no page checksums; the CRC lets Oldest notice payload bytes that
// were damaged on disk. Such a record is moved to the dead letters (counted in
// relay_spool_corrupt_records_total) instead of being forwarded as garbage.
// So is a record whose key is damaged — not an ID its segment can hold, or out
// of order — since its ID would send Delete to another record or to none. A
// damaged record is deleted by its raw key and value from the segment it was
// read in (rebuilding that segment's bucket when the damage hides the key
// from bbolt's lookups), so it is set aside once, not on every read.
//
// # Moving records to another spool
//
// Export writes the live records to a transfer file (transfer.go: versioned,
// a checksum per record, fsynced) and removes them from the spool; Import
// stores a transfer file's records. Both keep every record exactly once
// however they are interrupted: an export is committed by a marker file
// written after the transfer file is complete, and finished by the next Open
// if it was cut short; an import commits each batch together with its
// progress, so that running it again stores only what is missing, and
// nothing once the file was imported in full (export.go, import.go).
//
// # Capacity
//
// Options.MaxDiskSize caps the live data: Put fails with ErrFull when the
// stored bytes (payload plus a fixed per-record overhead) of committed and
// pending records would exceed it. The files themselves can be larger by up
// to about one segment plus bbolt's page slack, and by the dead letters,
// which have their own caps (Options.MaxBuried, Options.MaxBuriedBytes): at
// the cap Bury fails with ErrDeadFull. Dead letters are never evicted.
//
// # Memory: the segment maps
//
// bbolt reads a segment through a read-only shared memory map of its file,
// and every page read stays mapped — counted in the process's RSS as
// file-backed memory — until the segment is closed. After every 8 MiB
// read (Oldest, OldestAfter) or written and deleted (commits) through the
// maps, the spool advises the kernel to drop its mapped pages of every open
// segment (MADV_DONTNEED, Linux only; elsewhere the pages stay mapped until
// the segment is closed). The advice is given inside a read transaction,
// while bbolt cannot remap the file, and only drops page-table entries:
// the data stays in the page cache and the file, and reads return the same
// bytes. It never fails an operation; a failed advice is counted
// (relay_spool_mapped_drop_errors_total) and logged at debug level. See
// pages.go.
//
// # Damaged files
//
// Open never hangs: the directory lock and every bbolt file lock are taken
// with a timeout (Options.LockTimeout), and a lock held elsewhere is reported
// as "spool: <file> is locked by another process".
//
// Open checks every segment and the dead-letter file before use: the file
// size against the last commit's high-water mark (a truncated file would make
// bbolt read past its end), then a walk of every key, with memory faults
// turned into errors. Open therefore reads every page holding keys, in time
// proportional to the spool's size.
//
// A damaged file — truncated, overwritten with junk, empty, or not a bbolt
// file at all — does not stop the relay, and is never silently emptied:
//
//  1. what can still be read is copied into <name>.salvage by a page-by-page
//     scan that does not trust the damaged B-tree (plain reads, no memory
//     map): every record on any leaf page whose checksum holds;
//  2. the damaged file is renamed <name>.corrupt-<UTC timestamp> and kept,
//     byte for byte, for an operator (the bbolt CLI can read it);
//  3. the salvaged copy takes its place as <name>.
//
// Each such event is logged at ERROR level with the file, where it was moved,
// why, how many records were salvaged and how many could not be read;
// counted in relay_spool_damaged_files_total (and the unreadable records in
// relay_spool_unreadable_records_total); and listed in Spool.Report. How
// many records could not be read is derived from the record count each file
// keeps with every commit, or when damage took that, bounded by the file's ID
// range; DamagedFile.Lost and LostEstimate say which, and what it means. Later starts
// keep warning about set-aside files until they are deleted. The scan may
// also find records that had been deleted before the damage, on pages not
// yet reused: a salvage errs towards duplicates upstream, never towards
// loss. Salvaged dead letters keep their IDs, and the salvaged dead.db keeps
// its ID sequence (the highest copy of it found on any page, and at least
// the highest ID salvaged), so later burials never reuse a salvaged ID. If the salvage cannot be written (disk full), Open fails with an
// error that names the file and what to do. A crash in the middle of a
// salvage is finished or redone by the next Open. Files in the directory
// that are not the spool's are left untouched, logged and reported.
package spool
