package scrub

import (
	"bytes"
	"compress/zlib"
	"strings"
	"testing"
)

// zlibRecording returns a replay_recording item whose rrweb array is exactly
// size bytes once decompressed.
func zlibRecording(t testing.TB, size int) []byte {
	t.Helper()
	const head, tail = `[{"type":5,"data":{"payload":{"description":"`, `"}}}]`
	body := head + strings.Repeat("x", size-len(head)-len(tail)) + tail
	var b bytes.Buffer
	zw := zlib.NewWriter(&b)
	if _, err := zw.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return append([]byte("{\"segment_id\":0}\n"), b.Bytes()...)
}

// Config.MaxRecordingSize bounds what a recording may decompress to: at the
// limit it is scrubbed, one byte over it is an error (never forwarded
// unscrubbed); 0 is the default.
func TestReplayRecordingLimit(t *testing.T) {
	pii := []byte(`{"applications":{"$string":["@email:replace"]}}`)
	s := mustCompile(t, Config{PIIConfig: pii, MaxRecordingSize: 4096})
	if _, _, err := s.ScrubItem(Item{Type: "replay_recording"}, zlibRecording(t, 4096)); err != nil {
		t.Fatalf("a recording at the limit: %v", err)
	}
	_, _, err := s.ScrubItem(Item{Type: "replay_recording"}, zlibRecording(t, 4097))
	if err == nil || !strings.Contains(err.Error(), "larger than 4096 bytes decompressed") {
		t.Fatalf("a recording one byte over the limit: err = %v", err)
	}
	if d := mustCompile(t, Config{PIIConfig: pii}); d.maxRecording != DefaultMaxRecordingSize {
		t.Fatalf("default limit %d, want %d", d.maxRecording, DefaultMaxRecordingSize)
	}
	if _, _, err := mustCompile(t, Config{PIIConfig: pii}).ScrubItem(Item{Type: "replay_recording"}, zlibRecording(t, 4097)); err != nil {
		t.Fatalf("the default limit refused a small recording: %v", err)
	}
}
