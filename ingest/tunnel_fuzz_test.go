package ingest

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// FuzzTunnelResolve: whatever the peer address and X-Forwarded-For say, the
// client is the peer or an address the header gave, the chain sent upstream
// starts with the client and ends with the peer, and it never holds more
// than maxForwardedHops entries from the header — a huge header costs no
// more than a small one.
func FuzzTunnelResolve(f *testing.F) {
	f.Add("10.0.0.1:5000", "203.0.113.5")
	f.Add("10.0.0.1:5000", "1.1.1.1, 10.0.0.2, 203.0.113.5:80, [fd00::1]:9")
	f.Add("192.0.2.1:1", "203.0.113.5")
	f.Add("[::ffff:10.0.0.1]:1", ",,, ,")
	f.Add("pipe", "10.0.0.1")
	f.Add("10.0.0.1:5000", strings.Repeat("10.9.9.9,", 100))
	tun := &tunnel{trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}
	f.Fuzz(func(t *testing.T, peer, xff string) {
		r := &http.Request{RemoteAddr: peer, Header: http.Header{"X-Forwarded-For": {xff}}}
		client, chain := tun.resolve(r, true)
		p := parseHop(peer)
		if !p.IsValid() {
			if client.IsValid() || chain != "" {
				t.Fatalf("no peer address, yet client %v chain %q", client, chain)
			}
			return
		}
		entries := strings.Split(chain, ", ")
		if entries[0] != client.String() || entries[len(entries)-1] != p.String() {
			t.Fatalf("chain %q for client %v peer %v", chain, client, p)
		}
		if len(entries) > maxForwardedHops+1 {
			t.Fatalf("chain has %d entries", len(entries))
		}
		if !tun.isTrusted(p) && client != p {
			t.Fatalf("untrusted peer %v, yet client %v from the header", p, client)
		}
		if c, _ := tun.resolve(r, false); c != client {
			t.Fatalf("resolve without chain: %v, with: %v", c, client)
		}
	})
}
