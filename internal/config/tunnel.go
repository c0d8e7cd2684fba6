package config

import (
	"fmt"
	"math"
	"net/netip"
	"strings"

	"github.com/relayhq/relay/internal/envelope"
)

// Tunnel is the `tunnel` section: the route a browser SDK's `tunnel` option posts envelopes to
// (no credentials in the request, the DSN in the envelope header). It is not an open proxy: only
// the DSNs listed here are accepted, whatever is sent goes to relay.upstream and nowhere else, and
// each client address gets its own rate limit.
type Tunnel struct {
	// Path is the route, e.g. /tunnel. It must not lie under /api/, where the SDK routes are.
	Path string `yaml:"path"`
	// AllowedDSNs are the DSNs whose public key and project id the tunnel accepts; the rest of a
	// DSN (scheme, host, port, path) is ignored: the relay sends only to relay.upstream. Empty
	// means the tunnel refuses every envelope.
	AllowedDSNs []string `yaml:"allowed_dsns"`
	// RateLimit is the per-client-address token bucket; off when per_second is 0.
	RateLimit TunnelRateLimit `yaml:"rate_limit"`
	// TrustedProxies are the CIDRs (or single addresses) of proxies in front of the relay whose
	// X-Forwarded-For is believed. From any other peer the header is ignored: the client is the
	// socket peer, so a client cannot pick its own address to dodge the rate limit.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// TunnelRateLimit is a token bucket: PerSecond tokens are added each second up to Burst; each
// request takes one.
type TunnelRateLimit struct {
	PerSecond float64 `yaml:"per_second"`
	// Burst is the bucket size; 0 means the ceiling of PerSecond (at least 1).
	Burst int `yaml:"burst"`
}

// Enabled reports whether requests are rate limited.
func (r TunnelRateLimit) Enabled() bool { return r.PerSecond > 0 }

// EffectiveBurst is Burst, or the ceiling of PerSecond (at least 1) when Burst is 0.
func (r TunnelRateLimit) EffectiveBurst() int {
	if r.Burst > 0 {
		return r.Burst
	}
	return max(1, int(math.Ceil(r.PerSecond)))
}

// TrustedPrefixes parses TrustedProxies; a single address is a prefix of its full length.
func (t Tunnel) TrustedPrefixes() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(t.TrustedProxies))
	for _, s := range t.TrustedProxies {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or fd00::/8", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or a CIDR such as 10.0.0.0/8", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// validate adds the tunnel section's problems.
func (t Tunnel) validate(v *validator) {
	switch {
	case t.Path == "" || t.Path[0] != '/':
		v.add("tunnel.path", "%q must be a path starting with /", t.Path)
	case t.Path == "/api" || strings.HasPrefix(t.Path, "/api/"):
		v.add("tunnel.path", "%q lies under /api/, where the SDK routes are; use e.g. /tunnel", t.Path)
	case strings.ContainsAny(t.Path, "?#") || strings.Contains(t.Path, "//"):
		v.add("tunnel.path", "%q must be a plain path (no query, fragment or empty segment)", t.Path)
	}
	for i, s := range t.AllowedDSNs {
		d, err := envelope.ParseDSN(s)
		switch {
		case err != nil:
			v.add("tunnel.allowed_dsns", "entry %d: %v", i+1, err)
		case len(d.PublicKey) != 32:
			v.add("tunnel.allowed_dsns", "entry %d: the public key must be 32 characters, got %d", i+1, len(d.PublicKey))
		case d.ProjectID == 0:
			v.add("tunnel.allowed_dsns", "entry %d: project id 0 is not a project", i+1)
		}
	}
	r := t.RateLimit
	if r.PerSecond < 0 || math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0) {
		v.add("tunnel.rate_limit.per_second", "%v must be a positive number, or 0 for no limit", r.PerSecond)
	}
	if r.Burst < 0 {
		v.add("tunnel.rate_limit.burst", "%d must not be negative (0 means per_second, rounded up)", r.Burst)
	}
	for _, s := range t.TrustedProxies {
		if _, err := parsePrefix(s); err != nil {
			v.add("tunnel.trusted_proxies", "%v", err)
		}
	}
}
