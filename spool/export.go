package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Export moves every live record into a transfer file, exactly once: each
// record ends up either in the file or in the spool, never in both and never
// in neither, however the export is interrupted. The protocol:
//
//  1. the records are written, oldest first, to <file>.partial, followed by
//     the trailer, and the file is fsynced. The spool is untouched; an
//     interruption leaves an incomplete .partial that no import accepts;
//  2. the export marker (<spool>/EXPORT: the file, its ID, the highest
//     record ID it holds) is written and fsynced. From here on the export
//     is committed: the records up to that ID belong to the file;
//  3. <file>.partial is renamed to <file> and the directory fsynced;
//  4. the exported records are deleted from the spool;
//  5. the marker is removed.
//
// Open finishes an export interrupted after step 2 (resumeExport) before
// anything else reads the spool, so neither a relay nor another command ever
// sees an exported record again. Dead letters stay in the spool: they need
// an operator here, not upstream elsewhere (`relay spool dead retry` first
// moves them to the live records, and an export then takes them along).

// exportMarkerName is the export marker in the spool directory.
const exportMarkerName = "EXPORT"

// partialSuffix names a transfer file being written.
const partialSuffix = ".partial"

// exportMarker is the EXPORT file's content.
type exportMarker struct {
	File  string `json:"file"` // absolute path of the finished file
	ID    string `json:"id"`   // its FileID
	MaxID uint64 `json:"max_id"`
}

// ExportResult describes a finished export.
type ExportResult struct {
	Path    string
	ID      FileID
	Records uint64
	Bytes   uint64
}

// ErrNothingToExport is returned by Export when the spool holds no live
// records; no file is written.
var ErrNothingToExport = errors.New("the spool holds no records to export")

var exportedTotal = metrics.NewCounter(`relay_spool_exported_records_total`)

// exportPage is how many records an export or import holds in memory at once
// (besides the MaxTransferRecord bound of each).
const exportPage = 256

// Export writes every live record to a new transfer file at path (which must
// not exist) and removes them from the spool, exactly once (see above).
// progress, when not nil, is called with the number of records written so
// far. It refuses, changing nothing, when there is nothing to export.
func (s *Spool) Export(ctx context.Context, path string, progress func(written uint64)) (ExportResult, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ExportResult{}, fmt.Errorf("spool: export: %w", err)
	}
	if _, err := os.Lstat(abs); err == nil {
		return ExportResult{}, fmt.Errorf("spool: export: %s exists; an export never overwrites a file (it may be an earlier export not imported yet)", abs)
	}
	if s.Stats().Records == 0 {
		return ExportResult{}, fmt.Errorf("spool: export: %w", ErrNothingToExport)
	}
	id := newFileID()
	res := ExportResult{Path: abs, ID: id}
	partial := abs + partialSuffix
	maxID, err := s.writeExport(ctx, partial, id, &res, progress)
	if err != nil {
		return ExportResult{}, errors.Join(fmt.Errorf("spool: export: nothing was removed from the spool: %w", err), removeIfExists(partial))
	}
	if err := s.exportStep("written"); err != nil {
		return ExportResult{}, err
	}
	// Step 2: the commit point.
	if err := s.writeMarker(exportMarker{File: abs, ID: id.String(), MaxID: maxID}); err != nil {
		return ExportResult{}, errors.Join(fmt.Errorf("spool: export: nothing was removed from the spool: %w", err), removeIfExists(partial))
	}
	if err := s.exportStep("marked"); err != nil {
		return ExportResult{}, err
	}
	if err := s.completeExport(abs, id.String(), maxID); err != nil {
		return ExportResult{}, err
	}
	exportedTotal.Add(int(res.Records))
	return res, nil
}

// writeExport is step 1: it writes the records to partial and fsyncs it,
// returning the highest record ID written.
func (s *Spool) writeExport(ctx context.Context, partial string, id FileID, res *ExportResult, progress func(uint64)) (maxID uint64, err error) {
	// A .partial left by an interrupted export is incomplete and never
	// imported: it is overwritten.
	f, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	tw, err := newTransferWriter(f, id, time.Now())
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", partial, err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		recs, err := s.OldestAfter(maxID, exportPage)
		if err != nil {
			return 0, err
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if err := tw.add(r.Data); err != nil {
				return 0, fmt.Errorf("write %s: record %d: %w", partial, r.ID, err)
			}
			if err := s.exportStep("record"); err != nil {
				return 0, err
			}
		}
		maxID = recs[len(recs)-1].ID
		if progress != nil {
			progress(tw.count)
		}
	}
	if err := tw.finish(); err != nil {
		return 0, fmt.Errorf("write %s: %w", partial, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("fsync %s: %w", partial, err)
	}
	res.Records, res.Bytes = tw.count, tw.bytes
	return maxID, nil
}

// completeExport does steps 3 to 5 for a committed export; it is also how
// Open finishes an interrupted one. Each step may be repeated.
func (s *Spool) completeExport(file, id string, maxID uint64) error {
	partial := file + partialSuffix
	if _, err := os.Stat(partial); err == nil {
		if err := os.Rename(partial, file); err != nil {
			return fmt.Errorf("spool: export: name the finished file: %w", err)
		}
		if err := s.opts.syncDir(filepath.Dir(file)); err != nil {
			return fmt.Errorf("spool: export: %w", err)
		}
	}
	if err := s.exportStep("renamed"); err != nil {
		return err
	}
	for {
		recs, err := s.OldestAfter(0, exportPage)
		if err != nil {
			return fmt.Errorf("spool: export: remove the exported records: %w", err)
		}
		ids := make([]uint64, 0, len(recs))
		for _, r := range recs {
			if r.ID <= maxID {
				ids = append(ids, r.ID)
			}
		}
		if len(ids) == 0 {
			break
		}
		if err := s.Delete(ids...); err != nil {
			return fmt.Errorf("spool: export: remove the exported records: %w", err)
		}
		if err := s.exportStep("deleted"); err != nil {
			return err
		}
	}
	marker := filepath.Join(s.dir, exportMarkerName)
	if err := os.Remove(marker); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: export: %w", err)
	}
	if err := s.opts.syncDir(s.dir); err != nil {
		return fmt.Errorf("spool: export: %w", err)
	}
	s.log.Info("spool: export complete", "file", file, "id", id)
	return nil
}

// writeMarker writes the export marker durably: a temporary file, fsynced,
// renamed into place, and the directory fsynced.
func (s *Spool) writeMarker(m exportMarker) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	path := filepath.Join(s.dir, exportMarkerName)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = s.opts.syncDir(s.dir)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("write the export marker %s: %w", path, err), removeIfExists(tmp))
	}
	return nil
}

// resumeExport finishes an export that was committed (its marker written)
// but interrupted; Open calls it once the committer runs. When the file is
// gone (neither it nor its .partial is there and complete) the records are
// kept — a duplicate upstream, should the file turn up and be imported, is
// better than a loss — and that is logged.
func (s *Spool) resumeExport() error {
	path := filepath.Join(s.dir, exportMarkerName)
	_ = os.Remove(path + ".tmp") // a marker never completed: the export was not committed
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("spool: open: read the export marker: %w", err)
	}
	var m exportMarker
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("spool: open: the export marker %s is damaged (%v); check whether %s was exported and remove the marker", path, err, s.dir)
	}
	found := false
	for _, f := range []string{m.File, m.File + partialSuffix} {
		if info, err := StatTransfer(f); err == nil && info.ID.String() == m.ID {
			found = true
			break
		}
	}
	if !found {
		s.log.Error("spool: an interrupted export's file is gone or incomplete: its records stay in this spool (if the file turns up elsewhere and is imported, they are sent twice)",
			"file", m.File, "id", m.ID)
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("spool: open: %w", err)
		}
		return s.opts.syncDir(s.dir)
	}
	s.log.Warn("spool: finishing an interrupted export", "file", m.File, "id", m.ID)
	return s.completeExport(m.File, m.ID, m.MaxID)
}

// exportStep runs the test hook between export steps.
func (s *Spool) exportStep(step string) error {
	if s.exportHook != nil {
		return s.exportHook(step)
	}
	return nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
