package status

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"log/slog"
	"net/http"
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

// Paths the Handler serves.
const (
	PagePath = "/relay/status"
	JSONPath = "/relay/status.json"
)

var (
	//go:embed page.html
	pageHTML string
	//go:embed page.js
	pageJS string
	//go:embed page.css
	pageCSS string
)

// page is the rendered page and its Content-Security-Policy, built once:
// the script and styles are inline and allowed by their hashes, so the
// browser runs nothing else and fetches nothing but the JSON.
var page, pageCSP = func() ([]byte, string) {
	t := template.Must(template.New("page").Parse(pageHTML))
	var b bytes.Buffer
	if err := t.Execute(&b, struct {
		Script template.JS
		Style  template.CSS
	}{template.JS(pageJS), template.CSS(pageCSS)}); err != nil {
		panic("status: page template: " + err.Error())
	}
	hash := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
	}
	csp := strings.Join([]string{
		"default-src 'none'",
		"script-src " + hash(pageJS),
		"style-src " + hash(pageCSS),
		"connect-src 'self'",
		"img-src 'self' data:",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
	return b.Bytes(), csp
}()

// requestsRefused counts status requests refused, by reason (the routes
// answer GET and HEAD only).
var requestsRefused = metrics.NewCounter(`relay_status_requests_refused_total{reason="method_not_allowed"}`)

// Handler serves PagePath (and PagePath + "/") and JSONPath. It answers
// other paths with 404 so it can sit behind a prefix match; the app routes
// only these paths to it.
type Handler struct {
	c   *Collector
	log *slog.Logger
}

// NewHandler returns the handler of c's reports.
func NewHandler(c *Collector, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{c: c, log: log}
}

// Serves reports whether path is one of the handler's.
func Serves(path string) bool {
	return path == PagePath || path == PagePath+"/" || path == JSONPath
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !Serves(r.URL.Path) {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		requestsRefused.Inc()
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if r.URL.Path == JSONPath {
		b, err := json.Marshal(h.c.Collect(r.Context()))
		if err != nil { // only plain types: cannot happen, but never answer half a report
			h.log.Error("status: encoding the report", "err", err)
			http.Error(w, "encoding the report failed", http.StatusInternalServerError)
			return
		}
		hdr.Set("Content-Type", "application/json")
		_, _ = w.Write(append(b, '\n'))
		return
	}
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", pageCSP)
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(page)
}

// Mount returns a handler that serves the status paths with h and hands
// every other request to next unchanged (next keeps its own routing).
func Mount(h *Handler, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if Serves(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
