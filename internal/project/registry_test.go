package project

import (
	"strings"
	"testing"

	"github.com/relayhq/relay/scrub"
)

const (
	keyA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	keyB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	keyC = "cccccccccccccccccccccccccccccccc"
	keyX = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" // in no file
)

// regWith returns a registry holding the given files (name → content), read
// by a static source.
func regWith(t *testing.T, opts Options, files map[string]string) *Registry {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		writeFile(t, dir, name, content)
	}
	reg := NewRegistry(opts)
	if err := NewStaticSource(dir, reg, 0, discardLog()).Scan(); err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestAdmit(t *testing.T) {
	files := map[string]string{
		"42.json": `{"publicKeys":[{"publicKey":"` + keyA + `"},{"publicKey":"` + keyB + `","isEnabled":false}],"config":{"allowedDomains":["example.com"]}}`,
		"43.json": `{"disabled":true,"publicKeys":[{"publicKey":"` + keyC + `"}]}`,
		"44.json": `{"disabled":true}`,
		"45.json": `{"projectId":"broken"}`,
	}
	tests := []struct {
		name       string
		opts       Options
		key        string
		project    uint64
		hasProject bool
		origin     string
		want       string
		wantID     uint64
	}{
		{"known key, its project", Options{}, keyA, 42, true, "", "", 42},
		{"known key, allowed origin", Options{}, keyA, 42, true, "https://example.com", "", 42},
		{"known key, origin outside allowedDomains", Options{}, keyA, 42, true, "https://evil.net", ReasonCors, 42},
		{"known key, another project", Options{}, keyA, 7, true, "", ReasonProjectID, 42},
		{"known key, another project, override_project_ids", Options{OverrideProjectIDs: true}, keyA, 7, true, "", "", 42},
		{"known key, no project stated (legacy store)", Options{}, keyA, 0, false, "", "", 42},
		{"disabled key", Options{}, keyB, 42, true, "", ReasonProjectID, 42},
		{"disabled project", Options{}, keyC, 43, true, "", ReasonProjectID, 43},
		{"unknown key, static", Options{Static: true}, keyX, 42, true, "", ReasonProjectID, 0},
		{"unknown key, proxy", Options{}, keyX, 42, true, "https://evil.net", "", 0},
		{"unknown key, proxy, project disabled by a keyless file", Options{}, keyX, 44, true, "", ReasonProjectID, 0},
		{"unknown key, proxy, project file broken", Options{}, keyX, 45, true, "", ReasonProjectState, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := regWith(t, tt.opts, files)
			got, id := reg.Admit(tt.key, tt.project, tt.hasProject, tt.origin)
			if got != tt.want || id != tt.wantID {
				t.Errorf("Admit = %q, %d; want %q, %d", got, id, tt.want, tt.wantID)
			}
		})
	}
}

func TestLookupStatus(t *testing.T) {
	files := map[string]string{"42.json": `{"publicKeys":[{"publicKey":"` + keyA + `"}]}`}
	for _, tt := range []struct {
		static bool
		key    string
		want   Status
	}{
		{false, keyA, Known}, {true, keyA, Known},
		{false, keyX, Pending}, {true, keyX, Missing},
	} {
		st, e := regWith(t, Options{Static: tt.static}, files).Lookup(tt.key)
		if st != tt.want || (st == Known) != (e != nil) {
			t.Errorf("static=%v Lookup(%s) = %v, %v; want %v", tt.static, tt.key, st, e, tt.want)
		}
	}
}

func TestScrubberFor(t *testing.T) {
	files := map[string]string{
		"1.json": `{"publicKeys":[{"publicKey":"` + keyA + `"}],"config":{"piiConfig":{"applications":{"$string":["@email:mask"]}}}}`,
		"2.json": `{"publicKeys":[{"publicKey":"` + keyB + `"}],"config":{}}`,
		"3.json": `{"publicKeys":[{"publicKey":"` + keyC + `"}],"config":{"piiConfig":{"applications":{"$string":"@email:mask"}}}}`,
	}
	reg := regWith(t, Options{}, files)

	own, err := reg.ScrubberFor(keyA)
	if err != nil || own == nil {
		t.Fatalf("key with piiConfig: %p, %v; want its own scrubber", own, err)
	}
	if s, err := reg.ScrubberFor(keyB); err != nil || s != nil {
		t.Errorf("key without scrubbing settings: %p, %v; want nil (relay-wide)", s, err)
	}
	if s, err := reg.ScrubberFor(keyX); err != nil || s != nil {
		t.Errorf("unknown key: %p, %v; want nil (relay-wide)", s, err)
	}
	// A piiConfig that does not compile makes the project invalid: refused at
	// ingest, and no scrubber to forward with.
	if s, err := reg.ScrubberFor(keyC); err == nil {
		t.Errorf("key whose piiConfig does not compile: %p, nil error", s)
	}
	if r, _ := reg.Admit(keyC, 3, true, ""); r != ReasonProjectState {
		t.Errorf("Admit(key with bad piiConfig) = %q, want %q", r, ReasonProjectState)
	}

	out, changed, err := own.ScrubItem(scrub.Item{Type: "event"}, []byte(`{"message":"mail me at jane@example.com"}`))
	if err != nil || !changed || strings.Contains(string(out), "jane@example.com") {
		t.Fatalf("project scrubber did not scrub: %s %v %v", out, changed, err)
	}
}

func TestScrubberForErrorNamesTheFile(t *testing.T) {
	reg := regWith(t, Options{}, map[string]string{"9.json": `{"publicKeys":[{"publicKey":"` + keyA + `"}],"config":{"datascrubbingSettings":{"scrubData":"yes"}}}`})
	_, err := reg.ScrubberFor(keyA)
	if err == nil {
		t.Fatal("no error for a key with bad datascrubbingSettings")
	}
	if !contains(err.Error(), "9.json") || !contains(err.Error(), "datascrubbingSettings") {
		t.Errorf("error = %v; want it to name the file and the setting", err)
	}
}
