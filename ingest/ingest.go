package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/stream"
)

// reqState is the per-request scratch space, pooled: the body buffer, the
// re-serialisation buffer, the message handed to the publisher and the
// response bytes. Nothing in it outlives the request (Publisher contract).
type reqState struct {
	body *[]byte
	out  *[]byte
	msg  stream.Message
	resp [48]byte

	srv     *Server
	ctx     context.Context // the request's: a client gone stops a budget wait
	charged int64           // bytes of srv.budget this request holds
}

var statePool = sync.Pool{New: func() any { return new(reqState) }}

func getState() *reqState {
	st := statePool.Get().(*reqState)
	st.body = getBuf()
	return st
}

func putState(st *reqState) {
	putBuf(st.body)
	if st.out != nil {
		putBuf(st.out)
	}
	*st = reqState{}
	statePool.Put(st)
}

// serveIngest handles the envelope and store routes (POST, and GET for store).
func (s *Server) serveIngest(w http.ResponseWriter, r *http.Request, rt route, projectSeg string) {
	// Count first, then check: concurrent requests cannot all slip under
	// the limit together.
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	if s.draining.Load() {
		s.writeError(w, r, rt, errShuttingDown)
		return
	}
	if n > int64(s.cfg.MaxConcurrentRequests) {
		s.writeError(w, r, rt, errTooManyRequests)
		return
	}
	if s.now().UnixNano() < s.fullUntil.Load() {
		s.writeError(w, r, rt, errStreamFullHeld)
		return
	}
	start := time.Now()
	st := getState()
	st.srv, st.ctx = s, r.Context()
	if e := s.ingestRoute(w, r, rt, projectSeg, st); e != nil {
		s.writeError(w, r, rt, e)
	} else {
		ackDuration.UpdateDuration(start)
	}
	// The answer is written: the buffers are free to go (putState drops
	// the large ones), and so is their charge.
	s.budget.release(st.charged)
	putState(st)
}

// ingest runs one store-like request, in Relay's order of checks: encoding,
// project id, auth (key, version), body (size, decode, empty), envelope
// (tunnel auth, parse, header dsn vs request), empty envelope, item size
// limits, event id, publish. On success it writes the answer and returns nil.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request, rt route, projectSeg string, st *reqState) *apiError {
	receivedAt := time.Now()

	// Relay decodes bodies in a middleware in front of the router, so an
	// encoding it cannot decode is refused before anything else.
	enc, rawEnc, ok := parseContentEncoding(r.Header)
	if !ok {
		return errUnsupportedEncoding(rawEnc)
	}

	var projectID uint64
	haveProject := rt != routeStoreLegacy && rt != routeTunnel // the tunnel's project is the DSN's
	if haveProject {
		if projectID, ok = parseProjectID(projectSeg); !ok {
			return errBadProject
		}
	}

	auth, e := extractAuth(r)
	if e != nil {
		return e
	}
	var err error
	if auth.source == authNone && !rt.takesEnvelopes() {
		return errMissingAuth
	}
	var publicKey string
	if auth.source != authNone {
		if publicKey, err = validatePublicKey(auth.key); err != nil {
			return errBadPublicKey(err)
		}
		if auth.version > protocolVersion {
			return errProtocolVersion(auth.version)
		}
	}

	// The body, decoded and bounded.
	limit := s.envelopeLimit
	if !rt.takesEnvelopes() {
		limit = s.eventLimit
	}
	var body []byte
	if r.Method == http.MethodGet {
		// GET store (legacy pixel tracking): the event is in ?sentry_data=,
		// encoded like a POST body.
		data := r.URL.Query().Get("sentry_data")
		if int64(len(data)) > limit {
			return errBodyTooLarge(limit)
		}
		body = append((*st.body)[:0], data...)
		*st.body = body
	} else {
		if body, e = readBody(r, enc, limit, st.body, st); e != nil {
			return e
		}
	}

	// Tunnel (envelope endpoint, no credentials in the request): the first
	// line of the body is the envelope header, and its "dsn" authenticates.
	// Its project must be the path's, when the path names one: an envelope
	// is only ever sent to the project its request was posted to. (Relay
	// takes the DSN's project here without comparing; a tunnel forwards to
	// /api/<dsn project>/envelope/, so the two agree for every real SDK, and
	// a disagreement gets the mismatch Relay gives an authenticated request.)
	var tunnelOrigin string
	if auth.source == authNone {
		var dsnProject uint64
		if auth, publicKey, dsnProject, err = tunnelAuth(body); err != nil {
			return errBadEnvelopeAuth(err.Error())
		}
		if haveProject && dsnProject != projectID {
			return errProjectMismatch
		}
		projectID, haveProject = dsnProject, true
	}
	if len(body) == 0 {
		return errEmptyBody
	}

	// The envelope: parsed (validated) from the body, or built from a store
	// event.
	var env *envelope.Envelope
	if rt.takesEnvelopes() || isEnvelopeContentType(r.Header) {
		if env, err = envelope.Parse(body); err != nil {
			return errParse(err)
		}
		if auth.source == authEnvelope {
			tunnelOrigin = env.Header.Origin
		} else if e := checkEnvelopeHeader(env, r.Header, publicKey, &projectID, &haveProject); e != nil {
			return e
		}
	} else {
		if env, err = envelope.FromStoreBodyLimit(body, auth.client, s.eventLimit); err != nil {
			return errStoreBody(err)
		}
	}
	// The request's origin: its own (Origin, else Referer) wins over the
	// envelope header's, as in Relay.
	origin := requestOrigin(r.Header)
	if origin == "" {
		origin = tunnelOrigin
	}
	if e := s.admitProject(publicKey, &projectID, &haveProject, origin); e != nil {
		return e
	}
	// Legacy /api/store/ without a DSN in the body and a key whose project
	// config is not known: nothing says where to send the event. Refuse it
	// rather than guess.
	if !haveProject {
		return errBadProject
	}
	if rt == routeTunnel {
		if e := s.tunnel.admit(r.Context(), publicKey, projectID); e != nil {
			return e // nothing stored: the tunnel is not an open proxy
		}
	}

	// Header only: valid, answered 200, and nothing to store (Relay drops it
	// with outcome empty_envelope).
	if len(env.Items) == 0 {
		if r.Method == http.MethodGet {
			s.writePixel(w, r, rt)
		} else {
			s.writeID(w, r, rt, st, env.Header.EventID)
		}
		return nil
	}
	if err := envelope.CheckSizeLimits(env, s.cfg.Limits); err != nil {
		return errItemTooLarge(err)
	}
	limited := s.enforceRateLimits(rt, publicKey, env)
	if limited.Len() > 0 && len(env.Items) == 0 {
		s.writeRateLimited(w, r, rt, limited, false)
		return nil
	}

	// What is published: the body as received, unless the envelope had to
	// change (a store event becomes an envelope; an event-like item without
	// an event id gets one, as Relay's parse_request does).
	if env.Header.EventID == "" && env.RequiresEventID() {
		if err := env.SetEventID(envelope.NewEventID()); err != nil {
			return errInvalidEnvelope([]string{err.Error()}) // cannot happen: NewEventID is a UUID
		}
	}
	payload := body
	if !env.Unchanged() {
		st.out = getBuf()
		payload = env.AppendTo((*st.out)[:0])
		*st.out = payload
	}
	eventID := env.Header.EventID

	if e := s.storeEnvelope(r, rt, st, projectID, publicKey, auth, origin, receivedAt, eventID, payload); e != nil {
		return e
	}
	if limited.Len() > 0 {
		s.writeRateLimited(w, r, rt, limited, true) // the rest is stored
		return nil
	}
	if r.Method == http.MethodGet {
		s.writePixel(w, r, rt)
	} else {
		s.writeID(w, r, rt, st, eventID)
	}
	return nil
}

// storeEnvelope is where every storing route ends (envelope, store, tunnel,
// and the upload routes of uploads.go): it wraps the accepted envelope
// (payload, already validated and size-checked) with the request's metadata
// and publishes it. It returns nil only once the stream acknowledged it.
func (s *Server) storeEnvelope(r *http.Request, rt route, st *reqState, projectID uint64, publicKey string,
	auth authInfo, origin string, receivedAt time.Time, eventID string, payload []byte) *apiError {
	m := &st.msg
	m.ProjectID = projectID
	m.PublicKey = publicKey
	m.Client = auth.client
	m.Version = auth.version
	m.Origin = origin
	m.UserAgent = firstHeader(r.Header, "User-Agent")
	if rt == routeTunnel {
		m.RemoteAddr, m.ForwardedFor = s.tunnel.clientAddrs(r) // X-Forwarded-For only from trusted proxies
	} else {
		m.RemoteAddr, m.ForwardedFor = peerAndChain(r)
	}
	m.ReceivedAt = receivedAt
	m.EventID = eventID
	m.Envelope = payload
	if !s.fitsPublish(m) {
		return errMessageTooLarge(messageSize(m), s.cfg.MaxPublishPayload)
	}
	return s.publish(m)
}

// publish hands m to the stream and waits for its acknowledgement, bounded by
// PublishTimeout. Every failure is a 503 with Retry-After: the SDK keeps the
// envelope and retries, nothing is lost silently.
//
// The request's context is not used: once the body is read, a client
// hanging up must not abort a publish halfway (the message would be in an
// unknown state for no gain); PublishTimeout bounds the wait instead,
// through a deadline shared with the publishes that start around the same
// time (publishDeadlines: a timer per request was ~4 % of ingest's CPU).
func (s *Server) publish(m *stream.Message) *apiError {
	ctx := s.deadlines.get()
	start := time.Now()
	err := s.pub.Publish(ctx, m, newRandomID())
	publishDuration.UpdateDuration(start)
	if err == nil {
		acceptedTotal.Inc()
		return nil
	}
	if errors.Is(err, stream.ErrTooLarge) {
		// The metadata estimate let through a message the stream cannot
		// carry: retrying cannot help, so this is 413, not 503.
		return &apiError{status: http.StatusRequestEntityTooLarge, detail: "failed to read request body",
			causes: []string{err.Error()}, dropped: droppedBodyTooLarge}
	}
	e := &apiError{status: http.StatusServiceUnavailable, detail: "failed to queue envelope",
		causes: []string{err.Error()}, retryAfter: true}
	switch {
	case errors.Is(err, stream.ErrFull):
		e.dropped = droppedStreamFull
		s.fullUntil.Store(s.now().Add(fullHold).UnixNano())
	case errors.Is(err, stream.ErrUnavailable):
		e.dropped = droppedStreamDown
	case errors.Is(err, context.DeadlineExceeded):
		e.dropped = droppedPublishTimeout
	default:
		e.dropped = droppedPublishFailed
	}
	// JetStream being away is logged once per change by the stream itself;
	// each request's 503 is counted (e.dropped) and logged at debug.
	if errors.Is(err, stream.ErrUnavailable) {
		s.log.Debug("ingest: publish failed, answering 503", "project_id", m.ProjectID, "error", err)
	} else if ok, suppressed := s.publishLogs.allow(time.Now()); ok {
		s.log.Warn("ingest: publish failed, answering 503", "project_id", m.ProjectID,
			"error", err, "suppressed_since_last", suppressed)
	}
	return e
}

// messageSize estimates the encoded size of m (stream.Message's encoding:
// varint-framed fields); it errs on the large side.
func messageSize(m *stream.Message) int64 {
	return int64(128 + len(m.PublicKey) + len(m.Client) + len(m.Origin) + len(m.UserAgent) +
		len(m.RemoteAddr) + len(m.ForwardedFor) + len(m.EventID) + len(m.Envelope))
}

// fitsPublish reports whether m fits one stream message. Body limits already
// keep messageReserve free; only requests with unusually large metadata (a
// huge User-Agent or forwarded-for chain) need the exact check.
func (s *Server) fitsPublish(m *stream.Message) bool {
	if s.cfg.MaxPublishPayload <= 0 {
		return true
	}
	return messageSize(m) <= s.cfg.MaxPublishPayload
}

// newRandomID returns 32 lowercase hex characters of a random (v4) UUID: the
// event id given to envelopes without one, and the per-request message id the
// stream deduplicates on.
func newRandomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var h [32]byte
	hex.Encode(h[:], b[:])
	return string(h[:])
}

// errParse maps an envelope parse error to Relay's answer: 400 "invalid
// event envelope" with the parser's causes, or 400 "envelope contains
// internal items" for items only Relay may create.
func errParse(err error) *apiError {
	if errors.Is(err, envelope.ErrInternalItems) {
		return &apiError{status: http.StatusBadRequest, detail: err.Error(), dropped: droppedInvalidEnvelope}
	}
	var pe *envelope.ParseError
	if errors.As(err, &pe) {
		return errInvalidEnvelope(pe.Causes())
	}
	return errInvalidEnvelope([]string{err.Error()})
}

// errStoreBody maps a store-body conversion error: 413 for an event over the
// size limit (a zlib bomb included), 400 "empty request body", or 400 with
// Relay's detail ("invalid JSON data", "invalid request body") and the reason.
func errStoreBody(err error) *apiError {
	var se *envelope.SizeError
	if errors.As(err, &se) {
		return errItemTooLarge(se)
	}
	var st *envelope.StoreError
	if errors.As(err, &st) {
		if st.Cause == envelope.ErrEmptyBody {
			return errEmptyBody
		}
		e := &apiError{status: http.StatusBadRequest, detail: st.Cause.Error(), dropped: droppedInvalidJSON}
		if st.Detail != "" {
			e.causes = []string{st.Detail}
		}
		return e
	}
	return &apiError{status: http.StatusBadRequest, detail: "invalid JSON data", causes: []string{err.Error()}, dropped: droppedInvalidJSON}
}

// checkEnvelopeHeader compares the envelope header with the request, as
// Relay's EnvelopeHeaders::complete does: an origin, if present, must be the
// request's; a dsn, if present, must name the request's project and key. On
// legacy /api/store/ (no project in the path) the dsn supplies the project.
func checkEnvelopeHeader(env *envelope.Envelope, h http.Header, publicKey string, projectID *uint64, haveProject *bool) *apiError {
	if o := env.Header.Origin; o != "" && !sameOrigin(o, requestOrigin(h)) {
		return errInvalidEnvelope([]string{"origin header mismatch between envelope and request"})
	}
	if env.Header.DSN == "" {
		return nil
	}
	dsn, err := envelope.ParseDSNCached(env.Header.DSN)
	if err != nil {
		return errInvalidEnvelope([]string{envelope.ErrInvalidHeader.Error(), err.Error()})
	}
	if !*haveProject {
		if err := envelope.CheckProjectID(dsn.ProjectID); err != nil {
			return errInvalidEnvelope([]string{envelope.ErrInvalidHeader.Error(), "dsn: " + err.Error()})
		}
		*projectID, *haveProject = dsn.ProjectID, true
	} else if dsn.ProjectID != *projectID {
		return errProjectMismatch
	}
	if key, _, _ := strings.Cut(dsn.PublicKey, "."); key != publicKey {
		return errInvalidEnvelope([]string{"public key header mismatch between envelope and request"})
	}
	return nil
}

// sameOrigin compares two origins as URLs (Relay compares parsed Urls:
// scheme and host case-insensitively, an empty path equal to "/").
func sameOrigin(a, b string) bool {
	if b == "" {
		return false
	}
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil {
		return false
	}
	norm := func(u *url.URL) string {
		p := u.EscapedPath()
		if p == "" {
			p = "/"
		}
		return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + p + "?" + u.RawQuery + "#" + u.Fragment
	}
	return norm(ua) == norm(ub)
}

// isEnvelopeContentType reports whether a store request says its body is an
// envelope (Content-Type exactly application/x-sentry-envelope, parameters
// aside).
func isEnvelopeContentType(h http.Header) bool {
	v := h["Content-Type"]
	if len(v) == 0 {
		return false
	}
	mt, _, _ := strings.Cut(v[0], ";")
	return asciiEqualFold(strings.TrimSpace(mt), "application/x-sentry-envelope")
}

// requestOrigin is the request's Origin, else its Referer, when it is an
// http(s) URL (Relay's parse_header_url); "" otherwise.
func requestOrigin(h http.Header) string {
	if o := firstHeader(h, "Origin"); o != "" && httpURL(o) {
		return o
	}
	if o := firstHeader(h, "Referer"); o != "" && httpURL(o) {
		return o
	}
	return ""
}

func httpURL(s string) bool {
	if len(s) < 7 || !(asciiEqualFold(s[:7], "http://") || len(s) >= 8 && asciiEqualFold(s[:8], "https://")) {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && u.Host != ""
}

// peerAndChain returns the socket peer's IP and the forwarded-for chain to
// send upstream: the incoming X-Forwarded-For, then the peer (protocol doc
// §7.5, Relay's ForwardedFor extractor).
func peerAndChain(r *http.Request) (peer, chain string) {
	peer = r.RemoteAddr
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	xff := strings.TrimSpace(firstHeader(r.Header, "X-Forwarded-For"))
	switch {
	case xff == "":
		return peer, peer
	case peer == "":
		return peer, xff
	}
	return peer, xff + ", " + peer
}

// envelopeMeta is the part of an envelope header that authenticates a tunnel
// request (Relay deserialises the first line as its RequestMeta: a wrong type
// in these fields fails the request as well).
type envelopeMeta struct {
	DSN     *string `json:"dsn"`
	Client  *string `json:"client"`
	Version *uint16 `json:"version"`
}

// tunnelAuth authenticates a request without credentials by the envelope
// header's dsn (first line of the body). Any failure is Relay's 401 "bad
// envelope authentication header"; the error is the cause.
func tunnelAuth(body []byte) (a authInfo, key string, projectID uint64, err error) {
	line := body
	if i := indexByte(body, '\n'); i >= 0 {
		line = body[:i]
	}
	var meta envelopeMeta
	if err = json.Unmarshal(line, &meta); err != nil {
		return a, "", 0, err
	}
	if meta.DSN == nil {
		return a, "", 0, errors.New("missing field `dsn`")
	}
	dsn, err := envelope.ParseDSNCached(*meta.DSN)
	if err != nil {
		return a, "", 0, err
	}
	if key, err = validatePublicKey(dsn.PublicKey); err != nil {
		return a, "", 0, fmt.Errorf("dsn: %w", err)
	}
	if err = envelope.CheckProjectID(dsn.ProjectID); err != nil {
		return a, "", 0, fmt.Errorf("dsn: %w", err)
	}
	a = authInfo{source: authEnvelope, key: key, version: protocolVersion}
	if meta.Client != nil {
		a.client = *meta.Client
	}
	if meta.Version != nil {
		a.version = int(*meta.Version)
	}
	return a, key, dsn.ProjectID, nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
