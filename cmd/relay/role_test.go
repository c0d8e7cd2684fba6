package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// --role sets ingest.enabled/worker.enabled and wins over the file and the
// environment; without it the keys decide. The banner names the role.
func TestRunRole(t *testing.T) {
	for _, tt := range []struct {
		name           string
		file           string
		args           []string
		ingest, worker bool
		role           string
	}{
		{"default", "", nil, true, true, "all"},
		{"keys decide without the flag", "worker:\n  enabled: false\n", nil, true, false, "ingest"},
		{"worker", "", []string{"--role", "worker"}, false, true, "worker"},
		{"ingest", "", []string{"--role", "ingest"}, true, false, "ingest"},
		{"flag beats the file", "ingest:\n  enabled: false\n", []string{"--role", "ingest"}, true, false, "ingest"},
		{"all beats the file", "ingest:\n  enabled: false\n", []string{"--role", "all"}, true, true, "all"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.file != "" {
				writeFile(t, filepath.Join(dir, "config.yml"), tt.file)
			}
			f := &fakeApp{}
			r := runWithApp(t, f, runOpts{}, append([]string{"-c", dir, "run", "--mode", "proxy"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if f.cfg.Ingest.Enabled != tt.ingest || f.cfg.Worker.Enabled != tt.worker {
				t.Fatalf("ingest.enabled=%v worker.enabled=%v, want %v %v", f.cfg.Ingest.Enabled, f.cfg.Worker.Enabled, tt.ingest, tt.worker)
			}
			if !strings.Contains(r.stderr, " role="+tt.role+" ") {
				t.Errorf("banner does not say role=%s:\n%s", tt.role, r.stderr)
			}
		})
	}
}

func TestRunRoleBad(t *testing.T) {
	f := &fakeApp{}
	r := runWithApp(t, f, runOpts{}, "-c", t.TempDir(), "run", "--mode", "proxy", "--role", "forwarder")
	oneErrorLine(t, r, 2, `--role: "forwarder" is not one of ingest, worker, all`)
	if f.cfg != nil {
		t.Fatal("the relay was started")
	}
}
