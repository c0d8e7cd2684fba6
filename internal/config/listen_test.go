package config

import (
	"strings"
	"testing"
)

func TestValidateJetStreamListen(t *testing.T) {
	tests := []struct {
		name, content, want string // want "" = valid; else the problem, file written as F
	}{
		{"unset", "", ""},
		{"loopback", "jetstream:\n  listen: 127.0.0.1:4222\n", ""},
		{"all interfaces, free port", "jetstream:\n  listen: 0.0.0.0:0\n", ""},
		{"host name", "jetstream:\n  listen: relay-ingest:4222\n", ""},
		{"no host means loopback", "jetstream:\n  listen: :4222\n", ""},
		{"no port", "jetstream:\n  listen: 127.0.0.1\n", `F:2: jetstream.listen: "127.0.0.1" is not host:port`},
		{"bad port", "jetstream:\n  listen: 127.0.0.1:70000\n", `F:2: jetstream.listen: "127.0.0.1:70000": "70000" is not a port number`},
		{"bad host", "jetstream:\n  listen: \"a b:4222\"\n", `F:2: jetstream.listen: "a b:4222": "a b" is not an IP address or host name`},
		{"with an external server", "jetstream:\n  url: nats://n1:4222\n  listen: 127.0.0.1:4222\n", `F:3: jetstream.listen: set together with jetstream.url`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.content)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %q", tt.content)
			}
			if got := strings.ReplaceAll(err.Error(), c.File(), "F"); !strings.HasPrefix(got, tt.want) || strings.Contains(got, "\n") {
				t.Fatalf("Validate =\n%s\nwant one problem starting\n%s", got, tt.want)
			}
		})
	}
}
