package main

import (
	"log/slog"
	"runtime/debug"
)

// defaultMemoryLimit is the Go runtime's soft memory limit when the operator
// set none (GOMEMLIMIT). Without one the heap may grow to twice what is live
// before a collection (GOGC=100), and what a large backlog leaves behind
// stays: the embedded JetStream keeps the blocks a consumer read in caches
// that only a collection reclaims, so moving 1 GiB of 200 KB envelopes from
// the stream into the spool took the process to ~1 GB of RSS with ~100 MB
// live. With the limit the collector runs as the heap nears it and those
// caches go; when more than the limit is really live, the runtime lets the
// heap grow past it (the limit is soft) and bounds the collector's CPU.
const defaultMemoryLimit = 160 << 20

// applyMemoryLimit sets defaultMemoryLimit unless GOMEMLIMIT is set (the
// runtime read it at start; "off" disables the limit).
func applyMemoryLimit(log *slog.Logger, getenv func(string) string) {
	if getenv("GOMEMLIMIT") != "" {
		log.Debug("memory soft limit from GOMEMLIMIT", "bytes", debug.SetMemoryLimit(-1))
		return
	}
	debug.SetMemoryLimit(defaultMemoryLimit)
	log.Debug("memory soft limit", "bytes", int64(defaultMemoryLimit))
}
