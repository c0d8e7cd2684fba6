package spool

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"time"
)

// A transfer file carries spool records from one relay to another (`relay
// spool export` / `relay spool import`): a site whose link is down for long
// takes its spool away on a disk. Layout, all integers big-endian:
//
//	header   [0:8]   magic "RELAYSPL"
//	         [8]     format version (transferVersion)
//	         [9:25]  file ID: 16 random bytes, the identity an import records
//	         [25:33] created, Unix nanoseconds
//	         [33:37] CRC-32C of [0:33]
//	record   [0]     'R'
//	         [1:5]   data length n
//	         [5:9]   CRC-32C of data
//	         [9:9+n] data (one spool record: an encoded stream.Message)
//	trailer  [0]     'E'
//	         [1:9]   record count
//	         [9:17]  data bytes
//	         [17:21] CRC-32C of the file ID, count and bytes
//
// The trailer is written last and the file is fsynced before it gets its
// final name: a file without a valid trailer is incomplete and no import
// takes anything from it. Each record has its own checksum, so damage is
// found before anything is stored.
const (
	transferMagic     = "RELAYSPL"
	transferVersion   = 1
	transferHeaderLen = 8 + 1 + 16 + 8 + 4
	frameHeaderLen    = 1 + 4 + 4
	trailerLen        = 1 + 8 + 8 + 4
	frameRecord       = 'R'
	frameEnd          = 'E'
	// MaxTransferRecord bounds one record in a transfer file, so that a
	// damaged length cannot make a reader allocate without bound. The
	// relay's envelopes are far smaller (limits.max_envelope_size).
	MaxTransferRecord = 1 << 30
)

// FileID identifies a transfer file; an import records it, so that the same
// file is never imported twice.
type FileID [16]byte

func (id FileID) String() string { return hex.EncodeToString(id[:]) }

func newFileID() FileID {
	var id FileID
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return id
}

// ErrBadTransfer is wrapped by every error about a transfer file's content:
// not a transfer file, an unknown version, incomplete, or damaged.
var ErrBadTransfer = errors.New("not a complete, undamaged spool transfer file")

// TransferInfo describes a complete transfer file.
type TransferInfo struct {
	ID      FileID
	Created time.Time
	Records uint64
	Bytes   uint64 // record data bytes
}

func transferHeader(id FileID, created time.Time) []byte {
	b := make([]byte, 0, transferHeaderLen)
	b = append(b, transferMagic...)
	b = append(b, transferVersion)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(created.UnixNano()))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func parseTransferHeader(b []byte) (FileID, time.Time, error) {
	var id FileID
	if len(b) < transferHeaderLen || string(b[:8]) != transferMagic {
		return id, time.Time{}, fmt.Errorf("%w: no spool transfer header", ErrBadTransfer)
	}
	if b[8] != transferVersion {
		return id, time.Time{}, fmt.Errorf("%w: format version %d, this relay reads version %d", ErrBadTransfer, b[8], transferVersion)
	}
	if crc32.Checksum(b[:33], castagnoli) != binary.BigEndian.Uint32(b[33:37]) {
		return id, time.Time{}, fmt.Errorf("%w: the header fails its checksum", ErrBadTransfer)
	}
	copy(id[:], b[9:25])
	return id, time.Unix(0, int64(binary.BigEndian.Uint64(b[25:33]))), nil
}

func transferTrailer(id FileID, count, bytes uint64) []byte {
	b := make([]byte, 0, trailerLen)
	b = append(b, frameEnd)
	b = binary.BigEndian.AppendUint64(b, count)
	b = binary.BigEndian.AppendUint64(b, bytes)
	return binary.BigEndian.AppendUint32(b, trailerSum(id, count, bytes))
}

func trailerSum(id FileID, count, bytes uint64) uint32 {
	b := append(id[:], make([]byte, 16)...)
	binary.BigEndian.PutUint64(b[16:], count)
	binary.BigEndian.PutUint64(b[24:], bytes)
	return crc32.Checksum(b, castagnoli)
}

// transferWriter writes a transfer file; the caller fsyncs and names it.
type transferWriter struct {
	w            *bufio.Writer
	id           FileID
	count, bytes uint64
}

func newTransferWriter(w io.Writer, id FileID, created time.Time) (*transferWriter, error) {
	tw := &transferWriter{w: bufio.NewWriterSize(w, 1<<20), id: id}
	if _, err := tw.w.Write(transferHeader(id, created)); err != nil {
		return nil, err
	}
	return tw, nil
}

func (tw *transferWriter) add(data []byte) error {
	if len(data) > MaxTransferRecord {
		return fmt.Errorf("a record of %d bytes is larger than a transfer file takes (%d)", len(data), MaxTransferRecord)
	}
	var h [frameHeaderLen]byte
	h[0] = frameRecord
	binary.BigEndian.PutUint32(h[1:5], uint32(len(data)))
	binary.BigEndian.PutUint32(h[5:9], crc32.Checksum(data, castagnoli))
	if _, err := tw.w.Write(h[:]); err != nil {
		return err
	}
	if _, err := tw.w.Write(data); err != nil {
		return err
	}
	tw.count++
	tw.bytes += uint64(len(data))
	return nil
}

func (tw *transferWriter) finish() error {
	if _, err := tw.w.Write(transferTrailer(tw.id, tw.count, tw.bytes)); err != nil {
		return err
	}
	return tw.w.Flush()
}

// StatTransfer reads a transfer file's header and trailer only: enough to
// know that its writer finished it (and how many records it holds), not
// that no byte was damaged since (VerifyTransfer does).
func StatTransfer(path string) (TransferInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return TransferInfo{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return TransferInfo{}, err
	}
	if fi.Size() < transferHeaderLen+trailerLen {
		return TransferInfo{}, fmt.Errorf("%s: %w: %d bytes is too short", path, ErrBadTransfer, fi.Size())
	}
	h := make([]byte, transferHeaderLen)
	if _, err := io.ReadFull(f, h); err != nil {
		return TransferInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	var info TransferInfo
	if info.ID, info.Created, err = parseTransferHeader(h); err != nil {
		return TransferInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	t := make([]byte, trailerLen)
	if _, err := f.ReadAt(t, fi.Size()-trailerLen); err != nil {
		return TransferInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	if t[0] != frameEnd {
		return TransferInfo{}, fmt.Errorf("%s: %w: it has no end marker (an export that did not finish?)", path, ErrBadTransfer)
	}
	info.Records = binary.BigEndian.Uint64(t[1:9])
	info.Bytes = binary.BigEndian.Uint64(t[9:17])
	if trailerSum(info.ID, info.Records, info.Bytes) != binary.BigEndian.Uint32(t[17:21]) {
		return TransferInfo{}, fmt.Errorf("%s: %w: its end marker fails its checksum (an export that did not finish?)", path, ErrBadTransfer)
	}
	return info, nil
}

// transferReader reads a transfer file's records in order.
type transferReader struct {
	path  string
	f     *os.File
	r     *bufio.Reader
	info  TransferInfo
	left  int64 // bytes between the read position and the trailer
	count uint64
	bytes uint64
}

func openTransfer(path string) (*transferReader, error) {
	info, err := StatTransfer(path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if _, err := f.Seek(transferHeaderLen, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, err
	}
	return &transferReader{path: path, f: f, r: bufio.NewReaderSize(f, 1<<20), info: info,
		left: fi.Size() - transferHeaderLen - trailerLen}, nil
}

func (tr *transferReader) close() error { return tr.f.Close() }

// next returns the next record's data, or io.EOF after the last one, once
// the records read match the trailer's count and size.
func (tr *transferReader) next() ([]byte, error) {
	if tr.left == 0 {
		if tr.count != tr.info.Records || tr.bytes != tr.info.Bytes {
			return nil, fmt.Errorf("%s: %w: it holds %d records (%d bytes) but its end marker says %d (%d bytes)",
				tr.path, ErrBadTransfer, tr.count, tr.bytes, tr.info.Records, tr.info.Bytes)
		}
		return nil, io.EOF
	}
	var h [frameHeaderLen]byte
	if tr.left < frameHeaderLen {
		return nil, fmt.Errorf("%s: %w: record %d is cut short", tr.path, ErrBadTransfer, tr.count+1)
	}
	if _, err := io.ReadFull(tr.r, h[:]); err != nil {
		return nil, fmt.Errorf("%s: read record %d: %w", tr.path, tr.count+1, err)
	}
	tr.left -= frameHeaderLen
	n := int64(binary.BigEndian.Uint32(h[1:5]))
	if h[0] != frameRecord {
		return nil, fmt.Errorf("%s: %w: record %d has no record marker", tr.path, ErrBadTransfer, tr.count+1)
	}
	if n > tr.left || n > MaxTransferRecord {
		return nil, fmt.Errorf("%s: %w: record %d claims %d bytes, more than the file holds", tr.path, ErrBadTransfer, tr.count+1, n)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(tr.r, data); err != nil {
		return nil, fmt.Errorf("%s: read record %d: %w", tr.path, tr.count+1, err)
	}
	tr.left -= n
	if crc32.Checksum(data, castagnoli) != binary.BigEndian.Uint32(h[5:9]) {
		return nil, fmt.Errorf("%s: %w: record %d fails its checksum (damaged)", tr.path, ErrBadTransfer, tr.count+1)
	}
	tr.count++
	tr.bytes += uint64(n)
	return data, nil
}

// VerifyTransfer reads a whole transfer file and checks every record against
// its checksum and the file's end marker. each, when not nil, sees every
// record's data (it must not keep it); an error from it stops the walk.
func VerifyTransfer(path string, each func(data []byte) error) (TransferInfo, error) {
	tr, err := openTransfer(path)
	if err != nil {
		return TransferInfo{}, err
	}
	defer tr.close()
	for {
		data, err := tr.next()
		if errors.Is(err, io.EOF) {
			return tr.info, nil
		}
		if err != nil {
			return TransferInfo{}, err
		}
		if each != nil {
			if err := each(data); err != nil {
				return TransferInfo{}, fmt.Errorf("%s: record %d: %w", path, tr.count, err)
			}
		}
	}
}
