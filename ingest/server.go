// Package ingest is the relay's HTTP front door: it speaks Sentry's ingest
// protocol (envelope and store endpoints, health checks), authenticates the
// request, decodes and bounds the body, validates the envelope, refuses what
// the key's project config forbids (ProjectGate), removes what the
// upstream's rate limits hold (RateLimitSource, ratelimit.go), publishes it
// to the stream, and answers the SDK only after the stream acknowledged it.
// The browser tunnel (tunnel.go, EnableTunnel) is one more route onto the
// same path, behind an allowlist and a per-client rate limit. NEL reports,
// cron check-ins and OTLP traces and logs (integrations.go) become envelopes
// with the item types Sentry Relay makes and take the same path too, as do
// the upload routes (uploads.go: minidump, unreal, security/csp-report,
// event attachments). The forward fallback (forward.go, EnableForward)
// proxies every other /api/ request to the upstream and stores nothing.
// Concurrent requests for one project may share one stream publish (a
// group, group.go: Grouper wraps the stream as the Publisher); each SDK is
// still answered only after the PubAck of the message holding its envelope.
//
// Sentry Relay's relay-server (endpoints/, extractors/request_meta.rs,
// middlewares/) is the behavioural reference; ../shared/docs/relay-protocol.md
// §1–2 is the spec. Ingest never imports worker/ or spool/: the only contract
// with the rest of the relay is stream.Message, handed to a Publisher.
package ingest

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/stream"
)

// Publisher stores a message durably. internal/stream's *Conn is the real one.
//
// Publish returns nil only once the message is stored (JetStream PubAck); any
// error means it may not be, and the SDK is told 503. msgID is unique per
// request and identical across the publisher's own retries of that request,
// so the stream can drop duplicates (Nats-Msg-Id). Publish must not retain m,
// m.Envelope or anything reachable from it after it returns: ingest reuses
// those buffers for the next request.
type Publisher interface {
	Publish(ctx context.Context, m *stream.Message, msgID string) error
}

// Config holds ingest's limits and answers. Zero values mean the defaults of
// DefaultConfig (a zero Limits means envelope.DefaultLimits()).
type Config struct {
	// MaxEnvelopeSize bounds the decoded body of the envelope endpoint
	// (limits.max_envelope_size, 200 MiB in Relay).
	MaxEnvelopeSize int64
	// MaxEventSize bounds the decoded body of the store endpoint
	// (limits.max_event_size, 1 MiB in Relay).
	MaxEventSize int64
	// MaxPublishPayload is the most one stream message may carry
	// (stream.Conn.MaxPayload); 0 means no bound beyond the two above. Bodies
	// are limited to this minus the room the request metadata needs.
	MaxPublishPayload int64
	// Limits are the per-item limits of protocol doc §3.5 (413 when exceeded).
	Limits envelope.Limits
	// PublishTimeout bounds how long a request waits for the stream's
	// acknowledgement before answering 503. It also bounds how long in-flight
	// requests keep a shutdown waiting (see StartDraining, WaitIdle).
	PublishTimeout time.Duration
	// RetryAfter is what 503 answers put in Retry-After (whole seconds, ≥1).
	RetryAfter time.Duration
	// ReadyTimeout bounds the readiness probe's call of ready().
	ReadyTimeout time.Duration
	// MaxConcurrentRequests bounds the ingest requests (envelope and store)
	// inside the handler at once (limits.max_concurrent_requests); the next
	// one is answered 503 with Retry-After. See admission.go.
	MaxConcurrentRequests int
	// MaxInFlightBytes bounds the request-body buffers held at once, each
	// byte charged twice (body and encoded stream message). Requests beyond
	// it wait up to AdmissionTimeout for room, then get 503 with Retry-After.
	MaxInFlightBytes int64
	// AdmissionTimeout bounds how long a request waits for MaxInFlightBytes
	// room before its body is read.
	AdmissionTimeout time.Duration
	// Version goes into every answer's `Server: relay/<Version>` header
	// ("relay" alone when empty). The relay passes internal/app.Version, its
	// one version string; ingest has no version of its own.
	Version string
	// Projects refuses requests by their key's project config (403); nil
	// accepts every well-formed request (see ProjectGate).
	Projects ProjectGate
	// RateLimits are the upstream's limits per key, refused with 429 on the
	// routes that enforce them (ratelimit.go); nil enforces none.
	RateLimits RateLimitSource
}

// DefaultConfig returns Relay's defaults (protocol doc §3.5, §5.1).
func DefaultConfig() Config {
	return Config{
		MaxEnvelopeSize: 200 << 20,
		MaxEventSize:    1 << 20,
		Limits:          envelope.DefaultLimits(),
		PublishTimeout:  5 * time.Second,
		RetryAfter:      2 * time.Second,
		ReadyTimeout:    2 * time.Second,
		// Relay's default for limits.max_concurrent_requests.
		MaxConcurrentRequests: 100,
		// Room for a few of the largest messages the stream carries (32 MiB embedded)
		// at once, each charged twice.
		MaxInFlightBytes: 512 << 20,
		AdmissionTimeout: 10 * time.Second,
	}
}

// messageReserve is the room kept in a stream message for the request
// metadata beside the envelope (key, client, user agent, origin, forwarded-for
// chain, ids, framing). Requests whose metadata is larger still get an exact
// check before publishing (see fitsPublish).
const messageReserve = 8 << 10

// Server is the ingest HTTP handler. Build it with New; serve Handler().
type Server struct {
	cfg   Config
	pub   Publisher
	ready func(context.Context) error
	log   *slog.Logger

	envelopeLimit int64 // decoded body bound, envelope endpoint
	eventLimit    int64 // decoded body bound, store endpoint

	serverHdr     []string // "relay/<version>"
	retryAfterHdr []string // whole seconds

	draining  atomic.Bool
	drainOnce sync.Once
	stop      chan struct{} // closed by StartDraining: budget waits give up
	inflight  atomic.Int64  // ingest requests inside the handler
	budget    *byteBudget   // body bytes in flight (admission.go)

	publishLogs logLimiter
	deadlines   *publishDeadlines // what each publish waits under (PublishTimeout)

	tunnel  *tunnel    // nil until EnableTunnel
	forward *forwarder // nil until EnableForward (forward.go)

	now func() time.Time // the clock rate limits and the full hold expire by

	// fullUntil (unix nanoseconds, s.now's clock): until then a request is
	// refused as "stream full" before its body is read (fullHold).
	fullUntil atomic.Int64
}

// fullHold is how long ingest refuses at once — 503 "failed to queue
// envelope" with Retry-After, counted as stream_full, the answer the stream
// itself gave — after a publish was refused because the stream is full.
// Without it every request during a long outage (spool and stream full)
// is read, decoded, encoded and copied twice more by the embedded
// nats-server before the same refusal: with large envelopes and clients
// that retry at once, CPU and garbage spent as fast as the clients send,
// for nothing. Cost: for fullHold after a refusal a
// request is refused even if the workers have made room meanwhile (the
// next one after the hold publishes and finds out); in that window any
// request to an ingest route gets the 503, before its other checks.
const fullHold = 50 * time.Millisecond

// New builds the ingest server. pub stores accepted envelopes; ready reports
// whether the stream takes writes (nil: always ready); log gets operational
// events, never payloads.
func New(cfg Config, pub Publisher, ready func(context.Context) error, log *slog.Logger) *Server {
	def := DefaultConfig()
	if cfg.MaxEnvelopeSize <= 0 {
		cfg.MaxEnvelopeSize = def.MaxEnvelopeSize
	}
	if cfg.MaxEventSize <= 0 {
		cfg.MaxEventSize = def.MaxEventSize
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = def.PublishTimeout
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = def.RetryAfter
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = def.ReadyTimeout
	}
	if cfg.MaxConcurrentRequests <= 0 {
		cfg.MaxConcurrentRequests = def.MaxConcurrentRequests
	}
	if cfg.MaxInFlightBytes <= 0 {
		cfg.MaxInFlightBytes = def.MaxInFlightBytes
	}
	if cfg.AdmissionTimeout <= 0 {
		cfg.AdmissionTimeout = def.AdmissionTimeout
	}
	if cfg.Limits == (envelope.Limits{}) {
		cfg.Limits = def.Limits // all-zero limits would refuse every item
	}
	if log == nil {
		log = slog.Default()
	}
	if ready == nil {
		ready = func(context.Context) error { return nil }
	}
	s := &Server{
		cfg:           cfg,
		pub:           pub,
		ready:         ready,
		log:           log,
		envelopeLimit: cfg.MaxEnvelopeSize,
		eventLimit:    cfg.MaxEventSize,
		serverHdr:     []string{serverHeader(cfg.Version)},
		retryAfterHdr: []string{strconv.Itoa(int(math.Max(1, math.Ceil(cfg.RetryAfter.Seconds()))))},
		stop:          make(chan struct{}),
		budget:        &byteBudget{size: cfg.MaxInFlightBytes},
		now:           time.Now,
		// Real time, not s.now: the contexts' deadlines are the runtime's.
		deadlines: newPublishDeadlines(cfg.PublishTimeout, time.Now),
	}
	if p := cfg.MaxPublishPayload; p > 0 {
		room := p - messageReserve
		if room < 1 {
			room = 1
		}
		s.envelopeLimit = min(s.envelopeLimit, room)
		s.eventLimit = min(s.eventLimit, room)
	}
	return s
}

// serverHeader is the Server header's value: the product, then its version
// when there is one (RFC 9110 §10.2.4).
func serverHeader(version string) string {
	if version == "" {
		return "relay"
	}
	return "relay/" + version
}

// Handler returns the HTTP handler serving every ingest route.
func (s *Server) Handler() http.Handler { return s }

// StartDraining makes the server refuse new ingest requests with 503 "failed
// to queue envelope" (and readiness report unhealthy), and requests waiting
// for admission give up with the same answer, while requests already past it
// finish their publish. Call it first on shutdown, then http.Server.Shutdown
// (which waits for the handlers still running), then stop the stream.
func (s *Server) StartDraining() {
	s.draining.Store(true)
	s.drainOnce.Do(func() { close(s.stop) })
}

// ServeHTTP routes by hand: the route set is small and fixed, and a hand
// router costs no allocations and no pattern matching on the hot path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := foldSlashes(r.URL.Path)
	if s.tunnel != nil && path == s.tunnel.path {
		s.serveTunnel(w, r)
		return
	}
	rt, projectSeg := matchRoute(path)
	switch rt {
	case routeEnvelope, routeMinidump, routeUnreal, routeSecurity, routeAttachments:
		switch r.Method {
		case http.MethodPost:
			s.serveIngest(w, r, rt, projectSeg)
		case http.MethodOptions:
			s.writePreflight(w)
			s.countRequest(rt, http.StatusOK)
		default:
			s.writeError(w, r, rt, errMethodNotAllowed(hdrAllowPost))
		}
	case routeStore, routeStoreLegacy:
		switch r.Method {
		case http.MethodPost, http.MethodGet:
			s.serveIngest(w, r, rt, projectSeg)
		case http.MethodOptions:
			s.writePreflight(w)
			s.countRequest(rt, http.StatusOK)
		default:
			s.writeError(w, r, rt, errMethodNotAllowed(hdrAllowGetPost))
		}
	case routeHealthLive, routeHealthReady, routeRelaysLive:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.writeError(w, r, rt, errMethodNotAllowed(hdrAllowGetHead))
			return
		}
		s.serveHealth(w, r, rt)
	default:
		if m, ok := matchIntegration(path); ok {
			s.serveIntegration(w, r, m)
			return
		}
		// Every other /api/ path goes to the upstream when the forward
		// fallback is on (protocol doc §1.12, forward.go); the rest is 404.
		if s.forward != nil && forwardable(path) {
			s.serveForward(w, r, path)
			return
		}
		s.writeError(w, r, rt, errNotFound)
	}
}

// matchRoute maps a (slash-folded) path to a route. Paths match exactly,
// trailing slash included, as in Relay. For the two routes with a project id
// it returns the raw {project_id} segment; parsing it is the handler's job so
// that `/api/abc/envelope/` is a 400 "bad project path parameter" like Relay,
// not a 404.
func matchRoute(path string) (route, string) {
	rest, ok := cutPrefix(path, "/api/")
	if !ok {
		return routeOther, ""
	}
	switch rest {
	case "store/":
		return routeStoreLegacy, ""
	case "relay/healthcheck/live/":
		return routeHealthLive, ""
	case "relay/healthcheck/ready/":
		return routeHealthReady, ""
	case "0/relays/live/":
		return routeRelaysLive, ""
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] == '/' {
			if i == 0 {
				return routeOther, ""
			}
			switch rest[i+1:] {
			case "envelope/":
				return routeEnvelope, rest[:i]
			case "store/":
				return routeStore, rest[:i]
			}
			if rt := matchUploadRoute(rest[i+1:]); rt != routeOther {
				return rt, rest[:i]
			}
			return routeOther, ""
		}
	}
	return routeOther, ""
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return s, false
}

// foldSlashes folds runs of '/' into one (Relay's normalize_path middleware:
// `/api/42/store//` is `/api/42/store/`). It allocates only when there is a
// run to fold.
func foldSlashes(p string) string {
	run := -1
	for i := 1; i < len(p); i++ {
		if p[i] == '/' && p[i-1] == '/' {
			run = i
			break
		}
	}
	if run < 0 {
		return p
	}
	b := make([]byte, 0, len(p))
	b = append(b, p[:run]...)
	for i := run; i < len(p); i++ {
		if p[i] == '/' && p[i-1] == '/' {
			continue
		}
		b = append(b, p[i])
	}
	return string(b)
}

// serveHealth answers liveness (always healthy while the process serves) and
// readiness (the stream takes writes and we are not shutting down).
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request, rt route) {
	if rt != routeHealthReady {
		s.writeHealth(w, rt, true)
		return
	}
	if s.draining.Load() {
		s.writeHealth(w, rt, false)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	err := s.ready(ctx)
	cancel()
	if err != nil {
		s.log.Debug("ingest: not ready", "error", err)
	}
	s.writeHealth(w, rt, err == nil)
}

// logLimiter lets through at most one log line per second for a noisy event
// (a stream outage fails every request) and counts what it suppressed.
type logLimiter struct {
	last       atomic.Int64 // unix nanoseconds of the last line let through
	suppressed atomic.Int64
}

// allow reports whether to log now and how many lines were suppressed since.
func (l *logLimiter) allow(now time.Time) (bool, int64) {
	n := now.UnixNano()
	last := l.last.Load()
	if n-last < int64(time.Second) || !l.last.CompareAndSwap(last, n) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
