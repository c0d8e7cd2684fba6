package telemetry

import (
	"bytes"
	"net/http"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

// Path is where the exposition is served.
const Path = "/metrics"

// contentType is the Prometheus text format, version 0.0.4.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

func init() {
	// HELP/TYPE lines: without them every VictoriaMetrics counter and gauge
	// is written as untyped, and a scraper (or the naming test) cannot tell
	// a counter that lacks _total from a gauge.
	metrics.ExposeMetadata(true)
}

// bufPool keeps scrape buffers: the exposition is some tens of kilobytes, and
// it is written whole so that a failed write cannot leave half a family.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Handler serves GET and HEAD with the whole exposition, any other method
// with 405. Mount it at Path on any listener.
func Handler() http.Handler { return http.HandlerFunc(serve) }

func serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() {
		buf.Reset()
		bufPool.Put(buf)
	}()
	metrics.WritePrometheus(buf, true)
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(buf.Bytes()) // the client went away; nothing to do
	}
}

// Mount returns a handler that serves Path itself and hands every other
// request to next unchanged, so next keeps its own routing (ingest folds
// slashes and counts by route; an http.ServeMux would redirect instead).
func Mount(next http.Handler) http.Handler {
	h := Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == Path {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
