package ingest

// The browser tunnel: the route a browser SDK's `tunnel` option posts to, so
// that ad blockers do not drop the requests to Sentry's host. The request
// carries no credentials; the envelope header's dsn names the key and the
// project. Hand-written tunnels (an Express or Next.js route) forward to the
// host that dsn names, which made them open proxies and, in @sentry/nextjs,
// a server-side request forgery (CVE-2023-46729). This one keeps three
// promises instead:
//
//   - only keys and projects a KeyAllower accepts get in; anything else is a
//     403 and nothing is stored;
//   - what gets in takes the envelope route's path — the same size limits,
//     the same publish-before-200 — and the worker sends it to the
//     configured upstream only: no host in a dsn is ever dialled (and the
//     upstream client follows no redirect);
//   - each client address has a token bucket. The address is the socket
//     peer; X-Forwarded-For is believed only from a trusted proxy, so a
//     client cannot invent addresses to get fresh buckets, nor choose the IP
//     Sentry records for its user.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/time/rate"

	"github.com/relayhq/relay/internal/envelope"
)

// KeyAllower decides whether a public key may send to a project. The tunnel
// asks it for every envelope; the config allowlist (DSNAllowlist) is one
// implementation, and a project registry (static files, managed configs) is
// meant to be another, plugged in through EnableTunnel the same way.
type KeyAllower interface {
	// AllowKey reports whether envelopes for publicKey (32 characters, flags
	// already removed) in projectID are accepted. An error means it cannot
	// tell now; the request is then answered 503 and nothing is stored.
	AllowKey(ctx context.Context, publicKey string, projectID uint64) (bool, error)
}

var _ KeyAllower = (*DSNAllowlist)(nil)

// DSNAllowlist is the key and project pairs of a list of DSNs (the config's
// tunnel.allowed_dsns). The rest of each DSN is ignored: it names where the
// SDK would have sent, and the relay sends only to its upstream.
type DSNAllowlist struct {
	pairs map[keyProject]struct{}
}

type keyProject struct {
	key     string
	project uint64
}

// NewDSNAllowlist parses dsns; an entry that is not a DSN with a 32-character
// public key and a project id is an error naming it by position.
func NewDSNAllowlist(dsns []string) (*DSNAllowlist, error) {
	a := &DSNAllowlist{pairs: make(map[keyProject]struct{}, len(dsns))}
	for i, s := range dsns {
		d, err := envelope.ParseDSN(s)
		if err != nil {
			return nil, fmt.Errorf("ingest: tunnel allowlist entry %d: %w", i+1, err)
		}
		key, err := validatePublicKey(d.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("ingest: tunnel allowlist entry %d: the public key must be 32 characters: %w", i+1, err)
		}
		if key != d.PublicKey {
			return nil, fmt.Errorf("ingest: tunnel allowlist entry %d: the public key must be 32 characters, without flags (%q)", i+1, d.PublicKey)
		}
		a.pairs[keyProject{key, d.ProjectID}] = struct{}{}
	}
	return a, nil
}

// AllowKey implements KeyAllower; it never fails.
func (a *DSNAllowlist) AllowKey(_ context.Context, publicKey string, projectID uint64) (bool, error) {
	_, ok := a.pairs[keyProject{publicKey, projectID}]
	return ok, nil
}

// TunnelConfig configures the tunnel route.
type TunnelConfig struct {
	// Path is the route (exact match after folding slashes), e.g. "/tunnel".
	// It must not lie under /api/.
	Path string
	// PerSecond and Burst are each client address's token bucket; no limit
	// when PerSecond is 0. Burst 0 means PerSecond rounded up (at least 1).
	PerSecond float64
	Burst     int
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// MaxClients bounds the per-client table (memory): it holds at most
	// twice this many buckets. 0 means DefaultTunnelMaxClients.
	MaxClients int
	// Now is the limiter's clock; nil means time.Now.
	Now func() time.Time
}

// DefaultTunnelMaxClients is the default of TunnelConfig.MaxClients: with
// about 150 bytes a bucket, the table stays under 20 MiB.
const DefaultTunnelMaxClients = 1 << 16

// maxForwardedHops bounds how far X-Forwarded-For is walked from the right:
// no real deployment has more proxies than this in front of the relay.
const maxForwardedHops = 16

// Refusals of the tunnel, counted beside the code that refuses.
var (
	droppedTunnelNotAllowed  = metrics.NewCounter(`relay_ingest_rejected_total{reason="tunnel_not_allowed"}`)
	droppedTunnelRateLimited = metrics.NewCounter(`relay_ingest_rejected_total{reason="tunnel_rate_limited"}`)
	droppedTunnelLookup      = metrics.NewCounter(`relay_ingest_rejected_total{reason="tunnel_lookup_failed"}`)
	tunnelClientsReset       = metrics.NewCounter(`relay_ingest_tunnel_client_table_rotations_total`)
)

var (
	// errTunnelNotAllowed is Relay's answer for a key or project it will not
	// take (DiscardReason::ProjectId once the project state is known).
	errTunnelNotAllowed = &apiError{status: http.StatusForbidden,
		detail:  "event submission rejected with_reason: ProjectId",
		causes:  []string{"the tunnel does not accept this DSN's public key and project"},
		dropped: droppedTunnelNotAllowed}
	errTunnelRateLimited = &apiError{status: http.StatusTooManyRequests,
		detail:  "Sentry dropped data due to a quota or internal rate limit being reached. This will not affect your application.",
		causes:  []string{"too many requests from this client address"},
		dropped: droppedTunnelRateLimited}
)

// tunnel is the route's state; fixed once EnableTunnel returns, except the
// limiter's table.
type tunnel struct {
	path    string
	allow   KeyAllower
	trusted []netip.Prefix
	limiter *clientLimiter // nil: no rate limit
	now     func() time.Time
}

// EnableTunnel serves the browser tunnel at cfg.Path, accepting what allow
// accepts. Call it before serving requests.
func (s *Server) EnableTunnel(cfg TunnelConfig, allow KeyAllower) error {
	if allow == nil {
		return errors.New("ingest: tunnel needs a KeyAllower")
	}
	if cfg.Path == "" || cfg.Path[0] != '/' || foldSlashes(cfg.Path) != cfg.Path {
		return fmt.Errorf("ingest: tunnel path %q must start with / and have no empty segment", cfg.Path)
	}
	if rt, _ := matchRoute(cfg.Path); rt != routeOther || strings.HasPrefix(cfg.Path, "/api/") {
		return fmt.Errorf("ingest: tunnel path %q lies under /api/", cfg.Path)
	}
	if cfg.PerSecond < 0 || math.IsNaN(cfg.PerSecond) || math.IsInf(cfg.PerSecond, 0) || cfg.Burst < 0 || cfg.MaxClients < 0 {
		return fmt.Errorf("ingest: tunnel rate limit %v/s burst %d (max clients %d) is not usable", cfg.PerSecond, cfg.Burst, cfg.MaxClients)
	}
	t := &tunnel{path: cfg.Path, allow: allow, now: cfg.Now}
	if t.now == nil {
		t.now = time.Now
	}
	for _, p := range cfg.TrustedProxies {
		t.trusted = append(t.trusted, p.Masked())
	}
	if cfg.PerSecond > 0 {
		burst := cfg.Burst
		if burst == 0 {
			burst = max(1, int(math.Ceil(cfg.PerSecond)))
		}
		maxClients := cfg.MaxClients
		if maxClients == 0 {
			maxClients = DefaultTunnelMaxClients
		}
		t.limiter = newClientLimiter(rate.Limit(cfg.PerSecond), burst, maxClients)
	}
	s.tunnel = t
	return nil
}

// serveTunnel answers the tunnel route: the envelope route's code path
// behind a rate limit, with CORS as on the envelope route.
func (s *Server) serveTunnel(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		s.writePreflight(w)
		s.countRequest(routeTunnel, http.StatusOK)
		return
	default:
		s.writeError(w, r, routeTunnel, errMethodNotAllowed(hdrAllowPost))
		return
	}
	// The limit is taken before the body is read: refusing must stay cheap.
	if l := s.tunnel.limiter; l != nil {
		client, _ := s.tunnel.resolve(r, false)
		if ok, wait := l.take(client, s.tunnel.now()); !ok {
			w.Header()[keyRetryAfter] = []string{strconv.Itoa(int(math.Max(1, math.Ceil(wait.Seconds()))))}
			s.writeError(w, r, routeTunnel, errTunnelRateLimited)
			return
		}
	}
	s.serveIngest(w, r, routeTunnel, "")
}

// admit asks the KeyAllower about the envelope's key and project.
func (t *tunnel) admit(ctx context.Context, publicKey string, projectID uint64) *apiError {
	ok, err := t.allow.AllowKey(ctx, publicKey, projectID)
	if err != nil {
		return &apiError{status: http.StatusServiceUnavailable, detail: "failed to queue envelope",
			causes: []string{"tunnel: cannot check the key: " + err.Error()}, dropped: droppedTunnelLookup, retryAfter: true}
	}
	if !ok {
		return errTunnelNotAllowed
	}
	return nil
}

// clientAddrs returns the client's address and the X-Forwarded-For chain to
// send upstream, which starts with that address: Sentry takes the first
// entry as the user's IP (where the SDK asked for it with {{auto}}).
func (t *tunnel) clientAddrs(r *http.Request) (remote, chain string) {
	client, chain := t.resolve(r, true)
	if !client.IsValid() {
		return peerAndChain(r) // not an IP socket: nothing to resolve
	}
	return client.String(), chain
}

// resolve finds the client: the socket peer, unless the peer is a trusted
// proxy, in which case X-Forwarded-For is walked from the right past trusted
// proxies to the first address that is not one (or the last readable one).
// With wantChain it also returns the chain from the client to the peer.
func (t *tunnel) resolve(r *http.Request, wantChain bool) (netip.Addr, string) {
	peer := parseHop(r.RemoteAddr)
	if !peer.IsValid() || !t.isTrusted(peer) {
		if !wantChain || !peer.IsValid() {
			return peer, ""
		}
		return peer, peer.String()
	}
	xff := strings.Join(r.Header["X-Forwarded-For"], ",")
	hops := [maxForwardedHops]netip.Addr{}
	n := 0
	client := peer
	for rest := xff; n < len(hops); {
		i := strings.LastIndexByte(rest, ',')
		a := parseHop(strings.TrimSpace(rest[i+1:]))
		if !a.IsValid() {
			break // unreadable: the hop to its right stands
		}
		hops[n], n, client = a, n+1, a
		if !t.isTrusted(a) || i < 0 {
			break
		}
		rest = rest[:i]
	}
	if !wantChain {
		return client, ""
	}
	var b strings.Builder
	for i := n - 1; i >= 0; i-- {
		b.WriteString(hops[i].String())
		b.WriteString(", ")
	}
	b.WriteString(peer.String())
	return client, b.String()
}

func (t *tunnel) isTrusted(a netip.Addr) bool {
	for _, p := range t.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop reads an address as a socket peer or a forwarded-for entry gives
// it: "1.2.3.4", "1.2.3.4:5678", "::1", "[::1]:5678"; IPv4-mapped IPv6 is
// read as IPv4. Anything else is the zero Addr.
func parseHop(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap().WithZone("")
		}
	}
	return netip.Addr{}
}

// clientLimiter holds a token bucket per client. The table is bounded by two
// generations: when the current one is full it becomes the previous one and
// the one before is dropped. A bucket in use moves back into the current
// generation, so only clients silent for a whole generation lose their
// bucket — and a dropped bucket comes back full, which is what an idle
// client's bucket would be anyway unless it was idle only briefly. Memory
// stays at most 2×max buckets whatever number of addresses is seen.
type clientLimiter struct {
	limit rate.Limit
	burst int
	max   int

	mu        sync.Mutex
	cur, prev map[netip.Addr]*rate.Limiter
}

func newClientLimiter(limit rate.Limit, burst, maxClients int) *clientLimiter {
	return &clientLimiter{limit: limit, burst: burst, max: maxClients,
		cur: make(map[netip.Addr]*rate.Limiter)}
}

// take takes a token for client at now; when there is none it returns how
// long until there will be.
func (l *clientLimiter) take(client netip.Addr, now time.Time) (bool, time.Duration) {
	k := clientKey(client)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.cur[k]
	if !ok {
		if b, ok = l.prev[k]; ok {
			delete(l.prev, k)
		} else {
			b = rate.NewLimiter(l.limit, l.burst)
		}
		if len(l.cur) >= l.max {
			l.prev, l.cur = l.cur, make(map[netip.Addr]*rate.Limiter, l.max/2)
			tunnelClientsReset.Inc()
		}
		l.cur[k] = b
	}
	res := b.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second // burst < 1 cannot happen (EnableTunnel); refuse rather than panic
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// size is the number of buckets held (both generations).
func (l *clientLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.cur) + len(l.prev)
}

// clientKey is the bucket an address counts against. An IPv6 client
// usually holds a whole /64 and can pick any address in it, so the /64 is
// the client; IPv4 addresses count one by one.
func clientKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, err := a.Prefix(64)
		if err == nil {
			return p.Addr()
		}
	}
	return a
}
