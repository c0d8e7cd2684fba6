package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestTunnelDefaults(t *testing.T) {
	c := mustLoad(t, "")
	if c.Tunnel.Path != "/tunnel" || c.Tunnel.AllowedDSNs != nil || c.Tunnel.RateLimit.Enabled() || c.Tunnel.TrustedProxies != nil {
		t.Fatalf("tunnel defaults = %+v", c.Tunnel)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestTunnelLoad(t *testing.T) {
	c := mustLoad(t, `
tunnel:
  path: /monitoring
  allowed_dsns: ["https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/42"]
  rate_limit: {per_second: 0.5, burst: 3}
  trusted_proxies: [10.0.0.0/8, "::1", 192.168.1.7]
`)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	tu := c.Tunnel
	if tu.Path != "/monitoring" || len(tu.AllowedDSNs) != 1 || tu.RateLimit.PerSecond != 0.5 || tu.RateLimit.EffectiveBurst() != 3 {
		t.Fatalf("tunnel = %+v", tu)
	}
	got, err := tu.TrustedPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("192.168.1.7/32")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("TrustedPrefixes = %v, want %v", got, want)
	}

	// The section survives `config show` and a reload.
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back := mustLoad(t, string(out))
	if !reflect.DeepEqual(back.Tunnel, c.Tunnel) {
		t.Fatalf("round trip: %+v, want %+v\n%s", back.Tunnel, c.Tunnel, out)
	}
}

func TestTunnelBurstDefault(t *testing.T) {
	for _, tt := range []struct {
		perSecond float64
		burst     int
		want      int
	}{{5, 0, 5}, {0.2, 0, 1}, {2.5, 0, 3}, {5, 10, 10}} {
		if got := (TunnelRateLimit{PerSecond: tt.perSecond, Burst: tt.burst}).EffectiveBurst(); got != tt.want {
			t.Errorf("EffectiveBurst(%v, %d) = %d, want %d", tt.perSecond, tt.burst, got, tt.want)
		}
	}
}

func TestTunnelValidate(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"relative path", "tunnel:\n  path: tunnel\n", []string{`F:2: tunnel.path: "tunnel" must be a path starting with /`}},
		{"empty path", "tunnel:\n  path: \"\"\n", []string{`F:2: tunnel.path: "" must be a path starting with /`}},
		{"under /api/", "tunnel:\n  path: /api/tunnel\n", []string{`F:2: tunnel.path: "/api/tunnel" lies under /api/`}},
		{"query", "tunnel:\n  path: /t?x=1\n", []string{`F:2: tunnel.path: "/t?x=1" must be a plain path`}},
		{"dsn without project", "tunnel:\n  allowed_dsns: [\"https://0123456789abcdef0123456789abcdef@h/\"]\n",
			[]string{`F:2: tunnel.allowed_dsns: entry 1: invalid dsn: no project id`}},
		{"dsn with a short key", "tunnel:\n  allowed_dsns: [\"https://0123456789abcdef0123456789abcdef@h/1\", \"https://abc@h/42\"]\n",
			[]string{`F:2: tunnel.allowed_dsns: entry 2: the public key must be 32 characters, got 3`}},
		{"not a dsn", "tunnel:\n  allowed_dsns: [\"0123456789abcdef0123456789abcdef\"]\n",
			[]string{`F:2: tunnel.allowed_dsns: entry 1: invalid dsn`}},
		{"negative rate", "tunnel:\n  rate_limit: {per_second: -1, burst: -2}\n", []string{
			`F:2: tunnel.rate_limit.per_second: -1 must be a positive number, or 0 for no limit`,
			`F:2: tunnel.rate_limit.burst: -2 must not be negative`,
		}},
		{"nan rate", "tunnel:\n  rate_limit: {per_second: NaN}\n", []string{`F:2: tunnel.rate_limit.per_second: NaN must be a positive number`}},
		{"bad proxies", "tunnel:\n  trusted_proxies: [10.0.0.0/33, proxy.local]\n", []string{
			`F:2: tunnel.trusted_proxies: "10.0.0.0/33" is not a CIDR`,
			`F:2: tunnel.trusted_proxies: "proxy.local" is not an IP address or a CIDR`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.yaml)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate = nil")
			}
			lines := strings.Split(strings.ReplaceAll(err.Error(), c.File(), "F"), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(lines), len(tt.want), strings.Join(lines, "\n"))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("problem %d:\n got %s\nwant %s", i, lines[i], w)
				}
			}
		})
	}
}

func TestTunnelRateNotANumber(t *testing.T) {
	_, err := load(t, "tunnel:\n  rate_limit: {per_second: fast}\n")
	if err == nil || !strings.Contains(err.Error(), `tunnel.rate_limit.per_second: expected a number, got "fast"`) {
		t.Fatalf("load = %v", err)
	}
}
