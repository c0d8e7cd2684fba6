package app

import (
	"bytes"
	"compress/zlib"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/scrub"
)

// limits.max_replay_uncompressed_size bounds the replay recordings the
// relay decompresses to scrub them, with the relay-wide rules and with a
// project file's own rules alike: a recording larger than that once
// decompressed is an error for the scrub stage (buried, never forwarded
// unscrubbed), a smaller one is scrubbed.
func TestMaxReplayUncompressedSizeIsWired(t *testing.T) {
	const key = "a94ae32be2584e0bbd7a4cbb95971fee"
	dir := t.TempDir()
	yml := "relay:\n  mode: proxy\nlimits:\n  max_replay_uncompressed_size: 2KiB\n" +
		"scrub:\n  pii_config:\n    applications:\n      $string: [\"@email:replace\"]\n"
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "projects"), 0o700); err != nil {
		t.Fatal(err)
	}
	project := `{"projectId":42,"publicKeys":[{"publicKey":"` + key + `"}],"config":{"piiConfig":{"applications":{"$string":["@email:replace"]}}}}`
	if err := os.WriteFile(filepath.Join(dir, "projects", "42.json"), []byte(project), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadWithEnv(dir, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	relayWide, err := Scrubber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg, _, err := openProjects(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	own, err := reg.ScrubberFor(key)
	if err != nil || own == nil {
		t.Fatalf("the project's own scrubber: %v, %v", own, err)
	}
	for name, s := range map[string]*scrub.Scrubber{"relay-wide": relayWide, "project file": own} {
		if _, _, err := s.ScrubItem(scrub.Item{Type: "replay_recording"}, recording(t, 2048)); err != nil {
			t.Errorf("%s: a recording of 2 KiB: %v", name, err)
		}
		_, _, err := s.ScrubItem(scrub.Item{Type: "replay_recording"}, recording(t, 2049))
		if err == nil || !strings.Contains(err.Error(), "larger than 2048 bytes") {
			t.Errorf("%s: a recording over 2 KiB: err = %v", name, err)
		}
	}
}

// recording is a zlib-compressed replay_recording item of size bytes decompressed.
func recording(t *testing.T, size int) []byte {
	t.Helper()
	const head, tail = `[{"type":5,"data":{"payload":{"description":"`, `"}}}]`
	var b bytes.Buffer
	zw := zlib.NewWriter(&b)
	if _, err := zw.Write([]byte(head + strings.Repeat("x", size-len(head)-len(tail)) + tail)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return append([]byte("{\"segment_id\":0}\n"), b.Bytes()...)
}
