package config

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		content string
		env     []string
		want    []string // problems, exactly, in order; file paths are written as F
	}{
		{"valid proxy", "relay:\n  mode: proxy\n", nil, nil},
		{"port zero picks a free port", "relay:\n  port: 0\n", nil, nil},
		{"upstream with port", "relay:\n  upstream: http://localhost:9000\n", nil, nil},
		{"ipv6 host", "relay:\n  host: \"::1\"\n", nil, nil},
		{"host name", "relay:\n  host: relay.internal\n", nil, nil},
		{"sync always", "jetstream:\n  sync: always\n", nil, nil},
		{"cluster replicas", "jetstream:\n  url: nats://n1:4222, tls://n2:4222\n  replicas: 3\n", nil, nil},
		{"ingest only", "worker:\n  enabled: false\n", nil, nil},
		{"publish groups off", "jetstream:\n  publish_group_max: 1\n", nil, nil},
		{"publish groups at the limit", "jetstream:\n  publish_group_max: 256\n", nil, nil},
		{
			"publish groups out of range",
			"jetstream:\n  publish_group_max: 0\n", nil,
			[]string{`F:2: jetstream.publish_group_max: 0 is not between 1 (publish every envelope alone) and 256`},
		},
		{
			"publish groups over a group's limit",
			"jetstream:\n  publish_group_max: 257\n", nil,
			[]string{`F:2: jetstream.publish_group_max: 257 is not between 1 (publish every envelope alone) and 256`},
		},
		{
			"bad mode",
			"relay:\n  mode: foo\n", nil,
			[]string{`F:2: relay.mode: "foo" is not one of managed, proxy, static`},
		},
		{
			"bad mode from env",
			"", []string{"RELAY_MODE", "capture"},
			[]string{`RELAY_MODE: relay.mode: "capture" is not one of managed, proxy, static`},
		},
		{
			"upstream problems",
			"relay:\n  upstream: ftp://sentry.io/\n", nil,
			[]string{`F:2: relay.upstream: "ftp://sentry.io/" must be an http:// or https:// URL`},
		},
		{
			"upstream without host",
			"relay:\n  upstream: https:///\n", nil,
			[]string{`F:2: relay.upstream: "https:///" has no host`},
		},
		{
			"upstream with path",
			"relay:\n  upstream: https://sentry.io/api/\n", nil,
			[]string{`F:2: relay.upstream: "https://sentry.io/api/" must not have a path or query (the relay adds /api/…; use e.g. https://sentry.io/)`},
		},
		{
			"upstream not a url",
			"relay:\n  upstream: \"http://[::1\"\n", nil,
			[]string{`F:2: relay.upstream: "http://[::1" is not a URL`},
		},
		{
			"upstream bad port",
			"relay:\n  upstream: http://x:99999/\n", nil,
			[]string{`F:2: relay.upstream: "http://x:99999/" has a bad port`},
		},
		{
			"empty upstream from env is ignored, empty in file is not",
			"relay:\n  upstream: \"\"\n", []string{"RELAY_UPSTREAM_URL", ""},
			[]string{`F:2: relay.upstream: empty; expected a URL such as https://sentry.io/`},
		},
		{
			"host and ports",
			"relay:\n  host: \"not a host\"\n  port: 70000\n  tls_port: -1\n", nil,
			[]string{
				`F:2: relay.host: "not a host" is not an IP address or host name`,
				`F:3: relay.port: 70000 is not a port number (0-65535; 0 picks a free port)`,
				`F:4: relay.tls_port: -1 is not a port number`,
				`F:4: relay.tls_port: set, but neither relay.tls_identity_path (the PKCS #12 archive) nor relay.tls_cert_path/tls_key_path (PEM) is`,
			},
		},
		{
			"tls pem",
			"relay:\n  tls_port: 3443\n  tls_cert_path: c.pem\n  tls_key_path: k.pem\n", nil,
			nil,
		},
		{
			"tls pem without key",
			"relay:\n  tls_port: 3443\n  tls_cert_path: c.pem\n", nil,
			[]string{`F:2: relay.tls_port: relay.tls_cert_path and relay.tls_key_path go together: both are needed`},
		},
		{
			"tls two identities",
			"relay:\n  tls_port: 3443\n  tls_identity_path: x.p12\n  tls_cert_path: c.pem\n  tls_key_path: k.pem\n", nil,
			[]string{`F:2: relay.tls_port: set with both relay.tls_identity_path and relay.tls_cert_path/tls_key_path: choose one identity`},
		},
		{
			"tls port clash",
			"relay:\n  port: 3000\n  tls_port: 3000\n  tls_identity_path: x.p12\n", nil,
			[]string{`F:3: relay.tls_port: 3000 is also relay.port`},
		},
		{
			"http",
			"http:\n  timeout: 0\n  connection_timeout: 0s\n  max_retry_interval: 1s\n  retry_delay: 2s\n  encoding: lz4\n", nil,
			[]string{
				`F:2: http.timeout: must be longer than zero`,
				`F:3: http.connection_timeout: must be longer than zero`,
				`F:5: http.retry_delay: 2s is longer than http.max_retry_interval (1s)`,
				`F:6: http.encoding: "lz4" is not one of identity, deflate, gzip, br, zstd`,
			},
		},
		{"auth interval zero registers once", "http:\n  auth_interval: 0\n", nil, nil},
		{"auth ready always", "auth:\n  ready: always\n", nil, nil},
		{"spool hand back never", "spool:\n  hand_back: never\n", nil, nil},
		{
			"spool hand back",
			"spool:\n  hand_back: yes\n", nil,
			[]string{`F:2: spool.hand_back: "yes" is not one of auto, always, never`},
		},
		{
			"auth",
			"http:\n  auth_interval: 500ms\nauth:\n  ready: sometimes\n", nil,
			[]string{
				`F:2: http.auth_interval: 500ms must be 0 (register once) or at least 1s`,
				`F:4: auth.ready: "sometimes" is not one of authenticated, always`,
			},
		},
		{
			"limits",
			"limits:\n  max_envelope_size: 0\n  max_attachment_count: 0\n  max_concurrent_requests: -1\n  shutdown_timeout: 0\n", nil,
			[]string{
				`F:4: limits.max_concurrent_requests: -1 must be at least 1`,
				`F:2: limits.max_envelope_size: must be larger than zero`,
				`F:3: limits.max_attachment_count: 0 must be at least 1`,
				`F:5: limits.shutdown_timeout: must be longer than zero`,
			},
		},
		{
			"logging",
			"logging:\n  level: verbose\n  format: xml\n", nil,
			[]string{
				`F:2: logging.level: "verbose" is not one of off, error, warn, info, debug, trace`,
				`F:3: logging.format: "xml" is not one of auto, pretty, simplified, json`,
			},
		},
		{
			"log level from env",
			"", []string{"RELAY_LOG_LEVEL", "loud"},
			[]string{`RELAY_LOG_LEVEL: logging.level: "loud" is not one of off, error, warn, info, debug, trace`},
		},
		{
			"jetstream",
			"jetstream:\n  url: http://nats:4222\n  stream: a.b\n  replicas: 7\n  max_bytes: 0\n  sync: sometimes\n  ack_wait: 2s\n", nil,
			[]string{
				`F:2: jetstream.url: "http://nats:4222" has scheme "http"; expected nats://, tls://, ws:// or wss://`,
				`F:3: jetstream.stream: "a.b" may not contain whitespace, control characters or any of . * > / \`,
				`F:4: jetstream.replicas: 7 is not between 1 and 5 (JetStream's limit)`,
				`F:5: jetstream.max_bytes: must be larger than zero`,
				`F:6: jetstream.sync: "sometimes" is not "always", a positive duration such as 1s, or empty for the NATS default (2m)`,
				`F:7: jetstream.ack_wait: 2s must be longer than http.timeout (5s)`,
			},
		},
		{
			"jetstream url not a url",
			"jetstream:\n  url: nats-server\n  stream: \"\"\n", nil,
			[]string{
				`F:2: jetstream.url: "nats-server" is not a NATS URL`,
				`F:3: jetstream.stream: empty`,
			},
		},
		{
			"embedded replicas",
			"jetstream:\n  replicas: 3\n", nil,
			[]string{`F:2: jetstream.replicas: 3 needs a NATS cluster (set jetstream.url); the embedded server keeps one copy`},
		},
		{
			"sync zero",
			"jetstream:\n  sync: 0\n", nil,
			[]string{`F:2: jetstream.sync: "0s" is not "always"`},
		},
		{
			"spool and worker",
			"spool:\n  path: \"\"\n  max_disk_size: 0\n  max_batch: 0\nworker:\n  concurrency: 0\n", nil,
			[]string{
				`F:2: spool.path: empty`,
				`F:3: spool.max_disk_size: must be larger than zero`,
				`F:4: spool.max_batch: 0 must be at least 1`,
				`F:6: worker.concurrency: 0 must be at least 1`,
			},
		},
		{
			"nothing enabled",
			"worker:\n  enabled: false\ningest:\n  enabled: false\n", nil,
			[]string{`F:4: ingest.enabled: false, and so is worker.enabled: this process would do nothing`},
		},
		{
			"pii config not a mapping",
			"scrub:\n  pii_config: [1]\n", nil,
			[]string{`F:2: scrub.pii_config: expected a mapping in Sentry's piiConfig shape (rules, applications), got a list`},
		},
		{
			"pii config without a JSON form",
			"scrub:\n  pii_config:\n    rules: .inf\n", nil,
			[]string{`F:2: scrub.pii_config: line 3: .inf has no JSON form`},
		},
		{
			// Well-formed, but the rule does not compile: refused before anything starts
			// (and by a SIGHUP reload), with the line of the key.
			"pii config rule that does not compile",
			"logging:\n  level: debug\nscrub:\n  pii_config:\n    rules:\n      r:\n        type: pattern\n        redaction:\n          method: remove\n", nil,
			[]string{"F:4: scrub.pii_config: scrub: piiConfig: rule \"r\": missing field `pattern`"},
		},
		{
			"pii config selector that does not parse",
			"scrub:\n  pii_config:\n    applications:\n      \"$string &&\": [\"@ip\"]\n", nil,
			[]string{`F:2: scrub.pii_config: scrub: piiConfig: applications: invalid selector "$string &&"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.content, tt.env...)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Validate = %v, want *Error", err)
			}
			got := strings.ReplaceAll(err.Error(), c.File(), "F")
			lines := strings.Split(got, "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(lines), len(tt.want), got)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("problem %d:\n got %s\nwant %s", i, lines[i], w)
				}
			}
		})
	}
}

func TestValidateDefaultValueNamesTheFile(t *testing.T) {
	c := mustLoad(t, "http:\n  timeout: 1m\n")
	err := c.Validate()
	// ack_wait keeps its default (30s) but is now too short; the message points at the file.
	want := c.File() + ": jetstream.ack_wait: 30s must be longer than http.timeout (1m0s)"
	if err == nil || err.Error() != want {
		t.Fatalf("Validate = %v, want %s", err, want)
	}
}

func TestHandBackOnShutdown(t *testing.T) {
	for _, tc := range []struct {
		handBack, url string
		want          bool
	}{
		{HandBackAuto, "", false},
		{HandBackAuto, "nats://n1:4222", true},
		{HandBackAlways, "", true},
		{HandBackNever, "nats://n1:4222", false},
	} {
		c := Default()
		c.Spool.HandBack, c.JetStream.URL = tc.handBack, tc.url
		if got := c.HandBackOnShutdown(); got != tc.want {
			t.Errorf("hand_back %s with jetstream.url %q: %v, want %v", tc.handBack, tc.url, got, tc.want)
		}
	}
}
