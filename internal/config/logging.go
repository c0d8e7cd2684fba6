package config

import (
	"io"
	"log/slog"
)

// LevelTrace is below slog.LevelDebug, for Relay's "trace" level.
const LevelTrace = slog.LevelDebug - 4

// SlogLevel maps logging.level to a slog level; ok is false for "off" (and unknown levels,
// which Validate rejects).
func (l Logging) SlogLevel() (level slog.Level, ok bool) {
	switch l.Level {
	case "trace":
		return LevelTrace, true
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return 0, false
}

// JSON reports whether the logs are JSON lines: format json. Every other format is slog's
// key=value text: pretty and simplified differ in Relay only by colours and layout, which a
// structured logger does not need; auto picks text either way.
func (l Logging) JSON() bool { return l.Format == "json" }

// NewLogger returns the relay's logger writing to w, per the logging section. Level "off"
// discards everything.
func (l Logging) NewLogger(w io.Writer) *slog.Logger {
	level, ok := l.SlogLevel()
	if !ok {
		return slog.New(slog.DiscardHandler)
	}
	opts := &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.LevelKey && a.Value.Any() == LevelTrace {
				a.Value = slog.StringValue("TRACE")
			}
			return a
		},
	}
	if l.JSON() {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
