package config

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	tests := []struct {
		level, format string
		enabled       []slog.Level
		disabled      []slog.Level
	}{
		{"info", "auto", []slog.Level{slog.LevelInfo, slog.LevelError}, []slog.Level{slog.LevelDebug}},
		{"error", "json", []slog.Level{slog.LevelError}, []slog.Level{slog.LevelWarn}},
		{"trace", "pretty", []slog.Level{LevelTrace, slog.LevelDebug}, nil},
		{"debug", "simplified", []slog.Level{slog.LevelDebug}, []slog.Level{LevelTrace}},
		{"off", "json", nil, []slog.Level{slog.LevelError, slog.LevelInfo}},
	}
	for _, tt := range tests {
		t.Run(tt.level+"/"+tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			log := Logging{Level: tt.level, Format: tt.format}.NewLogger(&buf)
			for _, l := range tt.enabled {
				if !log.Enabled(context.Background(), l) {
					t.Errorf("level %v disabled", l)
				}
			}
			for _, l := range tt.disabled {
				if log.Enabled(context.Background(), l) {
					t.Errorf("level %v enabled", l)
				}
			}
		})
	}

	var buf bytes.Buffer
	Logging{Level: "trace", Format: "json"}.NewLogger(&buf).Log(context.Background(), LevelTrace, "hello", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("json output %q: %v", buf.String(), err)
	}
	if rec["level"] != "TRACE" || rec["msg"] != "hello" || rec["k"] != float64(1) {
		t.Fatalf("record = %v", rec)
	}

	buf.Reset()
	Logging{Level: "info", Format: "auto"}.NewLogger(&buf).Info("hello", "k", 1)
	if !strings.Contains(buf.String(), "level=INFO msg=hello k=1") {
		t.Fatalf("text output = %q", buf.String())
	}
}
