package project

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/relayhq/relay/internal/filter"
	"github.com/relayhq/relay/scrub"
)

// CheckDir reads the project files in dir by the rules StaticSource applies
// and returns every problem it finds, without touching a Registry: a file
// that does not parse or whose scrubbing rules do not compile (the relay
// would refuse its keys), filterSettings that do not compile (the relay
// would pass its envelopes unfiltered), scrubbing rules that are accepted
// but do nothing (scrub.Lint), a file it would skip (no project id,
// a dangling symlink), a project no request can use (no publicKeys), and a
// key two files claim. Each problem reads "<file>[:<line>]: <key>: <what>";
// the line is given where the JSON says where. files counts the *.json files
// looked at. A missing directory is valid and has no files.
func CheckDir(dir string) (problems []string, files int) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0
	}
	if err != nil {
		return []string{fmt.Sprintf("%s: cannot read the project directory: %v", dir, unwrapPathErr(err))}, 0
	}
	owner := make(map[string]string) // public key → the file that has it first
	for _, de := range entries {     // sorted by name, as Scan reads them
		name := de.Name()
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path) // follows symlinks
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: skipped by the relay, cannot stat it: %v", path, unwrapPathErr(err)))
			continue
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		files++
		st, ps := checkFile(path, name)
		problems = append(problems, ps...)
		if st == nil {
			continue
		}
		for i, k := range st.PublicKeys {
			if other, dup := owner[k.PublicKey]; dup {
				where := other
				if other == path {
					where = "earlier in this file"
				}
				problems = append(problems, fmt.Sprintf("%s: publicKeys[%d].publicKey: %q is already listed (%s); the first entry wins",
					atLine(path, lineOf(st.Raw, k.PublicKey)), i, k.PublicKey, where))
				continue
			}
			owner[k.PublicKey] = path
		}
	}
	return problems, files
}

// checkFile checks one project file; st is nil when it is not usable.
func checkFile(path, name string) (st *State, problems []string) {
	add := func(line int, format string, args ...any) {
		problems = append(problems, atLine(path, line)+": "+fmt.Sprintf(format, args...))
	}
	b, err := readBounded(path)
	if err != nil {
		add(0, "cannot read it: %v", unwrapPathErr(err))
		return nil, problems
	}
	st, err = Parse(b)
	if err != nil {
		add(jsonErrLine(b), "%s", strings.TrimPrefix(err.Error(), "project state: "))
		return nil, problems
	}
	if st.ProjectID == 0 {
		if _, err := strconv.ParseUint(strings.TrimSuffix(name, ".json"), 10, 64); err != nil {
			add(0, "projectId: missing, and the file name is not a project id: the relay skips this file")
			return nil, problems
		}
	}
	c := &st.Config
	if c.PIIConfig != nil || c.DataScrubbingSettings != nil {
		if _, err := compileScrubbing(st, 0); err != nil {
			key := "piiConfig"
			if strings.HasPrefix(err.Error(), "config.datascrubbingSettings") {
				key = "datascrubbingSettings"
			}
			add(lineOf(b, key), "%v (the relay refuses this project's keys)", err)
			st = nil
		} else if lints, err := scrub.Lint(c.PIIConfig); err == nil {
			for _, l := range lints {
				add(lineOf(b, "piiConfig"), "config.piiConfig: %s", l)
			}
		}
	}
	if c.FilterSettings != nil {
		if _, err := filter.Compile(c.FilterSettings); err != nil {
			add(lineOf(b, "filterSettings"), "config.filterSettings: %s (the relay forwards this project's events unfiltered)",
				strings.TrimPrefix(err.Error(), "filter: settings: "))
		}
	}
	if st != nil && len(st.PublicKeys) == 0 && !st.Disabled {
		add(0, "publicKeys: none, so no request can use this project")
	}
	return st, problems
}

// jsonErrLine is the line a JSON decoding error points at (0: unknown).
func jsonErrLine(b []byte) int {
	err := json.Unmarshal(b, new(State))
	var (
		se *json.SyntaxError
		te *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &se):
		return lineAt(b, se.Offset)
	case errors.As(err, &te):
		return lineAt(b, te.Offset)
	}
	return 0
}

// lineOf is the line of the first occurrence of "s" (quoted) in b; 0 if none.
func lineOf(b []byte, s string) int {
	q, _ := json.Marshal(s) // a string always marshals
	i := bytes.Index(b, q)
	if i < 0 {
		return 0
	}
	return lineAt(b, int64(i)+1)
}

// lineAt is the 1-based line of the byte before offset.
func lineAt(b []byte, offset int64) int {
	if offset > int64(len(b)) {
		offset = int64(len(b))
	}
	if offset > 0 {
		offset--
	}
	return bytes.Count(b[:offset], []byte{'\n'}) + 1
}

func atLine(path string, line int) string {
	if line > 0 {
		return path + ":" + strconv.Itoa(line)
	}
	return path
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
