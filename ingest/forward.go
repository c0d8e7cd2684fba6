package ingest

// The forward fallback (protocol doc §1.12, Relay's endpoints/forward.rs):
// every /api/ path that is not one of ingest's own routes is proxied to the
// upstream, so that sentry-cli (releases, source maps, debug files) and other
// API clients pointed at the relay keep working. Its promises:
//
//   - nothing is stored: the request body streams to the upstream and the
//     answer streams back; the durability contract does not apply because
//     the client is answered with the upstream's own status, never with a
//     200 of ours;
//   - it cannot slow ingest: it has its own Transport (its own connection
//     pool to the upstream) and at most MaxConcurrent requests at once —
//     beyond that a 503, never a wait that holds a socket;
//   - bodies are bounded (Relay's max_api_payload_size and friends, 413),
//     counted as they stream, not buffered. Unlike Relay, a compressed body
//     is passed on as it came, Content-Encoding included (the upstream
//     decodes it), so the limit counts the bytes on the wire;
//   - upstream failure is the client's answer: 504 when the upstream did
//     not answer within Timeout, 502 when it could not be reached. Not
//     retried: the client (sentry-cli) retries if it wants to.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// ForwardConfig configures the forward fallback (EnableForward).
type ForwardConfig struct {
	// Upstream is where requests go: scheme and host; its path is ignored,
	// the request's own path and query are kept.
	Upstream *url.URL
	// Timeout bounds the wait for the upstream's response headers after the
	// request was sent (http.timeout); beyond it the client gets 504.
	Timeout time.Duration
	// ConnectTimeout bounds dialling the upstream (http.connection_timeout).
	ConnectTimeout time.Duration
	// MaxConcurrent bounds the forwarded requests in flight; the next one is
	// answered 503. Zero means DefaultForwardConcurrency.
	MaxConcurrent int
	// MaxPayload bounds a forwarded body (limits.max_api_payload_size);
	// MaxFileUpload the release-file and dSYM uploads
	// (limits.max_api_file_upload_size); MaxChunkUpload the chunk uploads
	// (limits.max_api_chunk_upload_size). Zero means Relay's default.
	MaxPayload, MaxFileUpload, MaxChunkUpload int64
	// TLS is the client TLS configuration for an https upstream (its
	// RootCAs carry http.ca_file); nil means the system roots.
	TLS *tls.Config
}

// Relay's defaults for the forward body limits.
const (
	DefaultForwardConcurrency = 32
	defaultMaxAPIPayload      = 20 << 20
	defaultMaxAPIFileUpload   = 40 << 20
	defaultMaxAPIChunkUpload  = 100 << 20
)

var (
	droppedForwardTooLarge    = metrics.NewCounter(`relay_ingest_rejected_total{reason="forward_too_large"}`)
	droppedForwardBusy        = metrics.NewCounter(`relay_ingest_rejected_total{reason="forward_busy"}`)
	droppedForwardTimeout     = metrics.NewCounter(`relay_ingest_rejected_total{reason="forward_upstream_timeout"}`)
	droppedForwardUnreachable = metrics.NewCounter(`relay_ingest_rejected_total{reason="forward_upstream_unreachable"}`)
)

type forwarder struct {
	proxy *httputil.ReverseProxy
	sem   chan struct{}
	cfg   ForwardConfig
}

// EnableForward turns the forward fallback on; call it before serving.
// Without it every unknown /api/ path is a 404.
func (s *Server) EnableForward(cfg ForwardConfig) error {
	if cfg.Upstream == nil || (cfg.Upstream.Scheme != "http" && cfg.Upstream.Scheme != "https") || cfg.Upstream.Host == "" {
		return fmt.Errorf("ingest: forward upstream %v must be an http(s) URL with a host", cfg.Upstream)
	}
	if cfg.Timeout <= 0 || cfg.ConnectTimeout <= 0 {
		return fmt.Errorf("ingest: forward timeouts %s, %s must be positive", cfg.Timeout, cfg.ConnectTimeout)
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultForwardConcurrency
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = defaultMaxAPIPayload
	}
	if cfg.MaxFileUpload <= 0 {
		cfg.MaxFileUpload = defaultMaxAPIFileUpload
	}
	if cfg.MaxChunkUpload <= 0 {
		cfg.MaxChunkUpload = defaultMaxAPIChunkUpload
	}
	target := &url.URL{Scheme: cfg.Upstream.Scheme, Host: cfg.Upstream.Host}
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       cfg.TLS.Clone(),
		TLSHandshakeTimeout:   cfg.ConnectTimeout,
		ResponseHeaderTimeout: cfg.Timeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   cfg.MaxConcurrent,
		IdleConnTimeout:       90 * time.Second,
	}
	f := &forwarder{sem: make(chan struct{}, cfg.MaxConcurrent), cfg: cfg}
	f.proxy = &httputil.ReverseProxy{
		// Rewrite (not Director): the proxy has already removed hop-by-hop
		// headers and every incoming Forwarded/X-Forwarded-* header, so
		// what goes out is only what is set here.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target) // also sets Host to the upstream's
			// ReverseProxy keeps "TE: trailers" for gRPC; Relay drops TE
			// like every other hop-by-hop header.
			pr.Out.Header.Del("Te")
			_, chain := peerAndChain(pr.In)
			pr.Out.Header.Set("X-Forwarded-For", chain)
		},
		Transport: tr,
		// Stream answers (chunk-upload progress, large downloads) as they come.
		FlushInterval: -1,
		ModifyResponse: func(res *http.Response) error {
			s.setCommon(res.Header)
			s.countRequest(routeForward, res.StatusCode)
			return nil
		},
		ErrorHandler: s.forwardError,
	}
	s.forward = f
	return nil
}

// forwardable reports whether path (slash-folded) goes to the forward
// fallback: any /api/ path but /api/ itself (Relay: a 404).
func forwardable(path string) bool {
	return len(path) > len("/api/") && path[:len("/api/")] == "/api/"
}

// bodyLimit is Relay's limit for a forwarded body by path: release file and
// dSYM uploads, chunk uploads, everything else.
func (f *forwarder) bodyLimit(p string) int64 {
	if ok, _ := path.Match("/api/0/projects/*/*/releases/*/files/", p); ok {
		return f.cfg.MaxFileUpload
	}
	if ok, _ := path.Match("/api/0/projects/*/*/files/dsyms/", p); ok {
		return f.cfg.MaxFileUpload
	}
	if ok, _ := path.Match("/api/0/organizations/*/chunk-upload/", p); ok {
		return f.cfg.MaxChunkUpload
	}
	return f.cfg.MaxPayload
}

func errForwardTooLarge(limit int64) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, detail: "request body too large",
		causes: []string{"the body exceeds " + strconv.FormatInt(limit, 10) + " bytes"}, dropped: droppedForwardTooLarge}
}

var (
	errForwardBusy = &apiError{status: http.StatusServiceUnavailable, detail: "upstream request failed",
		causes: []string{"too many forwarded requests in flight"}, dropped: droppedForwardBusy, retryAfter: true}
	errForwardTimeout = &apiError{status: http.StatusGatewayTimeout, detail: "upstream request failed",
		causes: []string{"the upstream did not answer in time"}, dropped: droppedForwardTimeout}
	errForwardUnreachable = &apiError{status: http.StatusBadGateway, detail: "upstream request failed",
		causes: []string{"could not send the request upstream"}, dropped: droppedForwardUnreachable}
)

// serveForward proxies one request. path is the slash-folded request path.
func (s *Server) serveForward(w http.ResponseWriter, r *http.Request, p string) {
	f := s.forward
	limit := f.bodyLimit(p)
	if r.ContentLength > limit {
		s.writeError(w, r, routeForward, errForwardTooLarge(limit))
		return
	}
	select {
	case f.sem <- struct{}{}:
		defer func() { <-f.sem }()
	default:
		s.writeError(w, r, routeForward, errForwardBusy)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		// A body without Content-Length (chunked) is counted as it
		// streams; past the limit the upstream request fails and the
		// client gets 413 (the upstream never saw a complete body).
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	f.proxy.ServeHTTP(w, r)
}

// forwardError answers a forwarded request that got no upstream answer.
func (s *Server) forwardError(w http.ResponseWriter, r *http.Request, err error) {
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.As(err, &tooLarge):
		s.writeError(w, r, routeForward, errForwardTooLarge(tooLarge.Limit))
		return
	case errors.Is(r.Context().Err(), context.Canceled):
		// The client went away; nobody reads the answer.
		s.log.Debug("ingest: forward: client gone", "path", r.URL.Path)
		s.countRequest(routeForward, 499)
		return
	case errors.As(err, &opErr) && opErr.Op == "dial":
		// A dial timeout is a connection failure too: 502, as in Relay.
		s.log.Warn("ingest: forward: upstream unreachable", "err", err)
		s.writeError(w, r, routeForward, errForwardUnreachable)
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		s.log.Warn("ingest: forward: upstream timed out", "err", err)
		s.writeError(w, r, routeForward, errForwardTimeout)
	default:
		s.log.Warn("ingest: forward: upstream request failed", "err", err)
		s.writeError(w, r, routeForward, errForwardUnreachable)
	}
}
