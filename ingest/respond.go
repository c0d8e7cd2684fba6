package ingest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

// Every request the relay refuses is a drop, counted here by reason. The
// reason names are stable (dashboards and alerts use them).
var (
	droppedAuthMissing      = metrics.NewCounter(`relay_ingest_rejected_total{reason="auth_missing"}`)
	droppedAuthInvalid      = metrics.NewCounter(`relay_ingest_rejected_total{reason="auth_invalid"}`)
	droppedAuthMultiple     = metrics.NewCounter(`relay_ingest_rejected_total{reason="auth_multiple"}`)
	droppedAuthEnvelope     = metrics.NewCounter(`relay_ingest_rejected_total{reason="auth_envelope"}`)
	droppedPublicKey        = metrics.NewCounter(`relay_ingest_rejected_total{reason="bad_public_key"}`)
	droppedProtocolVersion  = metrics.NewCounter(`relay_ingest_rejected_total{reason="protocol_version"}`)
	droppedBadProject       = metrics.NewCounter(`relay_ingest_rejected_total{reason="bad_project"}`)
	droppedEmptyBody        = metrics.NewCounter(`relay_ingest_rejected_total{reason="empty_body"}`)
	droppedInvalidEnvelope  = metrics.NewCounter(`relay_ingest_rejected_total{reason="invalid_envelope"}`)
	droppedInvalidJSON      = metrics.NewCounter(`relay_ingest_rejected_total{reason="invalid_json"}`)
	droppedBodyTooLarge     = metrics.NewCounter(`relay_ingest_rejected_total{reason="body_too_large"}`)
	droppedItemTooLarge     = metrics.NewCounter(`relay_ingest_rejected_total{reason="item_too_large"}`)
	droppedCompression      = metrics.NewCounter(`relay_ingest_rejected_total{reason="invalid_compression"}`)
	droppedEncoding         = metrics.NewCounter(`relay_ingest_rejected_total{reason="unsupported_encoding"}`)
	droppedBodyRead         = metrics.NewCounter(`relay_ingest_rejected_total{reason="body_read_error"}`)
	droppedShuttingDown     = metrics.NewCounter(`relay_ingest_rejected_total{reason="shutting_down"}`)
	droppedStreamFull       = metrics.NewCounter(`relay_ingest_rejected_total{reason="stream_full"}`)
	droppedStreamDown       = metrics.NewCounter(`relay_ingest_rejected_total{reason="stream_unavailable"}`)
	droppedPublishTimeout   = metrics.NewCounter(`relay_ingest_rejected_total{reason="publish_timeout"}`)
	droppedPublishFailed    = metrics.NewCounter(`relay_ingest_rejected_total{reason="publish_failed"}`)
	droppedNotFound         = metrics.NewCounter(`relay_ingest_rejected_total{reason="not_found"}`)
	droppedMethodNotAllowed = metrics.NewCounter(`relay_ingest_rejected_total{reason="method_not_allowed"}`)
	droppedConcurrency      = metrics.NewCounter(`relay_ingest_rejected_total{reason="too_many_requests"}`)
	droppedMemoryBudget     = metrics.NewCounter(`relay_ingest_rejected_total{reason="memory_budget"}`)
)

// apiError is a refusal: the status, Relay's `detail` text, the causes (the
// error chain, in the body only) and the drop counter to bump.
type apiError struct {
	status     int
	detail     string
	causes     []string
	dropped    *metrics.Counter
	retryAfter bool     // 503: tell the SDK when to come back
	allow      []string // 405: the Allow header
}

// Fixed refusals (no per-request data) are shared values: no allocation.
var (
	errMissingAuth  = &apiError{status: http.StatusUnauthorized, detail: "missing authorization information", dropped: droppedAuthMissing}
	errMultipleAuth = &apiError{status: http.StatusUnauthorized, detail: "multiple authorization payloads detected", dropped: droppedAuthMultiple}
	errBadProject   = &apiError{status: http.StatusBadRequest, detail: "bad project path parameter", dropped: droppedBadProject}
	errEmptyBody    = &apiError{status: http.StatusBadRequest, detail: "empty request body", dropped: droppedEmptyBody}
	errShuttingDown = &apiError{status: http.StatusServiceUnavailable, detail: "failed to queue envelope",
		causes: []string{"relay is shutting down"}, dropped: droppedShuttingDown, retryAfter: true}
	errNotFound = &apiError{status: http.StatusNotFound, detail: "not found", dropped: droppedNotFound}
	// Overload (admission.go): Relay's answer when it cannot take more,
	// 503 "failed to queue envelope" with Retry-After.
	errTooManyRequests = &apiError{status: http.StatusServiceUnavailable, detail: "failed to queue envelope",
		causes: []string{"too many concurrent requests"}, dropped: droppedConcurrency, retryAfter: true}
	// errStreamFullHeld: the stream refused a publish as full within the
	// last fullHold; the request is refused before its body is read.
	errStreamFullHeld = &apiError{status: http.StatusServiceUnavailable, detail: "failed to queue envelope",
		causes: []string{"stream full"}, dropped: droppedStreamFull, retryAfter: true}
	errMemoryBudget = &apiError{status: http.StatusServiceUnavailable, detail: "failed to queue envelope",
		causes: []string{"too many request bytes in flight"}, dropped: droppedMemoryBudget, retryAfter: true}
	// errProjectMismatch: the envelope header's dsn names another project
	// than the request (Relay's EnvelopeError::HeaderMismatch("project id")).
	errProjectMismatch = &apiError{status: http.StatusBadRequest, detail: "invalid event envelope",
		causes: []string{"project id header mismatch between envelope and request"}, dropped: droppedInvalidEnvelope}
)

func errBadAuthHeader(cause error) *apiError {
	return &apiError{status: http.StatusUnauthorized, detail: "bad x-sentry-auth header",
		causes: []string{cause.Error()}, dropped: droppedAuthInvalid}
}

func errBadPublicKey(cause error) *apiError {
	return &apiError{status: http.StatusBadRequest, detail: "bad sentry DSN public key",
		causes: []string{cause.Error()}, dropped: droppedPublicKey}
}

func errBadEnvelopeAuth(cause string) *apiError {
	return &apiError{status: http.StatusUnauthorized, detail: "bad envelope authentication header",
		causes: []string{cause}, dropped: droppedAuthEnvelope}
}

func errProtocolVersion(v int) *apiError {
	return &apiError{status: http.StatusBadRequest,
		detail:  "unsupported protocol version (" + strconv.Itoa(v) + ")",
		dropped: droppedProtocolVersion}
}

func errInvalidEnvelope(causes []string) *apiError {
	return &apiError{status: http.StatusBadRequest, detail: "invalid event envelope",
		causes: causes, dropped: droppedInvalidEnvelope}
}

func errItemTooLarge(sizeErr error) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, detail: sizeErr.Error(), dropped: droppedItemTooLarge}
}

func errMethodNotAllowed(allow []string) *apiError {
	return &apiError{status: http.StatusMethodNotAllowed, detail: "method not allowed",
		dropped: droppedMethodNotAllowed, allow: allow}
}

// Response header values, shared by every response: net/http only reads them,
// and each slice is full (len == cap), so an Add anywhere copies instead of
// writing into the shared array. Assigning them to the header map directly
// avoids the per-request slice Header.Set would allocate.
var (
	hdrJSON           = []string{"application/json"}
	hdrGIF            = []string{"image/gif"}
	hdrCORP           = []string{"cross-origin"}
	hdrAnyOrigin      = []string{"*"}
	hdrAllowMethods   = []string{"POST"}
	hdrAllowHeaders   = []string{"x-sentry-auth, x-requested-with, x-forwarded-for, origin, referer, accept, content-type, authentication, authorization, content-encoding, transfer-encoding"}
	hdrExposeHeaders  = []string{"x-sentry-error, x-sentry-rate-limits, retry-after"}
	hdrMaxAge         = []string{"3600"}
	hdrVary           = []string{"origin, access-control-request-method, access-control-request-headers"}
	hdrAllowPost      = []string{"POST, OPTIONS"}
	hdrAllowGetPost   = []string{"GET, POST, OPTIONS"}
	hdrAllowGetHead   = []string{"GET, HEAD"}
	hdrContentLength0 = []string{"0"}
)

// Canonical header keys (assigned directly into the map).
const (
	keyContentType   = "Content-Type"
	keyServer        = "Server"
	keyCORP          = "Cross-Origin-Resource-Policy"
	keySentryError   = "X-Sentry-Error"
	keyRetryAfter    = "Retry-After"
	keyAllow         = "Allow"
	keyACAllowOrigin = "Access-Control-Allow-Origin"
	keyACExpose      = "Access-Control-Expose-Headers"
	keyACMethods     = "Access-Control-Allow-Methods"
	keyACHeaders     = "Access-Control-Allow-Headers"
	keyACMaxAge      = "Access-Control-Max-Age"
	keyVary          = "Vary"
	keyContentLength = "Content-Length"
)

// Fixed response bodies.
var (
	bodyEmptyObject = []byte(`{}`)
	bodyHealthy     = []byte(`{"is_healthy":true}`)
	bodyUnhealthy   = []byte(`{"is_healthy":false}`)
	// pixelGIF is the transparent 1×1 GIF the GET store endpoint answers with.
	pixelGIF = []byte("GIF89a\x01\x00\x01\x00\x00\xff\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x00;")
)

// setCommon sets the headers every response carries.
func (s *Server) setCommon(h http.Header) {
	h[keyServer] = s.serverHdr
	h[keyCORP] = hdrCORP
}

// setCORS sets the headers a browser needs to read an answer of a store-like
// route (Relay's CORS layer on those routes; allow-origin is always "*").
// Relay's layer sends them on every answer; only a browser's cross-origin
// request (which always carries Origin) can use them, so requests without
// Origin — every server-side SDK — are spared three header lines each way.
func setCORS(h http.Header, r *http.Request) {
	if len(r.Header["Origin"]) == 0 {
		return
	}
	h[keyACAllowOrigin] = hdrAnyOrigin
	h[keyACExpose] = hdrExposeHeaders
	h[keyVary] = hdrVary
}

// writePreflight answers a CORS preflight (any OPTIONS on a store-like route):
// 200 without a body.
func (s *Server) writePreflight(w http.ResponseWriter) {
	h := w.Header()
	s.setCommon(h)
	h[keyACAllowOrigin] = hdrAnyOrigin
	h[keyACMethods] = hdrAllowMethods
	h[keyACHeaders] = hdrAllowHeaders
	h[keyACMaxAge] = hdrMaxAge
	h[keyVary] = hdrVary
	h[keyContentLength] = hdrContentLength0
	w.WriteHeader(http.StatusOK)
}

// errorBody is Relay's ApiErrorResponse.
type errorBody struct {
	Detail string   `json:"detail"`
	Causes []string `json:"causes,omitempty"`
}

// writeError answers a refusal: JSON {"detail","causes"} plus X-Sentry-Error
// with the same detail text, and counts the drop. Errors are off the hot path,
// so encoding/json is fine here.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, rt route, e *apiError) {
	e.dropped.Inc()
	// Refusals are counted above; the log line is for debugging a client and
	// names the reason only (causes name the defect, never echo a payload).
	s.log.Debug("ingest: refused", "route", routeNames[rt], "status", e.status, "detail", e.detail, "causes", e.causes)
	h := w.Header()
	s.setCommon(h)
	if rt.storeLike() {
		setCORS(h, r)
	}
	h[keyContentType] = hdrJSON
	h[keySentryError] = []string{headerSafe(e.detail)}
	if e.retryAfter {
		h[keyRetryAfter] = s.retryAfterHdr
	}
	if e.allow != nil {
		h[keyAllow] = e.allow
	}
	body, err := json.Marshal(errorBody{Detail: e.detail, Causes: e.causes})
	if err != nil {
		// Marshalling two strings cannot fail; keep a valid body regardless.
		body = []byte(`{"detail":"internal error"}`)
	}
	w.WriteHeader(e.status)
	_, _ = w.Write(body) // a failed write means the client is gone; nothing to do
	s.countRequest(rt, e.status)
}

// headerSafe keeps a detail text usable as a header value: control characters
// (a cause quoting client input could carry them) become spaces.
func headerSafe(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// writeID answers 200 {"id":"<32 hex>"} or {} — by hand, into the request's
// scratch buffer: this is the hot path.
func (s *Server) writeID(w http.ResponseWriter, r *http.Request, rt route, st *reqState, id string) {
	h := w.Header()
	s.setCommon(h)
	setCORS(h, r)
	h[keyContentType] = hdrJSON
	w.WriteHeader(http.StatusOK)
	if id == "" {
		_, _ = w.Write(bodyEmptyObject)
	} else {
		b := append(st.resp[:0], `{"id":"`...)
		b = append(b, id...)
		b = append(b, `"}`...)
		_, _ = w.Write(b)
	}
	s.countRequest(rt, http.StatusOK)
}

// writePixel answers the GET store endpoint.
func (s *Server) writePixel(w http.ResponseWriter, r *http.Request, rt route) {
	h := w.Header()
	s.setCommon(h)
	setCORS(h, r)
	h[keyContentType] = hdrGIF
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(pixelGIF)
	s.countRequest(rt, http.StatusOK)
}

// writeHealth answers the health routes: {"is_healthy":bool}, 200 or 503.
func (s *Server) writeHealth(w http.ResponseWriter, rt route, healthy bool) {
	h := w.Header()
	s.setCommon(h)
	h[keyContentType] = hdrJSON
	if healthy {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(bodyHealthy)
		s.countRequest(rt, http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write(bodyUnhealthy)
	s.countRequest(rt, http.StatusServiceUnavailable)
}
