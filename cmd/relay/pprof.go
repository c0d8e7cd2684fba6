//go:build pprof

package main

// Built only with -tags pprof: serves net/http/pprof on RELAY_PPROF_ADDR
// (127.0.0.1 only) for profiling the running relay under load.

import (
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"strings"
)

func init() {
	addr := os.Getenv("RELAY_PPROF_ADDR")
	if addr == "" || !strings.HasPrefix(addr, "127.0.0.1:") {
		return
	}
	go func() {
		if err := http.ListenAndServe(addr, nil); err != nil {
			slog.Error("pprof listener", "err", err)
		}
	}()
}
