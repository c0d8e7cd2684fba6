package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/relayhq/relay/internal/envelope"
)

// Defaults are Relay's (relay-protocol.md §5.1).
const (
	DefaultTimeout             = 5 * time.Second
	DefaultConnectionTimeout   = 3 * time.Second
	DefaultMaxIdleConnsPerHost = 256
	DefaultProtocolVersion     = 7

	// DefaultRateLimitDuration is how long a 429 without Retry-After and
	// without an active X-Sentry-Rate-Limits entry holds. This is the SDK
	// rule (develop docs, sdk/rate-limiting: "assume 60 seconds"), and our
	// choice: Relay synthesises a 0 s limit instead, i.e. it would retry at
	// once and learn nothing (§4.3). A relay that hammers an upstream which
	// says "too many" only makes it worse.
	DefaultRateLimitDuration = 60 * time.Second

	// maxErrorBody bounds how much of a response body is read, to find an
	// error's detail or to drain it so the connection can be reused. A
	// longer body costs a new connection, never unbounded memory or time.
	maxErrorBody = 64 << 10

	// maxDetail bounds the detail text kept from an error response.
	maxDetail = 512
)

// Config configures a Client. Zero durations take Relay's defaults.
type Config struct {
	// URL is the upstream, e.g. "https://sentry.io/" or
	// "https://example.com/sentry" (a path prefix is kept; trailing slashes
	// do not matter).
	URL string
	// Timeout bounds the wait for response headers after the request was
	// written (Relay's http.timeout), and separately the read of an
	// (error) response body.
	Timeout time.Duration
	// ConnectionTimeout bounds TCP connect and TLS handshake (Relay's
	// http.connection_timeout).
	ConnectionTimeout time.Duration
	// Encoding is the request Content-Encoding: identity, gzip, deflate, br
	// or zstd. "" means identity.
	Encoding string
	// RelayID is sent as X-Sentry-Relay-Id when not empty.
	RelayID string
	// Signer, when set, signs what the relay sends as Sentry Relay does:
	// every envelope carries an X-Sentry-Relay-Signature over an empty
	// payload (a fresh timestamp only: the upstream can tell a relay it
	// trusts, as projects with trustedRelaySettings.verifySignature
	// require), and Query signs its JSON body. nil sends no signature and
	// makes Query fail.
	Signer Signer
	// MaxIdleConnsPerHost sizes the keep-alive pool; it should be at least
	// the number of concurrent senders (workers plus drainers), or
	// connections are torn down and re-dialled under load. 0 = 256.
	MaxIdleConnsPerHost int
	// RootCAs verifies the upstream's certificate (http.ca_file plus the
	// system roots); nil means the system roots. Verification is never off.
	RootCAs *x509.CertPool
}

// Request is one envelope to forward, with the metadata of the SDK request
// it came in on (relay-protocol.md §2.3, §7.5).
type Request struct {
	ProjectID    uint64
	PublicKey    string // the SDK's DSN key, forwarded unchanged
	Client       string // sentry_client ("" = not sent)
	Version      int    // sentry_version; 0 = 7
	ForwardedFor string // X-Forwarded-For chain ("" = not sent)
	UserAgent    string // original User-Agent ("" = none sent)
	Origin       string // original Origin ("" = not sent)
	// Envelope is the body before Content-Encoding. With encoding identity
	// it is sent without a copy, and the HTTP transport may still read it
	// for a moment after Send returns: it must not be modified afterwards.
	Envelope []byte
}

// Class is how the worker must treat a Send's outcome.
type Class int

const (
	// Accepted: the upstream took the envelope (2xx). Done.
	Accepted Class = iota
	// RateLimited: 429. Wait RetryAfter (or per RateLimits) before sending
	// anything these limits cover.
	RateLimited
	// Retryable: the envelope may succeed later — network error, timeout,
	// 5xx, 408, a redirect, or the caller's context ended.
	Retryable
	// Rejected: a 4xx about this envelope (400, 413, 415, …), or a request
	// that cannot be built. Sending the same envelope again would get the
	// same answer.
	Rejected
	// Denied: 401, 403 or 404. The upstream refuses the relay or the key —
	// relay.upstream points at the wrong place, the relay is not (yet)
	// authorised, a key was disabled — not this envelope: every envelope of
	// the key gets the same answer until someone fixes it, and then they
	// all go through. Keep them and retry later.
	Denied
)

func (c Class) String() string {
	switch c {
	case Accepted:
		return "accepted"
	case RateLimited:
		return "rate_limited"
	case Retryable:
		return "retryable"
	case Rejected:
		return "rejected"
	case Denied:
		return "denied"
	default:
		return "class(" + strconv.Itoa(int(c)) + ")"
	}
}

// Result is the outcome of one Send.
type Result struct {
	Class  Class
	Status int // HTTP status; 0 when no response was received
	// RetryAfter is how long the upstream asked us to wait: for 429 the
	// larger of Retry-After and the longest active X-Sentry-Rate-Limits
	// entry, DefaultRateLimitDuration when neither gives a duration; for a
	// Retryable answer carrying Retry-After (a 503, say), that value; else 0.
	RetryAfter time.Duration
	// RateLimits are the limits the response announced (X-Sentry-Rate-Limits,
	// read on every status because SDKs must honour it even on 200). For a
	// 429 with no active entry it holds the synthesised all-categories
	// limit of scope key and reason "generic" (Relay's
	// UpstreamRateLimits::scope), unless the duration is 0.
	RateLimits RateLimits
	// Detail is the "detail" of a JSON error body, bounded; "" otherwise.
	Detail string
	// Err explains every class but Accepted; it wraps the transport's or
	// the context's error where there is one.
	Err error
}

// Client sends envelopes to one upstream. It is safe for concurrent use;
// share one between all workers so they share the connection pool.
type Client struct {
	cfg     Config
	base    string // scheme://host[/prefix], no trailing slash
	liveURL string
	http    *http.Client
	// transport is http's Transport. Send calls its RoundTrip directly:
	// http.Client.Do would clone every request's headers for redirects
	// it never follows (CheckRedirect refuses them all).
	transport http.RoundTripper
	// The parts of every envelope URL: scheme, host, and the path prefix
	// (decoded and, when it differs, escaped) — so that building a
	// request parses nothing.
	scheme, host          string // host without an empty port ("h:"), as http.NewRequest has it
	prefixPath, prefixRaw string
	// Header values that are the same for every request, shared by all
	// requests: the transport only reads a request's headers.
	hdrContentType, hdrEncoding, hdrRelayID, hdrEmpty []string
	compress                                          compressor // nil for identity
}

// New checks cfg and builds a Client. It opens no connection.
func New(cfg Config) (*Client, error) {
	if cfg.Timeout < 0 || cfg.ConnectionTimeout < 0 || cfg.MaxIdleConnsPerHost < 0 {
		return nil, errors.New("upstream: timeouts and pool size must not be negative")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ConnectionTimeout == 0 {
		cfg.ConnectionTimeout = DefaultConnectionTimeout
	}
	if cfg.MaxIdleConnsPerHost == 0 {
		cfg.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if cfg.Encoding == "" {
		cfg.Encoding = EncodingIdentity
	}
	if cfg.RelayID != "" && !validHeaderValue(cfg.RelayID) {
		return nil, fmt.Errorf("upstream: relay id %q is not a valid header value", cfg.RelayID)
	}
	base, u, err := baseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	comp, err := newCompressor(cfg.Encoding)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: cfg.ConnectionTimeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   cfg.ConnectionTimeout,
		ResponseHeaderTimeout: cfg.Timeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          cfg.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		// We set Content-Encoding ourselves and want the transport not to
		// add Accept-Encoding and transparently gunzip: error bodies are
		// small and read bounded.
		DisableCompression: true,
	}
	if cfg.RootCAs != nil {
		transport.TLSClientConfig = &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}
	}
	prefixPath := strings.TrimRight(u.Path, "/")
	prefixRaw := strings.TrimRight(u.EscapedPath(), "/")
	if prefixRaw == prefixPath {
		prefixRaw = ""
	}
	return &Client{
		cfg:            cfg,
		base:           base,
		liveURL:        base + "/api/0/relays/live/",
		transport:      transport,
		scheme:         u.Scheme,
		host:           strings.TrimSuffix(u.Host, ":"),
		prefixPath:     prefixPath,
		prefixRaw:      prefixRaw,
		hdrContentType: []string{"application/x-sentry-envelope"},
		hdrEncoding:    []string{cfg.Encoding},
		hdrRelayID:     []string{cfg.RelayID},
		hdrEmpty:       []string{""},
		http: &http.Client{
			Transport: transport,
			// Never follow redirects: Go would turn a 301/302/303 POST into
			// a GET without body, and the relay sends to relay.upstream and
			// nowhere else — a followed redirect would let an answer pick
			// the host (server-side request forgery, as in hand-written
			// browser tunnels). A redirect means relay.upstream points at
			// the wrong URL; Send reports it as Retryable with the Location
			// so the data is kept until an operator fixes the config.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		compress: comp,
	}, nil
}

// baseURL validates the upstream URL and returns it without trailing
// slashes, keeping any path prefix, and parsed.
func baseURL(raw string) (string, *url.URL, error) {
	if raw == "" {
		return "", nil, errors.New("upstream: no upstream URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", nil, fmt.Errorf("upstream: bad upstream URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", nil, fmt.Errorf("upstream: upstream URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return "", nil, fmt.Errorf("upstream: upstream URL %q has no host", raw)
	}
	if u.User != nil {
		return "", nil, fmt.Errorf("upstream: upstream URL %q must not carry credentials", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", nil, fmt.Errorf("upstream: upstream URL %q must not have a query or fragment", raw)
	}
	return u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/"), u, nil
}

// EnvelopeURL returns where envelopes of a project are posted.
func (c *Client) EnvelopeURL(projectID uint64) string {
	return c.base + "/api/" + strconv.FormatUint(projectID, 10) + "/envelope/"
}

// Close releases idle connections and encoder state. In-flight Sends are
// not interrupted; call it after the senders stopped.
func (c *Client) Close() {
	c.http.CloseIdleConnections()
	if c.compress != nil {
		c.compress.close()
	}
}

// AuthHeader formats X-Sentry-Auth as Relay forwards it:
// "Sentry sentry_key=<key>, sentry_version=<ver>[, sentry_client=<client>]".
func AuthHeader(publicKey string, version int, client string) string {
	if version <= 0 {
		version = DefaultProtocolVersion
	}
	var b strings.Builder
	b.Grow(64 + len(publicKey) + len(client))
	b.WriteString("Sentry sentry_key=")
	b.WriteString(publicKey)
	b.WriteString(", sentry_version=")
	b.WriteString(strconv.Itoa(version))
	if client != "" {
		b.WriteString(", sentry_client=")
		b.WriteString(client)
	}
	return b.String()
}

// Send posts one envelope and classifies the answer. It never retries:
// that is the caller's policy. It returns when the response headers are in
// and the (bounded) body has been read, or ctx ends, or a timeout hits.
func (c *Client) Send(ctx context.Context, r Request) Result {
	start := time.Now()
	res := c.send(ctx, r)
	requestDuration.UpdateDuration(start)
	countRequest(res.Class, res.Status)
	return res
}

func (c *Client) send(ctx context.Context, r Request) Result {
	if err := errors.Join(envelope.CheckProjectID(r.ProjectID), envelope.CheckPublicKey(r.PublicKey)); err != nil {
		return Result{Class: Rejected, Err: fmt.Errorf("upstream: request cannot be sent: %w", err)}
	}
	body := r.Envelope
	if c.compress != nil {
		var err error
		if body, err = c.compress.compress(r.Envelope); err != nil {
			// Cannot happen with in-memory buffers; if it does the data is
			// fine and a later attempt may succeed, so keep it.
			return Result{Class: Retryable, Err: err}
		}
	}

	// The response body is read under its own deadline (Timeout): the
	// transport's ResponseHeaderTimeout stops at the headers, and a server
	// that sends headers and then stalls must not hold a worker forever.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// GotConn runs on this goroutine, inside RoundTrip, before the request
	// is written: reused is read only after RoundTrip returned.
	var reused bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
	})

	envelopeBytes.Add(len(r.Envelope))
	var resp *http.Response
	for attempt := 0; ; attempt++ {
		req, err := c.newEnvelopeRequest(ctx, r, body)
		if err != nil {
			return Result{Class: Rejected, Err: err}
		}
		sentBytes.Add(len(body))
		resp, err = c.transport.RoundTrip(req)
		if err == nil {
			break
		}
		// A keep-alive connection the upstream closed while it sat in the
		// pool (restart, idle timeout) fails the first request written to
		// it. Go's transport replays such requests only for idempotent
		// methods; a POST of an envelope is safe to replay (delivery is
		// at-least-once anyway), so do it once. When one pooled connection
		// is dead the others usually are too (the upstream restarted):
		// drop the idle ones so the replay dials afresh.
		if attempt == 0 && reused && ctx.Err() == nil && isStaleConnError(err) {
			staleRetries.Inc()
			c.http.CloseIdleConnections()
			continue
		}
		return Result{Class: Retryable, Err: fmt.Errorf("upstream: POST %s: %w", c.EnvelopeURL(r.ProjectID), err)}
	}
	bodyTimer := time.AfterFunc(c.cfg.Timeout, cancel)
	defer bodyTimer.Stop()
	return c.classify(resp, r.ProjectID, time.Now())
}

// newEnvelopeRequest builds the POST with Relay's headers (§7.5). It
// builds the request by hand rather than with http.NewRequest, which
// would parse the URL it was given and add a GetBody closure for
// redirects that are never followed; the headers of one request share
// one backing array for their values.
func (c *Client) newEnvelopeRequest(ctx context.Context, r Request, body []byte) (*http.Request, error) {
	client := r.Client
	if !validAuthValue(client) {
		client = "" // a value that would corrupt the header is dropped, not the envelope
	}
	// The SDK's values: X-Sentry-Auth, and up to three forwarded ones.
	vals := make([]string, 0, 4)
	one := func(v string) []string {
		vals = append(vals, v)
		return vals[len(vals)-1 : len(vals) : len(vals)]
	}
	h := make(http.Header, 9)
	h["Content-Type"] = c.hdrContentType
	if c.compress != nil {
		h["Content-Encoding"] = c.hdrEncoding
	}
	h["X-Sentry-Auth"] = one(AuthHeader(r.PublicKey, r.Version, client))
	if r.ForwardedFor != "" && validHeaderValue(r.ForwardedFor) {
		h["X-Forwarded-For"] = one(r.ForwardedFor)
	}
	// An empty User-Agent stops Go from sending its own: the upstream must
	// see the SDK's agent or none (Sentry filters on it), never ours.
	if r.UserAgent != "" && validHeaderValue(r.UserAgent) {
		h["User-Agent"] = one(r.UserAgent)
	} else {
		h["User-Agent"] = c.hdrEmpty
	}
	if r.Origin != "" && validHeaderValue(r.Origin) {
		h["Origin"] = one(r.Origin)
	}
	if c.cfg.RelayID != "" {
		h["X-Sentry-Relay-Id"] = c.hdrRelayID
	}
	if c.cfg.Signer != nil {
		// Signed per attempt: a retry hours later (a spooled envelope)
		// must not carry a signature older than the upstream's max age.
		h["X-Sentry-Relay-Signature"] = []string{c.cfg.Signer.Sign(nil, time.Now())}
	}
	id := strconv.FormatUint(r.ProjectID, 10)
	u := &url.URL{Scheme: c.scheme, Host: c.host, Path: c.prefixPath + "/api/" + id + "/envelope/"}
	if c.prefixRaw != "" {
		u.RawPath = c.prefixRaw + "/api/" + id + "/envelope/"
	}
	req := (&http.Request{
		Method:        http.MethodPost,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          newEnvelopeBody(body),
		ContentLength: int64(len(body)),
		Host:          c.host,
		// The transport itself re-sends a request that failed before any
		// byte of it was written (a pooled connection found closed) only
		// when it can rewind the body.
		GetBody: func() (io.ReadCloser, error) { return newEnvelopeBody(body), nil },
	}).WithContext(ctx)
	if len(body) == 0 {
		req.Body, req.GetBody = http.NoBody, nil
	}
	return req, nil
}

// newEnvelopeBody is a request body over bytes. It must stay what
// net/http knows as an in-memory reader (io.NopCloser of a *bytes.Reader):
// the transport then writes headers and body with one flush, and re-sends
// by itself a request that failed before any byte was written; for any
// other reader it flushes the headers on their own first.
func newEnvelopeBody(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// classify turns a response to a POST of an envelope of projectID into a Result, reading and
// closing its body.
func (c *Client) classify(resp *http.Response, projectID uint64, now time.Time) Result {
	status := resp.StatusCode
	res := Result{Status: status}
	if v := resp.Header.Values("X-Sentry-Rate-Limits"); len(v) > 0 {
		res.RateLimits = ParseRateLimits(strings.Join(v, ", "), now)
	}
	retryAfter, haveRetryAfter := parseRetryAfter(resp.Header.Get("Retry-After"), now)

	if status >= 200 && status < 300 {
		drain(resp.Body)
		res.Class = Accepted
		return res
	}
	res.Detail = readDetail(resp.Body)

	switch {
	case status == http.StatusTooManyRequests:
		res.Class = RateLimited
		if res.RateLimits.Longest(now) == 0 {
			d := DefaultRateLimitDuration
			if haveRetryAfter {
				d = retryAfter
			}
			if d > 0 {
				res.RateLimits = res.RateLimits.Add(RateLimit{Scope: ScopeKey, ReasonCode: "generic", Until: now.Add(d)})
			}
		}
		res.RetryAfter = res.RateLimits.Longest(now)
		if haveRetryAfter && retryAfter > res.RetryAfter {
			res.RetryAfter = retryAfter
		}
		res.Err = fmt.Errorf("upstream: rate limited (429) for %v%s", res.RetryAfter, detailSuffix(res.Detail))
	case status >= 500 || status == http.StatusRequestTimeout:
		// 408 is a timeout the server chose to report; Relay retries
		// timeouts, so do we.
		res.Class = Retryable
		if haveRetryAfter {
			res.RetryAfter = retryAfter
		}
		res.Err = fmt.Errorf("upstream: status %d%s", status, detailSuffix(res.Detail))
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotFound:
		res.Class = Denied
		res.Err = fmt.Errorf("upstream: POST %s: denied with status %d%s", c.EnvelopeURL(projectID), status, detailSuffix(res.Detail))
	case status >= 400:
		res.Class = Rejected
		res.Err = fmt.Errorf("upstream: rejected with status %d%s", status, detailSuffix(res.Detail))
	default:
		// 1xx that Go did not consume, or 3xx: not an answer about the
		// envelope. Keep it and say where the upstream wanted us to go.
		res.Class = Retryable
		loc := resp.Header.Get("Location")
		res.Err = fmt.Errorf("upstream: unexpected status %d (Location %q): check relay.upstream", status, loc)
	}
	return res
}

func detailSuffix(detail string) string {
	if detail == "" {
		return ""
	}
	return ": " + detail
}

// drain reads what is left of a body, bounded, and closes it, so that the
// keep-alive connection can be reused.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxErrorBody))
	_ = body.Close()
}

// readDetail reads a bounded error body and returns its JSON "detail"
// (Sentry's and Relay's error format: {"detail": "...", "causes": [...]}),
// cut to maxDetail bytes; "" if the body is not such JSON.
func readDetail(body io.ReadCloser) string {
	defer drain(body)
	b, err := io.ReadAll(io.LimitReader(body, maxErrorBody))
	if err != nil || len(b) == 0 {
		return ""
	}
	var e struct {
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(b, &e) != nil || len(e.Detail) == 0 {
		return ""
	}
	var detail string
	if json.Unmarshal(e.Detail, &detail) != nil {
		// Some Sentry endpoints answer {"detail": {"code": ..., "message": ...}}.
		detail = string(e.Detail)
	}
	if len(detail) > maxDetail {
		detail = detail[:maxDetail] + "…"
	}
	return detail
}

// parseRetryAfter reads Retry-After as delay-seconds (a float is accepted
// and rounded up, as Relay does for rate limits) or an HTTP date. A date in
// the past or a negative delay gives 0 (retry now). ok is false when the
// header is absent or unusable, including delays that overflow a Duration.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(secs) || math.IsInf(secs, 0) || math.Ceil(secs) > maxRetryAfterSecs {
			return 0, false
		}
		if secs <= 0 {
			return 0, true
		}
		return time.Duration(math.Ceil(secs)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		if d = t.Sub(now); d < 0 {
			d = 0
		}
		// Round up to whole seconds: an HTTP date has no fraction, so a
		// remainder is our clock's, and waiting less than asked is wrong.
		if rem := d % time.Second; rem != 0 {
			d += time.Second - rem
		}
		return d, true
	}
	return 0, false
}

// Probe asks the upstream whether it is reachable: GET
// {upstream}/api/0/relays/live/. Any HTTP answer below 500 counts as up.
// The probe's question is "does the network path and the upstream's HTTP
// server work?", which any real answer settles: Sentry serves the route,
// but a Sentry or proxy that does not (404), or wants auth (401/403), has
// still answered — and whether envelopes are accepted is what the next Send
// finds out. A 5xx (a load balancer with no healthy backend, maintenance
// 503) or no answer at all means down.
func (c *Client) Probe(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.liveURL, nil)
	if err != nil {
		return fmt.Errorf("upstream: probe: %w", err)
	}
	req.Header["User-Agent"] = []string{""}
	if c.cfg.RelayID != "" {
		req.Header["X-Sentry-Relay-Id"] = []string{c.cfg.RelayID}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		probeDown.Inc()
		return fmt.Errorf("upstream: probe %s: %w", c.liveURL, err)
	}
	bodyTimer := time.AfterFunc(c.cfg.Timeout, cancel)
	defer bodyTimer.Stop()
	drain(resp.Body)
	if resp.StatusCode >= 500 {
		probeDown.Inc()
		return fmt.Errorf("upstream: probe %s: status %d", c.liveURL, resp.StatusCode)
	}
	probeUp.Inc()
	return nil
}

// isStaleConnError reports whether err is how a request fails on a
// connection the peer had already closed: EOF or a reset before any
// response. Timeouts are not: the upstream was there and slow.
func isStaleConnError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "server closed idle connection")
}

// validHeaderValue reports whether v can be sent as a header value: no
// control characters but tab (what net/http would refuse, failing the whole
// request — which must not turn a bad User-Agent into an endless retry).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		b := v[i]
		if (b < ' ' && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}

// validAuthValue additionally refuses ',', which would split the key=value
// list of X-Sentry-Auth.
func validAuthValue(v string) bool {
	return validHeaderValue(v) && !strings.Contains(v, ",")
}

// BaseURL returns the upstream's address as configured (scheme, host and
// path prefix; it never carries credentials, New refuses those), for logs.
func (c *Client) BaseURL() string { return c.base }
