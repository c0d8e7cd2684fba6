package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

const unlistedKey = "fedcba9876543210fedcba9876543210"

// tunnelEnvelope is what @sentry/browser posts to its tunnel: no auth in the
// request, the DSN in the envelope header.
func tunnelEnvelope(dsn string) []byte {
	payload := `{"message":"from the browser"}`
	return []byte(fmt.Sprintf(`{"event_id":"%s","dsn":"%s","sdk":{"name":"sentry.javascript.browser"}}`, testEventID, dsn) +
		"\n" + fmt.Sprintf(`{"type":"event","length":%d}`, len(payload)) + "\n" + payload + "\n")
}

// fakeClock is the limiter's clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTunnelServer(t *testing.T, cfg Config, tc TunnelConfig, allow KeyAllower) (*Server, *fakePublisher, *httptest.Server) {
	t.Helper()
	pub := &fakePublisher{}
	s := New(cfg, pub, nil, testLogger(t))
	if tc.Path == "" {
		tc.Path = "/tunnel"
	}
	if err := s.EnableTunnel(tc, allow); err != nil {
		t.Fatal(err)
	}
	return s, pub, startServer(t, s)
}

func mustAllowlist(t *testing.T, dsns ...string) *DSNAllowlist {
	t.Helper()
	a, err := NewDSNAllowlist(dsns)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestTunnelAllowlist: only the listed key + project pairs get in, whatever
// host the DSN names; a refusal is Relay's 403 with CORS headers, and
// nothing is published.
func TestTunnelAllowlist(t *testing.T) {
	allow := mustAllowlist(t, "https://"+testKey+"@o1.ingest.sentry.io/42")
	_, pub, ts := newTunnelServer(t, testConfig(), TunnelConfig{}, allow)

	tests := []struct {
		name    string
		path    string
		dsn     string
		status  int
		detail  string
		project uint64
	}{
		{name: "allowed", dsn: "https://" + testKey + "@o1.ingest.sentry.io/42", status: 200, project: 42},
		{name: "allowed, other host: the host is ignored", dsn: "http://" + testKey + "@169.254.169.254:8080/42", status: 200, project: 42},
		{name: "allowed, folded slashes", path: "//tunnel", dsn: "https://" + testKey + "@o1.ingest.sentry.io/42", status: 200, project: 42},
		{name: "unlisted key", dsn: "https://" + unlistedKey + "@o1.ingest.sentry.io/42", status: 403, detail: "event submission rejected with_reason: ProjectId"},
		{name: "listed key, unlisted project", dsn: "https://" + testKey + "@o1.ingest.sentry.io/43", status: 403, detail: "event submission rejected with_reason: ProjectId"},
		{name: "no dsn", dsn: "", status: 401, detail: "bad envelope authentication header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(pub.messages())
			body := tunnelEnvelope(tt.dsn)
			if tt.dsn == "" {
				body = eventEnvelope(testEventID, `{}`)
			}
			path := tt.path
			if path == "" {
				path = "/tunnel"
			}
			res := do(t, "POST", ts.URL+path, hdr("Origin", "http://app.example", "Content-Type", "text/plain;charset=UTF-8"), body, false)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			assertCommonHeaders(t, res)
			if got := res.header.Get("Access-Control-Allow-Origin"); got != "*" {
				t.Errorf("Access-Control-Allow-Origin = %q: the browser could not read the answer", got)
			}
			msgs := pub.messages()
			if tt.status != 200 {
				if e := res.errorBody(t); e.Detail != tt.detail {
					t.Errorf("detail %q, want %q", e.Detail, tt.detail)
				}
				if len(msgs) != before {
					t.Fatalf("a refused envelope was published")
				}
				return
			}
			if string(res.body) != `{"id":"`+testEventID+`"}` {
				t.Errorf("answer %s", res.body)
			}
			if len(msgs) != before+1 {
				t.Fatalf("%d messages published, want 1", len(msgs)-before)
			}
			m := msgs[len(msgs)-1]
			if m.ProjectID != tt.project || m.PublicKey != testKey || m.Origin != "http://app.example" || !bytes.Equal(m.Envelope, body) {
				t.Fatalf("published %+v", m)
			}
		})
	}

	// Preflight and other methods, as on the envelope route.
	assertPreflight(t, do(t, "OPTIONS", ts.URL+"/tunnel", hdr("Origin", "http://app.example", "Access-Control-Request-Method", "POST"), nil, false))
	if res := do(t, "GET", ts.URL+"/tunnel", nil, nil, false); res.status != 405 || res.header.Get("Allow") != "POST, OPTIONS" {
		t.Fatalf("GET: %d Allow %q", res.status, res.header.Get("Allow"))
	}
	// Other paths are not the tunnel.
	if res := do(t, "POST", ts.URL+"/tunnel/", nil, tunnelEnvelope("https://"+testKey+"@h/42"), false); res.status != 404 {
		t.Fatalf("/tunnel/: %d", res.status)
	}
}

// TestTunnelUsesEnvelopeLimits: the tunnel is the envelope route's code path:
// its body bound is max_envelope_size (not the store route's event size),
// its item limits apply, and a shutting-down relay answers 503.
func TestTunnelUsesEnvelopeLimits(t *testing.T) {
	cfg := testConfig()
	cfg.MaxEnvelopeSize = 4 << 10
	cfg.MaxEventSize = 256
	cfg.Limits.MaxEventSize = 2 << 10
	allow := mustAllowlist(t, "https://"+testKey+"@h/42")
	s, pub, ts := newTunnelServer(t, cfg, TunnelConfig{}, allow)
	dsn := "https://" + testKey + "@h/42"

	withPayload := func(n int) []byte {
		payload := `{"message":"` + strings.Repeat("x", n) + `"}`
		return []byte(`{"dsn":"` + dsn + `"}` + "\n" + fmt.Sprintf(`{"type":"event","length":%d}`, len(payload)) + "\n" + payload + "\n")
	}
	if res := do(t, "POST", ts.URL+"/tunnel", nil, withPayload(1000), false); res.status != 200 {
		t.Fatalf("1 KB event (over max_event_size of the store route): %d %s", res.status, res.body)
	}
	if res := do(t, "POST", ts.URL+"/tunnel", nil, withPayload(3000), false); res.status != 413 {
		t.Fatalf("3 KB event item: %d %s", res.status, res.body)
	}
	if res := do(t, "POST", ts.URL+"/tunnel", nil, withPayload(5000), true); res.status != 413 {
		t.Fatalf("5 KB body: %d %s", res.status, res.body)
	}
	s.StartDraining()
	if res := do(t, "POST", ts.URL+"/tunnel", nil, withPayload(10), false); res.status != 503 {
		t.Fatalf("draining: %d %s", res.status, res.body)
	}
	if n := len(pub.messages()); n != 1 {
		t.Fatalf("%d messages published, want 1", n)
	}
}

type failingAllower struct{ err error }

func (f failingAllower) AllowKey(context.Context, string, uint64) (bool, error) { return false, f.err }

// TestTunnelAllowerError: when the key cannot be checked, the answer is 503
// with Retry-After (the SDK may retry), never a 200, and nothing is stored.
func TestTunnelAllowerError(t *testing.T) {
	_, pub, ts := newTunnelServer(t, testConfig(), TunnelConfig{}, failingAllower{errors.New("project source unreachable")})
	res := do(t, "POST", ts.URL+"/tunnel", nil, tunnelEnvelope("https://"+testKey+"@h/42"), false)
	if res.status != 503 || res.header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q: %s", res.status, res.header.Get("Retry-After"), res.body)
	}
	if len(pub.messages()) != 0 {
		t.Fatal("published although the key could not be checked")
	}
}

// TestTunnelRateLimit: a client over its bucket gets 429 with Retry-After;
// an X-Forwarded-For from an untrusted peer changes nothing, however it
// varies; the bucket refills with the clock.
func TestTunnelRateLimit(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	allow := mustAllowlist(t, "https://"+testKey+"@h/42")
	_, pub, ts := newTunnelServer(t, testConfig(), TunnelConfig{PerSecond: 0.5, Burst: 2, Now: clock.Now}, allow)
	body := tunnelEnvelope("https://" + testKey + "@h/42")
	post := func(xff string) response {
		h := hdr("Origin", "http://app.example")
		if xff != "" {
			h.Set("X-Forwarded-For", xff)
		}
		return do(t, "POST", ts.URL+"/tunnel", h, body, false)
	}

	for i := range 2 {
		if res := post(""); res.status != 200 {
			t.Fatalf("request %d within the burst: %d %s", i, res.status, res.body)
		}
	}
	for i, xff := range []string{"", "203.0.113.1", "198.51.100.7, 203.0.113.2", "2001:db8::1"} {
		res := post(xff)
		if res.status != 429 {
			t.Fatalf("request over the limit with X-Forwarded-For %q (%d): %d %s", xff, i, res.status, res.body)
		}
		if got := res.header.Get("Retry-After"); got != "2" {
			t.Errorf("Retry-After = %q, want 2 (one token at 0.5/s)", got)
		}
		if got := res.header.Get("Access-Control-Allow-Origin"); got != "*" {
			t.Errorf("429 without CORS headers: the SDK cannot read Retry-After")
		}
		if e := res.errorBody(t); !strings.HasPrefix(e.Detail, "Sentry dropped data due to a quota or internal rate limit") {
			t.Errorf("detail %q", e.Detail)
		}
	}
	clock.Add(2 * time.Second)
	if res := post(""); res.status != 200 {
		t.Fatalf("after the bucket refilled: %d %s", res.status, res.body)
	}
	if res := post(""); res.status != 429 {
		t.Fatalf("the refill gave more than one token: %d", res.status)
	}
	if n := len(pub.messages()); n != 3 {
		t.Fatalf("%d published, want 3", n)
	}
}

// TestTunnelRateLimitBehindTrustedProxy: behind a trusted proxy every client
// has its own bucket, keyed by the address the proxy appended; and what
// reaches the stream names that client first.
func TestTunnelRateLimitBehindTrustedProxy(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	allow := mustAllowlist(t, "https://"+testKey+"@h/42")
	tc := TunnelConfig{PerSecond: 1, Burst: 1, Now: clock.Now, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	_, pub, ts := newTunnelServer(t, testConfig(), tc, allow)
	body := tunnelEnvelope("https://" + testKey + "@h/42")
	post := func(xff string) int {
		return do(t, "POST", ts.URL+"/tunnel", hdr("X-Forwarded-For", xff), body, false).status
	}
	if st := post("203.0.113.1"); st != 200 {
		t.Fatalf("client 1: %d", st)
	}
	if st := post("203.0.113.2"); st != 200 {
		t.Fatalf("client 2 shares client 1's bucket: %d", st)
	}
	// Client 1 again, with a forged entry to the left of what the proxy appended.
	if st := post("198.51.100.9, 203.0.113.1"); st != 429 {
		t.Fatalf("client 1 dodged its limit with a forged X-Forwarded-For: %d", st)
	}
	msgs := pub.messages()
	if m := msgs[0]; m.RemoteAddr != "203.0.113.1" || m.ForwardedFor != "203.0.113.1, 127.0.0.1" {
		t.Fatalf("client 1 recorded as %q / %q", m.RemoteAddr, m.ForwardedFor)
	}
}

// TestTunnelRecordsClientAddress: the address sent upstream (X-Forwarded-For,
// whose first entry Sentry uses for {{auto}}) is the resolved client, so a
// browser cannot put someone else's address on its events.
func TestTunnelRecordsClientAddress(t *testing.T) {
	allow := mustAllowlist(t, "https://"+testKey+"@h/42")
	_, pub, ts := newTunnelServer(t, testConfig(), TunnelConfig{}, allow)
	res := do(t, "POST", ts.URL+"/tunnel", hdr("X-Forwarded-For", "198.51.100.9"), tunnelEnvelope("https://"+testKey+"@h/42"), false)
	if res.status != 200 {
		t.Fatalf("%d %s", res.status, res.body)
	}
	if m := pub.messages()[0]; m.RemoteAddr != "127.0.0.1" || m.ForwardedFor != "127.0.0.1" {
		t.Fatalf("recorded %q / %q; the forged address must not reach Sentry", m.RemoteAddr, m.ForwardedFor)
	}
}

func TestTunnelResolve(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	many := strings.TrimSuffix(strings.Repeat("10.0.0.9, ", 40), ", ")
	tests := []struct {
		name, peer string
		xff        []string
		client     string
		chain      string
	}{
		{"untrusted peer, no header", "192.0.2.1:5000", nil, "192.0.2.1", "192.0.2.1"},
		{"untrusted peer, header ignored", "192.0.2.1:5000", []string{"203.0.113.5"}, "192.0.2.1", "192.0.2.1"},
		{"trusted peer, no header", "10.1.1.1:5000", nil, "10.1.1.1", "10.1.1.1"},
		{"trusted peer", "10.1.1.1:5000", []string{"203.0.113.5"}, "203.0.113.5", "203.0.113.5, 10.1.1.1"},
		{"trusted chain", "10.1.1.1:5000", []string{"203.0.113.5, 10.2.2.2"}, "203.0.113.5", "203.0.113.5, 10.2.2.2, 10.1.1.1"},
		{"forged entries left of the client are dropped", "10.1.1.1:5000", []string{"1.1.1.1, 8.8.8.8, 203.0.113.5"}, "203.0.113.5", "203.0.113.5, 10.1.1.1"},
		{"two header lines", "10.1.1.1:5000", []string{"203.0.113.5", "10.2.2.2"}, "203.0.113.5", "203.0.113.5, 10.2.2.2, 10.1.1.1"},
		{"garbage stops the walk", "10.1.1.1:5000", []string{"203.0.113.5, unknown, 10.2.2.2"}, "10.2.2.2", "10.2.2.2, 10.1.1.1"},
		{"garbage right away", "10.1.1.1:5000", []string{"<script>"}, "10.1.1.1", "10.1.1.1"},
		{"entries with ports and spaces", "10.1.1.1:5000", []string{" 203.0.113.5:443 ,[fd00::2]:80"}, "203.0.113.5", "203.0.113.5, fd00::2, 10.1.1.1"},
		{"ipv6 peer and client", "[fd00::1]:5000", []string{"2001:db8::7"}, "2001:db8::7", "2001:db8::7, fd00::1"},
		{"mapped ipv4 peer", "[::ffff:10.1.1.1]:5000", []string{"203.0.113.5"}, "203.0.113.5", "203.0.113.5, 10.1.1.1"},
		{"all trusted: the leftmost", "10.1.1.1:5000", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3", "10.3.3.3, 10.2.2.2, 10.1.1.1"},
		{"walk is bounded", "10.1.1.1:5000", []string{"203.0.113.5, " + many}, "10.0.0.9", strings.Repeat("10.0.0.9, ", maxForwardedHops) + "10.1.1.1"},
	}
	tun := &tunnel{trusted: trusted}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/tunnel", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			client, chain := tun.resolve(r, true)
			if client.String() != tt.client || chain != tt.chain {
				t.Fatalf("resolve = %s, %q; want %s, %q", client, chain, tt.client, tt.chain)
			}
			if c, _ := tun.resolve(r, false); c != client {
				t.Fatalf("resolve without chain = %s", c)
			}
		})
	}
}

// TestClientLimiterBounded: however many addresses are seen, the table
// holds at most two generations; a client in use keeps its (empty) bucket
// across rotations; the addresses of one IPv6 /64 share one bucket.
func TestClientLimiterBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newClientLimiter(1, 1, 8)
	busy := netip.MustParseAddr("192.0.2.1")
	if ok, _ := l.take(busy, now); !ok {
		t.Fatal("first request refused")
	}
	for i := range 10_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.take(a, now)
		if i%4 == 0 {
			if ok, _ := l.take(busy, now); ok {
				t.Fatalf("after %d other clients the busy client got a fresh bucket", i)
			}
		}
		if n := l.size(); n > 16 {
			t.Fatalf("table holds %d buckets, bound is 16", n)
		}
	}

	v6 := newClientLimiter(1, 1, 8)
	if ok, _ := v6.take(netip.MustParseAddr("2001:db8:1:2::1"), now); !ok {
		t.Fatal("first v6 request refused")
	}
	if ok, _ := v6.take(netip.MustParseAddr("2001:db8:1:2:ffff::9"), now); ok {
		t.Fatal("another address of the same /64 got its own bucket")
	}
	if ok, _ := v6.take(netip.MustParseAddr("2001:db8:1:3::1"), now); !ok {
		t.Fatal("another /64 shares the bucket")
	}
}

func TestNewDSNAllowlist(t *testing.T) {
	for _, tt := range []struct {
		dsns []string
		err  string
	}{
		{[]string{"https://" + testKey + "@h/1", "http://" + unlistedKey + ":secret@h:9000/sentry/2"}, ""},
		{[]string{"https://" + testKey + "@h/1", "nope"}, "entry 2"},
		{[]string{"https://abc@h/1"}, "32 characters"},
		{[]string{"https://" + testKey + ".no-cache@h/1"}, "32 characters"},
	} {
		_, err := NewDSNAllowlist(tt.dsns)
		if (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("NewDSNAllowlist(%q) = %v, want error containing %q", tt.dsns, err, tt.err)
		}
	}
	a := mustAllowlist(t, "http://"+unlistedKey+":secret@h:9000/sentry/2")
	if ok, _ := a.AllowKey(context.Background(), unlistedKey, 2); !ok {
		t.Error("listed pair refused")
	}
	if ok, _ := a.AllowKey(context.Background(), unlistedKey, 1); ok {
		t.Error("unlisted project allowed")
	}
}

func TestEnableTunnelRefusesBadConfig(t *testing.T) {
	allow := mustAllowlist(t)
	for _, tc := range []TunnelConfig{
		{Path: ""},
		{Path: "tunnel"},
		{Path: "/api/42/envelope/"},
		{Path: "/api/tunnel"},
		{Path: "/a//b"},
		{Path: "/tunnel", PerSecond: -1},
		{Path: "/tunnel", PerSecond: 1, Burst: -1},
	} {
		s := New(testConfig(), &fakePublisher{}, nil, testLogger(t))
		if err := s.EnableTunnel(tc, allow); err == nil {
			t.Errorf("EnableTunnel(%+v) = nil", tc)
		}
	}
	if err := New(testConfig(), &fakePublisher{}, nil, testLogger(t)).EnableTunnel(TunnelConfig{Path: "/tunnel"}, nil); err == nil {
		t.Error("EnableTunnel without an allower = nil")
	}
}
