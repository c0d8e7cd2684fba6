package project

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/scrub"
)

// Problems with project files, counted when a file's content is first seen
// (a broken file is not counted again every scan) or, for read errors, on
// every scan that hits them.
var (
	fileErrRead      = metrics.NewCounter(`relay_project_file_errors_total{reason="read"}`)
	fileErrParse     = metrics.NewCounter(`relay_project_file_errors_total{reason="parse"}`)
	fileErrScrub     = metrics.NewCounter(`relay_project_file_errors_total{reason="scrub_config"}`)
	fileErrNoID      = metrics.NewCounter(`relay_project_file_errors_total{reason="no_project_id"}`)
	fileErrNoKeys    = metrics.NewCounter(`relay_project_file_errors_total{reason="no_public_keys"}`)
	fileErrDuplicate = metrics.NewCounter(`relay_project_file_errors_total{reason="duplicate_key"}`)
	fileErrDir       = metrics.NewCounter(`relay_project_file_errors_total{reason="directory"}`)
	scans            = metrics.NewCounter(`relay_project_file_scans_total`)
)

// StaticSource reads Relay's static project files, <dir>/<project id>.json,
// into a Registry (protocol doc §6.2): symlinks are followed, names not
// ending in .json are skipped, a file without projectId takes its name's,
// each entry of publicKeys becomes its own key. A file that does not parse
// (or whose scrubbing rules do not compile) is logged with its error and its
// keys are refused as ProjectState — Relay's treatment of an unparsable
// config. A missing or empty directory is valid: no project is known.
//
// Scan and Run must not be called concurrently (Run calls Scan).
type StaticSource struct {
	dir      string
	reg      *Registry
	interval time.Duration
	log      *slog.Logger

	// ticks replaces the interval's ticker in tests.
	ticks <-chan time.Time
	// rescan asks Run for a scan now (Rescan); one pending request is enough.
	rescan chan struct{}

	files    map[string]*fileState        // by path: the last content read
	compiled map[[32]byte]*scrub.Scrubber // by scrubbing settings' content
	seen     map[string]struct{}          // paths of the last scan, to log removals
	dupes    map[string]struct{}          // duplicate keys already reported
}

// fileState is the outcome of reading one file's content.
type fileState struct {
	hash     [32]byte
	state    *State
	err      error    // the content is unusable
	keys     []string // an unusable file's keys, as far as they can be read
	id       uint64   // project id (state's, else name's); 0 unknown
	scrubber *scrub.Scrubber
}

// NewStaticSource returns a source that reads dir into reg every interval.
func NewStaticSource(dir string, reg *Registry, interval time.Duration, log *slog.Logger) *StaticSource {
	if log == nil {
		log = slog.Default()
	}
	return &StaticSource{
		dir:      dir,
		reg:      reg,
		interval: interval,
		log:      log,
		files:    make(map[string]*fileState),
		compiled: make(map[[32]byte]*scrub.Scrubber),
		seen:     make(map[string]struct{}),
		dupes:    make(map[string]struct{}),
		rescan:   make(chan struct{}, 1),
	}
}

// Rescan asks Run to read the directory now rather than at the next tick (a
// SIGHUP). It does not block; requests made while one is pending are one.
func (s *StaticSource) Rescan() {
	select {
	case s.rescan <- struct{}{}:
	default:
	}
}

// Run scans every interval, and at once after Rescan, until ctx ends. A scan that cannot read the
// directory keeps the projects already known (a transient error must not
// turn every key away) and is retried at the next tick.
func (s *StaticSource) Run(ctx context.Context) error {
	ticks := s.ticks
	if ticks == nil {
		if s.interval <= 0 {
			return fmt.Errorf("project files: re-read interval %s is not positive", s.interval)
		}
		t := time.NewTicker(s.interval)
		defer t.Stop()
		ticks = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticks:
		case <-s.rescan:
		}
		if err := s.Scan(); err != nil {
			s.log.Error("project files: scan failed, keeping the projects known so far", "dir", s.dir, "err", err)
		}
	}
}

// Scan reads the directory once and publishes the result to the registry.
func (s *StaticSource) Scan() error {
	scans.Inc()
	entries, err := os.ReadDir(s.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		fileErrDir.Inc()
		return fmt.Errorf("project files: read %s: %w", s.dir, err)
	}
	prev := s.reg.snap.Load()
	next := &snapshot{keys: make(map[string]*Entry), projects: make(map[uint64]*Entry)}
	files := make(map[string]*fileState, len(entries))
	seen := make(map[string]struct{}, len(entries))
	for _, de := range entries { // sorted by name: a key in two files goes to the first
		name := de.Name()
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		path := filepath.Join(s.dir, name)
		f, ok := s.readFile(path, name)
		if !ok {
			continue
		}
		files[path] = f
		seen[path] = struct{}{}
		s.publish(next, prev, path, f)
	}
	for path := range s.seen {
		if _, ok := seen[path]; !ok {
			s.log.Info("project file removed: its keys are no longer known", "file", path)
		}
	}
	s.files, s.seen = files, seen
	// Compiled scrubbers no file uses any more are dropped with the map.
	used := make(map[[32]byte]*scrub.Scrubber, len(s.compiled))
	for _, f := range files {
		if f.state != nil && f.scrubber != nil {
			used[scrubKey(f.state)] = f.scrubber
		}
	}
	s.compiled = used
	s.reg.replace(next)
	return nil
}

// readFile reads and parses one file, reusing the previous result when the
// content did not change. ok is false for a file to skip: gone (a dangling
// symlink), not a regular file, or without a project id. A file that cannot
// be read is unusable, like one that does not parse.
func (s *StaticSource) readFile(path, name string) (*fileState, bool) {
	fi, err := os.Stat(path) // follows symlinks
	if err != nil {
		fileErrRead.Inc()
		s.log.Warn("project file: skipped, cannot stat it", "file", path, "err", err)
		return nil, false
	}
	if !fi.Mode().IsRegular() {
		return nil, false
	}
	stemID, stemErr := strconv.ParseUint(strings.TrimSuffix(name, ".json"), 10, 64)
	b, err := readBounded(path)
	if err != nil {
		fileErrRead.Inc()
		s.log.Warn("project file: cannot read it; its keys are refused until it can be", "file", path, "err", err)
		f := &fileState{err: fmt.Errorf("read: %w", err)}
		if stemErr == nil {
			f.id = stemID
		}
		return f, true
	}
	h := sha256.Sum256(b)
	if old, ok := s.files[path]; ok && old.hash == h { // a read error's zero hash never matches
		return old, true
	}
	f := &fileState{hash: h}
	if stemErr == nil {
		f.id = stemID
	}
	st, err := Parse(b)
	if err != nil {
		fileErrParse.Inc()
		f.err, f.keys = err, looseKeys(b)
		s.log.Warn("project file: does not parse; its keys are refused until it is fixed", "file", path, "err", err)
		return f, true
	}
	if st.ProjectID == 0 {
		if stemErr != nil {
			fileErrNoID.Inc()
			s.log.Warn("project file: skipped, it has no projectId and its name is not a project id", "file", path)
			return nil, false
		}
		st.ProjectID = stemID
	}
	f.id, f.state = st.ProjectID, st
	if f.scrubber, err = s.compile(st); err != nil {
		fileErrScrub.Inc()
		f.err, f.state, f.keys = err, nil, keysOf(st)
		s.log.Warn("project file: its scrubbing settings do not compile; its keys are refused until it is fixed", "file", path, "err", err)
		return f, true
	}
	if len(st.PublicKeys) == 0 && !st.Disabled {
		fileErrNoKeys.Inc()
		s.log.Warn("project file: has no publicKeys, so no request can use it", "file", path)
	}
	s.log.Info("project file loaded", "file", path, "project_id", st.ProjectID, "keys", len(st.PublicKeys),
		"disabled", st.Disabled, "own_scrubbing", f.scrubber != nil)
	return f, true
}

// publish adds one file's keys to next.
func (s *StaticSource) publish(next, prev *snapshot, path string, f *fileState) {
	add := func(key string, e *Entry) {
		if other, dup := next.keys[key]; dup {
			if _, told := s.dupes[key+path]; !told {
				s.dupes[key+path] = struct{}{}
				fileErrDuplicate.Inc()
				if other.Source == path {
					s.log.Warn("project file: a key is listed twice; the first entry wins", "file", path, "project_id", e.ProjectID)
				} else {
					s.log.Warn("project file: a key is already used by another file; the first file (by name) wins",
						"file", path, "other_file", other.Source, "project_id", e.ProjectID)
				}
			}
			return
		}
		next.keys[key] = e
	}
	if f.err != nil {
		keys := f.keys
		if len(keys) == 0 { // unreadable keys: those this file had last time
			for k, e := range prev.keys {
				if e.Source == path {
					keys = append(keys, k)
				}
			}
		}
		for _, k := range keys {
			e := &Entry{ProjectID: f.id, Key: PublicKey{PublicKey: k}, Invalid: f.err, Source: path}
			if old, ok := prev.keys[k]; ok && old.Source == path {
				e.scrubber = old.scrubber
				e.wasValid = old.Invalid == nil || old.wasValid
			}
			add(k, e)
		}
		if f.id != 0 {
			next.projects[f.id] = &Entry{ProjectID: f.id, Invalid: f.err, Source: path}
		}
		return
	}
	for _, k := range f.state.PublicKeys {
		add(k.PublicKey, &Entry{ProjectID: f.id, Key: k, State: f.state, Source: path, scrubber: f.scrubber})
	}
	if f.state.Disabled {
		next.projects[f.id] = &Entry{ProjectID: f.id, State: f.state, Source: path}
	}
}

// compile returns the project's scrubber, nil when its config has no
// scrubbing settings. Identical settings (the same file re-read, or several
// projects sharing them) compile once.
func (s *StaticSource) compile(st *State) (*scrub.Scrubber, error) {
	c := &st.Config
	if c.PIIConfig == nil && c.DataScrubbingSettings == nil {
		return nil, nil
	}
	k := scrubKey(st)
	if sc, ok := s.compiled[k]; ok {
		return sc, nil
	}
	sc, err := compileScrubbing(st, s.reg.opts.MaxRecordingSize)
	if err != nil {
		return nil, err
	}
	s.compiled[k] = sc
	return sc, nil
}

// compileScrubbing compiles a config's piiConfig and datascrubbingSettings;
// the caller has checked that it has one of them. maxRecording is
// scrub.Config.MaxRecordingSize.
func compileScrubbing(st *State, maxRecording int64) (*scrub.Scrubber, error) {
	c := &st.Config
	cfg := scrub.Config{MaxRecordingSize: maxRecording}
	if c.DataScrubbingSettings != nil {
		ds, err := scrub.ParseDataScrubbing(c.DataScrubbingSettings)
		if err != nil {
			return nil, fmt.Errorf("config.datascrubbingSettings: %w", err)
		}
		cfg.DataScrubbing = ds
	}
	cfg.PIIConfig = c.PIIConfig
	sc, err := scrub.Compile(cfg)
	if err != nil {
		return nil, fmt.Errorf("config.piiConfig: %w", err)
	}
	return sc, nil
}

func scrubKey(st *State) [32]byte {
	h := sha256.New()
	h.Write(st.Config.PIIConfig)
	h.Write([]byte{0})
	h.Write(st.Config.DataScrubbingSettings)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func keysOf(st *State) []string {
	keys := make([]string, len(st.PublicKeys))
	for i, k := range st.PublicKeys {
		keys[i] = k.PublicKey
	}
	return keys
}

// readBounded reads a file of at most MaxStateSize bytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxStateSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxStateSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxStateSize)
	}
	return b, nil
}
