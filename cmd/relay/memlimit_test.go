package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
)

// relay run sets a soft memory limit unless the operator chose one with
// GOMEMLIMIT (cmd/relay-load/memory.sh measures what it does to RSS).
func TestApplyMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "GOMEMLIMIT" {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name, env string
		before    int64
		want      int64
	}{
		{"unset: the default", "", 1 << 40, defaultMemoryLimit},
		{"the operator's value stays", "1GiB", 1 << 30, 1 << 30},
		{"off stays off", "off", 1<<63 - 1, 1<<63 - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(tc.before) // what the runtime read from GOMEMLIMIT at start
			applyMemoryLimit(log, env(tc.env))
			if got := debug.SetMemoryLimit(-1); got != tc.want {
				t.Errorf("memory limit %d, want %d", got, tc.want)
			}
		})
	}
}
