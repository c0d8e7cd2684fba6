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
// discards everything. Its level can be changed while it is in use (SetLevel): a SIGHUP
// reload applies a new logging.level to every logger derived from it.
func (l Logging) NewLogger(w io.Writer) *slog.Logger {
	lv := new(slog.LevelVar)
	lv.Set(l.level())
	opts := &slog.HandlerOptions{
		Level: lv,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.LevelKey && a.Value.Any() == LevelTrace {
				a.Value = slog.StringValue("TRACE")
			}
			return a
		},
	}
	var h slog.Handler
	if l.JSON() {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(levelHandler{h, lv})
}

// levelOff is above every level the relay logs at: "off".
const levelOff = slog.LevelError + 100

func (l Logging) level() slog.Level {
	if level, ok := l.SlogLevel(); ok {
		return level
	}
	return levelOff
}

// levelHandler carries the LevelVar of the handler it wraps, so that SetLevel can find it
// from the logger the relay was given.
type levelHandler struct {
	slog.Handler
	level *slog.LevelVar
}

func (h levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return levelHandler{h.Handler.WithAttrs(as), h.level}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{h.Handler.WithGroup(name), h.level}
}

// SetLevel sets the level of log, a logger from NewLogger (or derived from one with With or
// WithGroup), to l's, for every logger sharing its handler. It reports false for any other
// logger, whose level cannot change.
func SetLevel(log *slog.Logger, l Logging) bool {
	h, ok := log.Handler().(levelHandler)
	if !ok {
		return false
	}
	h.level.Set(l.level())
	return true
}
