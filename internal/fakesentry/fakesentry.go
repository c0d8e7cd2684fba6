// Package fakesentry is an in-process fake Sentry upstream for tests, like
// Relay's mini_sentry: a real HTTP server on 127.0.0.1 that speaks the
// envelope protocol, records what it accepted, and can be told to fail in
// the ways a real upstream fails (refused connections, 5xx, 429 with rate
// limits, 4xx rejections, slow answers).
//
// It does not import the relay's own envelope code: its parser is a second,
// independent reading of the protocol, so a bug there cannot hide itself.
package fakesentry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// Options configure a Server. The zero value is a plain Sentry.
type Options struct {
	// PathPrefix serves every route under it ("/sentry" →
	// /sentry/api/{project_id}/envelope/), to test upstream URLs with a path.
	PathPrefix string
	// RequireEncoding, when set, makes envelope requests with any other
	// Content-Encoding fail with 400 (mini_sentry asserts that the relay
	// compresses). "identity" requires no Content-Encoding header at all.
	RequireEncoding string
	// MaxBodySize bounds the decoded body; larger gets 413. 0 = 200 MiB,
	// Relay's max_envelope_size.
	MaxBodySize int64
	// Logger receives one debug line per request (never payloads).
	// nil = discard.
	Logger *slog.Logger
	// Listen is the address to listen on; "" = 127.0.0.1 on a free port.
	// Tests leave it empty; the demo binary (cmd/fakesentry) serves other
	// containers.
	Listen string
	// KeepLast > 0 keeps only the newest KeepLast accepted envelopes and
	// requests, so a fake that runs for days holds bounded memory; Count
	// still counts every one. 0 keeps everything (tests read it all).
	KeepLast int
	// DropPayloads keeps of each accepted envelope everything but its
	// bytes (Received.Body and the items' payloads are nil), so a test that
	// sends a large backlog measures the relay's memory, not the fake's.
	DropPayloads bool
}

// Received is one envelope the fake accepted (answered 2xx).
type Received struct {
	At        time.Time
	ProjectID uint64
	PublicKey string            // sentry_key of X-Sentry-Auth
	Auth      map[string]string // every key=value of X-Sentry-Auth
	Header    http.Header       // request headers as received
	Encoding  string            // Content-Encoding as sent, "" when none
	WireSize  int               // body bytes on the wire
	Body      []byte            // decoded body, the envelope
	// EventID is the envelope header's event_id, normalised to 32
	// lowercase hex as Sentry stores it; "" when absent.
	EventID        string
	EnvelopeHeader json.RawMessage
	Items          []Item
}

// Request is one request of any kind, with the status it got: the log to
// check timing (nothing sent before Retry-After elapsed) and failures.
type Request struct {
	At      time.Time
	Method  string
	Path    string
	Status  int
	EventID string // when the envelope got far enough to be parsed
}

// Mode is the programmed answer to envelope requests. The zero value is
// normal operation.
type Mode struct {
	// Status: 0 or 2xx = accept normally; 5xx = fail (the live probe fails
	// too, as behind a load balancer with no healthy backend); 429 = rate
	// limited; any other code = rejected with it.
	Status int
	// Count is how many envelope requests get this answer before the fake
	// goes back to normal; 0 = until the next SetMode. Probes do not count.
	Count int
	// RetryAfter and RateLimits are sent as Retry-After and
	// X-Sentry-Rate-Limits when not empty (any status).
	RetryAfter string
	RateLimits string
	// Detail is the error body's detail; a Sentry-like text when empty.
	Detail string
}

// Normal is the mode of a healthy Sentry.
func Normal() Mode { return Mode{} }

// Failing answers status (a 5xx) to the next n envelope requests (0 = until
// changed), and to probes meanwhile.
func Failing(status, n int) Mode { return Mode{Status: status, Count: n} }

// RateLimited answers 429 with the given Retry-After and
// X-Sentry-Rate-Limits ("" = header not sent) to the next n envelope
// requests (0 = until changed).
func RateLimited(retryAfter, rateLimits string, n int) Mode {
	return Mode{Status: http.StatusTooManyRequests, Count: n, RetryAfter: retryAfter, RateLimits: rateLimits}
}

// Rejecting answers status (a 4xx) with detail to the next n envelope
// requests (0 = until changed).
func Rejecting(status int, detail string, n int) Mode {
	return Mode{Status: status, Count: n, Detail: detail}
}

// Server is the fake. All methods are safe for concurrent use.
type Server struct {
	opts    Options
	log     *slog.Logger
	handler http.Handler
	quit    chan struct{} // closed by Close: wakes delayed answers

	mu        sync.Mutex
	addr      string // 127.0.0.1:port, fixed for the Server's life
	srv       *http.Server
	serveDone chan struct{}
	down      bool
	closed    bool
	inflight  sync.WaitGroup // handlers running; Add only under mu while !closed
	running   int            // handlers running, for InFlight
	peak      int            // the most handlers running at once, for PeakInFlight
	mode      Mode
	left      int // envelope answers left in mode when mode.Count > 0
	delay     time.Duration
	delaySet  chan struct{} // closed and replaced by SetDelay: wakes waiting answers
	received  []Received
	accepted  int // envelopes accepted since New or Reset, including those KeepLast let go
	requests  []Request
	changed   chan struct{} // closed and replaced when received grows
	relay     *relayState   // registration endpoints (relays.go); nil until used

	projects      map[string]*projectState // project configs by public key (projectconfigs.go)
	configQueries []ProjectConfigQuery
}

// New starts a fake Sentry on 127.0.0.1 on a free port. Like
// httptest.NewServer it panics if it cannot listen: it is test
// infrastructure, and a test cannot go on without it.
func New(opts Options) *Server {
	if opts.MaxBodySize <= 0 {
		opts.MaxBodySize = 200 << 20
	}
	opts.PathPrefix = strings.TrimRight(opts.PathPrefix, "/")
	if opts.PathPrefix != "" && !strings.HasPrefix(opts.PathPrefix, "/") {
		opts.PathPrefix = "/" + opts.PathPrefix
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: opts.Logger, quit: make(chan struct{}), changed: make(chan struct{}), delaySet: make(chan struct{})}
	s.handler = http.HandlerFunc(s.serveHTTP)
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		panic(fmt.Sprintf("fakesentry: listen on %s: %v", listen, err))
	}
	s.addr = ln.Addr().String()
	s.startLocked(ln)
	return s
}

// startLocked serves on ln; s.mu is held or s is not shared yet.
func (s *Server) startLocked(ln net.Listener) {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	s.srv, s.serveDone, s.down = srv, done, false
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("fakesentry: serve", "err", err)
		}
	}()
}

// URL is the base URL to use as the relay's upstream, without a trailing
// slash, including PathPrefix: "http://127.0.0.1:PORT[/prefix]". It stays
// the same across Down and Up.
func (s *Server) URL() string { return "http://" + s.addr + s.opts.PathPrefix }

// Addr is the listening address, host:port.
func (s *Server) Addr() string { return s.addr }

// Down closes the listener and every open connection: new connections are
// refused, requests in flight fail. Received data is kept. No-op when down.
func (s *Server) Down() {
	s.mu.Lock()
	if s.down || s.closed {
		s.mu.Unlock()
		return
	}
	srv, done := s.srv, s.serveDone
	s.down = true
	s.mu.Unlock()
	_ = srv.Close()
	<-done
}

// Up listens again on the same port after Down. Binding can fail if
// another process took the port meanwhile; Up retries for a few seconds.
func (s *Server) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("fakesentry: Up after Close")
	}
	if !s.down {
		return nil
	}
	var ln net.Listener
	var err error
	for range 100 {
		if ln, err = net.Listen("tcp", s.addr); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("fakesentry: listen again on %s: %w", s.addr, err)
	}
	s.startLocked(ln)
	return nil
}

// IsDown reports whether the server is refusing connections.
func (s *Server) IsDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down || s.closed
}

// Close stops the server for good and waits for its handlers to return.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.quit)
	srv, done, wasDown := s.srv, s.serveDone, s.down
	s.down = true
	s.mu.Unlock()
	if !wasDown {
		_ = srv.Close()
		<-done
	}
	s.inflight.Wait()
}

// SetMode programs the answer to the following envelope requests.
func (s *Server) SetMode(m Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode, s.left = m, m.Count
}

// Mode returns the mode in force and, when it has a Count, how many answers
// it has left.
func (s *Server) Mode() (Mode, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode, s.left
}

// SetDelay delays every answer (probes included) by d, counted from when
// the request body has been read. It applies to answers already waiting:
// SetDelay(0) releases every held request at once.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
	close(s.delaySet)
	s.delaySet = make(chan struct{})
}

// InFlight is the number of requests being handled right now (read,
// delayed, or being answered): how many the upstream is holding.
func (s *Server) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// PeakInFlight is the most requests the upstream held at once since New:
// how many senders the client ran side by side, whatever their timing.
func (s *Server) PeakInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// Received returns a copy of the list of accepted envelopes, in the order
// they were accepted. The byte slices are shared and must not be modified.
func (s *Server) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.received)
}

// Count is how many envelopes were accepted since New or Reset:
// len(Received()) without the copy, unless Options.KeepLast let older
// records go.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// keepLast drops the oldest entries beyond n (n <= 0: keep all). It copies
// the kept tail down so the backing array does not grow without end.
func keepLast[T any](list []T, n int) []T {
	if n <= 0 || len(list) <= n {
		return list
	}
	kept := copy(list, list[len(list)-n:])
	clear(list[kept:])
	return list[:kept]
}

// Requests returns the log of every request, accepted or not.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// EventIDs counts the accepted envelopes per event id (envelopes without
// one are not counted): the set of ids that arrived, and a count above 1
// for each duplicate.
func (s *Server) EventIDs() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make(map[string]int, len(s.received))
	for _, r := range s.received {
		if r.EventID != "" {
			ids[r.EventID]++
		}
	}
	return ids
}

// Reset forgets what was received and the request log; mode and delay stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received, s.requests, s.accepted = nil, nil, 0
}

// WaitFor blocks until at least n envelopes have been accepted (Count) and
// returns those it keeps, or returns an error saying how many arrived when
// ctx ends.
func (s *Server) WaitFor(ctx context.Context, n int) ([]Received, error) {
	for {
		s.mu.Lock()
		if s.accepted >= n {
			out := slices.Clone(s.received)
			s.mu.Unlock()
			return out, nil
		}
		got, ch := s.accepted, s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("fakesentry: %d of %d envelopes received: %w", got, n, ctx.Err())
		}
	}
}

const (
	detailRateLimited = "Sentry dropped data due to a quota or internal rate limit being reached. This will not affect your application. See https://docs.sentry.io/product/accounts/quotas/ for more information."
	detailFailed      = "internal server error"
	detailRejected    = "invalid event envelope"
)

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	s.inflight.Add(1)
	s.running++
	s.peak = max(s.peak, s.running)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running--
		s.mu.Unlock()
		s.inflight.Done()
	}()

	path := r.URL.Path
	rest, ok := strings.CutPrefix(path, s.opts.PathPrefix+"/api/")
	switch {
	case ok && rest == "0/relays/live/":
		s.serveLive(w, r)
	case ok && rest == "0/relays/projectconfigs/":
		s.serveProjectConfigs(w, r)
	case ok && strings.HasPrefix(rest, "0/relays/register/"):
		s.serveRegister(w, r, strings.TrimPrefix(rest, "0/relays/register/"))
	case ok && strings.HasSuffix(rest, "/envelope/") && strings.Count(rest, "/") == 2:
		s.serveEnvelope(w, r, strings.TrimSuffix(rest, "/envelope/"))
	default:
		s.answer(w, r, http.StatusNotFound, "not found", nil, "")
	}
}

func (s *Server) serveLive(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.answer(w, r, http.StatusMethodNotAllowed, "method not allowed", nil, "")
		return
	}
	s.mu.Lock()
	m := s.mode
	s.mu.Unlock()
	if m.Status >= 500 {
		s.answer(w, r, m.Status, orDefault(m.Detail, detailFailed), modeHeaders(m), "")
		return
	}
	s.answerJSON(w, r, http.StatusOK, `{"is_healthy":true}`, nil, "")
}

func (s *Server) serveEnvelope(w http.ResponseWriter, r *http.Request, projectPart string) {
	if r.Method != http.MethodPost {
		s.answer(w, r, http.StatusMethodNotAllowed, "method not allowed", nil, "")
		return
	}
	// A failing upstream (load balancer, crashed web workers) answers
	// before looking at the request.
	if m, ok := s.takeMode(func(m Mode) bool { return m.Status >= 500 }); ok {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, s.opts.MaxBodySize))
		s.answer(w, r, m.Status, orDefault(m.Detail, detailFailed), modeHeaders(m), "")
		return
	}

	projectID, err := strconv.ParseUint(projectPart, 10, 64)
	if err != nil || projectID == 0 {
		s.answer(w, r, http.StatusBadRequest, "bad project path parameter", nil, "")
		return
	}
	auth, status, detail := parseAuth(r.Header)
	if status != 0 {
		s.answer(w, r, status, detail, nil, "")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-sentry-envelope" {
		s.answer(w, r, http.StatusBadRequest, fmt.Sprintf("fakesentry: Content-Type must be application/x-sentry-envelope, got %q", r.Header.Get("Content-Type")), nil, "")
		return
	}
	enc := strings.TrimSpace(r.Header.Get("Content-Encoding"))
	if want := s.opts.RequireEncoding; want != "" && enc != want && !(want == "identity" && enc == "") {
		s.answer(w, r, http.StatusBadRequest, fmt.Sprintf("fakesentry: Content-Encoding must be %q, got %q", want, enc), nil, "")
		return
	}
	wire, err := io.ReadAll(io.LimitReader(r.Body, s.opts.MaxBodySize+1))
	if err != nil {
		s.answer(w, r, http.StatusBadRequest, "failed to read request body: "+err.Error(), nil, "")
		return
	}
	if int64(len(wire)) > s.opts.MaxBodySize {
		s.answer(w, r, http.StatusRequestEntityTooLarge, "request body too large", nil, "")
		return
	}
	body, status, detail := decodeBody(enc, wire, s.opts.MaxBodySize)
	if status != 0 {
		s.answer(w, r, status, detail, nil, "")
		return
	}
	if len(body) == 0 {
		s.answer(w, r, http.StatusBadRequest, "empty request body", nil, "")
		return
	}
	env, err := parseEnvelope(body)
	if err != nil {
		s.answer(w, r, http.StatusBadRequest, detailRejected+": "+err.Error(), nil, "")
		return
	}

	if m, ok := s.takeMode(func(m Mode) bool { return m.Status >= 300 }); ok {
		if m.Status == http.StatusTooManyRequests {
			s.answer(w, r, m.Status, orDefault(m.Detail, detailRateLimited), modeHeaders(m), env.eventID)
		} else {
			s.answer(w, r, m.Status, orDefault(m.Detail, detailRejected), modeHeaders(m), env.eventID)
		}
		return
	}

	if !s.wait(r) {
		s.logRequest(r, 0, env.eventID) // the client went away: not accepted
		return
	}
	s.noteEnvelopeSignature(r.Header)
	rec := Received{
		At:             time.Now(),
		ProjectID:      projectID,
		PublicKey:      auth["sentry_key"],
		Auth:           auth,
		Header:         r.Header.Clone(),
		Encoding:       enc,
		WireSize:       len(wire),
		Body:           body,
		EventID:        env.eventID,
		EnvelopeHeader: env.header,
		Items:          env.items,
	}
	if s.opts.DropPayloads {
		rec.Body = nil
		rec.Items = slices.Clone(rec.Items)
		for i := range rec.Items {
			rec.Items[i].Payload = nil
			rec.Items[i].Header = slices.Clone(rec.Items[i].Header)
		}
		rec.EnvelopeHeader = slices.Clone(rec.EnvelopeHeader)
	}
	s.mu.Lock()
	s.received = keepLast(append(s.received, rec), s.opts.KeepLast)
	s.accepted++
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	resp := `{}`
	if env.eventID != "" {
		resp = `{"id":"` + env.eventID + `"}`
	}
	s.writeJSON(w, r, http.StatusOK, resp, nil, env.eventID)
}

// takeMode returns the mode if it applies (applies(mode) and it has answers
// left), consuming one answer.
func (s *Server) takeMode(applies func(Mode) bool) (Mode, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mode
	if m.Status == 0 || (m.Status >= 200 && m.Status < 300) || !applies(m) {
		return Mode{}, false
	}
	if m.Count > 0 {
		s.left--
		if s.left <= 0 {
			s.mode, s.left = Mode{}, 0
		}
	}
	return m, true
}

func modeHeaders(m Mode) http.Header {
	h := http.Header{}
	if m.RetryAfter != "" {
		h.Set("Retry-After", m.RetryAfter)
	}
	if m.RateLimits != "" {
		h.Set("X-Sentry-Rate-Limits", m.RateLimits)
	}
	return h
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// wait applies the programmed delay; false if the request or the server
// ended meanwhile.
func (s *Server) wait(r *http.Request) bool {
	start := time.Now()
	for {
		s.mu.Lock()
		d, changed := s.delay, s.delaySet
		s.mu.Unlock()
		left := time.Until(start.Add(d))
		if left <= 0 {
			return r.Context().Err() == nil
		}
		t := time.NewTimer(left)
		select {
		case <-t.C:
			return r.Context().Err() == nil
		case <-changed:
			t.Stop() // the delay changed: measure again from start
		case <-r.Context().Done():
			t.Stop()
			return false
		case <-s.quit:
			t.Stop()
			return false
		}
	}
}

// answer sends Sentry's error body {"detail": ...} after the delay.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, status int, detail string, h http.Header, eventID string) {
	b, _ := json.Marshal(map[string]string{"detail": detail})
	s.answerJSON(w, r, status, string(b), h, eventID)
}

func (s *Server) answerJSON(w http.ResponseWriter, r *http.Request, status int, body string, h http.Header, eventID string) {
	if !s.wait(r) {
		s.logRequest(r, 0, eventID)
		return
	}
	s.writeJSON(w, r, status, body, h, eventID)
}

func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, body string, h http.Header, eventID string) {
	maps.Copy(w.Header(), h)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
	s.logRequest(r, status, eventID)
}

// logRequest appends to the request log; status 0 = no answer was given.
func (s *Server) logRequest(r *http.Request, status int, eventID string) {
	s.mu.Lock()
	s.requests = keepLast(append(s.requests, Request{At: time.Now(), Method: r.Method, Path: r.URL.Path, Status: status, EventID: eventID}), s.opts.KeepLast)
	s.mu.Unlock()
	s.log.Debug("fakesentry: request", "method", r.Method, "path", r.URL.Path, "status", status)
}

// parseAuth reads X-Sentry-Auth as Sentry does: "Sentry k=v, k=v, ...".
// It returns the pairs, or a status and detail (Relay's texts, §2.4).
func parseAuth(h http.Header) (map[string]string, int, string) {
	vals := h.Values("X-Sentry-Auth")
	if len(vals) == 0 {
		return nil, http.StatusUnauthorized, "missing authorization information"
	}
	if len(vals) > 1 {
		return nil, http.StatusUnauthorized, "multiple authorization payloads detected"
	}
	v := strings.TrimSpace(vals[0])
	scheme, rest, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "sentry") {
		return nil, http.StatusUnauthorized, "bad x-sentry-auth header"
	}
	auth := map[string]string{}
	for pair := range strings.SplitSeq(rest, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, val, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, http.StatusUnauthorized, "bad x-sentry-auth header"
		}
		auth[strings.TrimSpace(k)] = strings.TrimSpace(val)
	}
	key, ok := auth["sentry_key"]
	if !ok {
		return nil, http.StatusUnauthorized, "missing authorization information"
	}
	if len(key) != 32 || !isHex(key) {
		return nil, http.StatusBadRequest, "bad sentry DSN public key"
	}
	if ver, ok := auth["sentry_version"]; ok {
		n, err := strconv.Atoi(ver)
		if err != nil {
			return nil, http.StatusUnauthorized, "bad x-sentry-auth header"
		}
		if n > 7 {
			return nil, http.StatusBadRequest, fmt.Sprintf("unsupported protocol version (%d)", n)
		}
	}
	return auth, 0, ""
}

// decodeBody undoes Content-Encoding, bounded by limit decoded bytes.
func decodeBody(enc string, wire []byte, limit int64) ([]byte, int, string) {
	var r io.Reader
	switch strings.ToLower(enc) {
	case "", "identity":
		return wire, 0, ""
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(wire))
		if err != nil {
			return nil, http.StatusBadRequest, "invalid gzip body: " + err.Error()
		}
		r = zr
	case "deflate":
		zr, err := zlib.NewReader(bytes.NewReader(wire))
		if err != nil {
			return nil, http.StatusBadRequest, "invalid deflate (zlib) body: " + err.Error()
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(wire))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(wire), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, http.StatusBadRequest, "invalid zstd body: " + err.Error()
		}
		defer zr.Close()
		r = zr
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Encoding %q", enc)
	}
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Sprintf("invalid %s body: %v", enc, err)
	}
	if int64(len(body)) > limit {
		return nil, http.StatusRequestEntityTooLarge, "request body too large"
	}
	return body, 0, ""
}
