package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Validate checks the meaning of every value and returns nil or one *Error listing all
// problems, each as "<where>: <key>: <what is wrong>", where <where> is the file and line,
// the environment variable or the flag the value came from.
func (c *Config) Validate() error {
	v := &validator{c: c}

	// relay
	if !slices.Contains(Modes, c.Relay.Mode) {
		v.add("relay.mode", "%q is not one of %s", c.Relay.Mode, joinModes())
	}
	if msg := checkUpstream(c.Relay.Upstream); msg != "" {
		v.add("relay.upstream", "%s", msg)
	}
	if msg := checkHost(c.Relay.Host); msg != "" {
		v.add("relay.host", "%s", msg)
	}
	v.port("relay.port", c.Relay.Port)
	if c.Relay.TLSPort != 0 {
		v.port("relay.tls_port", c.Relay.TLSPort)
		if c.Relay.TLSPort == c.Relay.Port {
			v.add("relay.tls_port", "%d is also relay.port", c.Relay.TLSPort)
		}
		pem := c.Relay.TLSCertPath != "" || c.Relay.TLSKeyPath != ""
		switch {
		case c.Relay.TLSIdentityPath != "" && pem:
			v.add("relay.tls_port", "set with both relay.tls_identity_path and relay.tls_cert_path/tls_key_path: choose one identity")
		case pem && (c.Relay.TLSCertPath == "" || c.Relay.TLSKeyPath == ""):
			v.add("relay.tls_port", "relay.tls_cert_path and relay.tls_key_path go together: both are needed")
		case c.Relay.TLSIdentityPath == "" && !pem:
			v.add("relay.tls_port", "set, but neither relay.tls_identity_path (the PKCS #12 archive) nor relay.tls_cert_path/tls_key_path (PEM) is")
		}
	}

	// http
	v.positive("http.timeout", c.HTTP.Timeout)
	v.positive("http.connection_timeout", c.HTTP.ConnectionTimeout)
	v.positive("http.max_retry_interval", c.HTTP.MaxRetryInterval)
	v.positive("http.retry_delay", c.HTTP.RetryDelay)
	if c.HTTP.RetryDelay > c.HTTP.MaxRetryInterval && c.HTTP.MaxRetryInterval > 0 {
		v.add("http.retry_delay", "%s is longer than http.max_retry_interval (%s)", c.HTTP.RetryDelay, c.HTTP.MaxRetryInterval)
	}
	if !slices.Contains(Encodings, c.HTTP.Encoding) {
		v.add("http.encoding", "%q is not one of %s", c.HTTP.Encoding, strings.Join(Encodings, ", "))
	}
	// Each registration is two signed requests; sub-second renewal would only load the
	// upstream. (Negative durations are refused when the file is read.)
	if a := c.HTTP.AuthInterval; a < 0 || (a > 0 && a < time.Second) {
		v.add("http.auth_interval", "%s must be 0 (register once) or at least 1s", a)
	}

	// limits
	l := &c.Limits
	v.count("limits.max_concurrent_requests", l.MaxConcurrentRequests)
	for _, s := range []struct {
		key  string
		size ByteSize
	}{
		{"limits.max_envelope_size", l.MaxEnvelopeSize},
		{"limits.max_event_size", l.MaxEventSize},
		{"limits.max_attachment_size", l.MaxAttachmentSize},
		{"limits.max_attachments_size", l.MaxAttachmentsSize},
		{"limits.max_replay_compressed_size", l.MaxReplayCompressedSize},
		{"limits.max_replay_uncompressed_size", l.MaxReplayUncompressedSize},
		{"limits.max_sessions_size", l.MaxSessionsSize},
		{"limits.max_client_reports_size", l.MaxClientReportsSize},
		{"limits.max_check_in_size", l.MaxCheckInSize},
		{"limits.max_profile_size", l.MaxProfileSize},
		{"limits.max_log_size", l.MaxLogSize},
		{"limits.max_trace_metric_size", l.MaxTraceMetricSize},
		{"limits.max_span_size", l.MaxSpanSize},
		{"limits.max_container_size", l.MaxContainerSize},
		{"limits.max_statsd_size", l.MaxStatsdSize},
		{"limits.max_metric_buckets_size", l.MaxMetricBucketsSize},
		{"limits.max_api_payload_size", l.MaxAPIPayloadSize},
		{"limits.max_api_file_upload_size", l.MaxAPIFileUploadSize},
		{"limits.max_api_chunk_upload_size", l.MaxAPIChunkUploadSize},
	} {
		v.size(s.key, s.size)
	}
	v.count("limits.max_attachment_count", l.MaxAttachmentCount)
	v.count("limits.max_session_count", l.MaxSessionCount)
	v.count("limits.max_client_reports_count", l.MaxClientReportsCount)
	v.count("limits.max_standalone_span_count", l.MaxStandaloneSpanCount)
	v.positive("limits.shutdown_timeout", l.ShutdownTimeout)

	// logging
	if !slices.Contains(LogLevels, c.Logging.Level) {
		v.add("logging.level", "%q is not one of %s", c.Logging.Level, strings.Join(LogLevels, ", "))
	}
	if !slices.Contains(LogFormats, c.Logging.Format) {
		v.add("logging.format", "%q is not one of %s", c.Logging.Format, strings.Join(LogFormats, ", "))
	}

	// jetstream
	j := &c.JetStream
	if msg := checkNATSURL(j.URL); msg != "" {
		v.add("jetstream.url", "%s", msg)
	}
	if msg := checkStreamName(j.Stream); msg != "" {
		v.add("jetstream.stream", "%s", msg)
	}
	switch {
	case j.Replicas < 1 || j.Replicas > 5:
		v.add("jetstream.replicas", "%d is not between 1 and 5 (JetStream's limit)", j.Replicas)
	case j.Replicas > 1 && j.Embedded():
		v.add("jetstream.replicas", "%d needs a NATS cluster (set jetstream.url); the embedded server keeps one copy", j.Replicas)
	}
	v.size("jetstream.max_bytes", j.MaxBytes)
	if msg := checkSync(j.Sync); msg != "" {
		v.add("jetstream.sync", "%s", msg)
	}
	v.positive("jetstream.ack_wait", j.AckWait)
	if j.AckWait > 0 && c.HTTP.Timeout > 0 && j.AckWait <= c.HTTP.Timeout {
		// A message whose upstream request may legitimately take http.timeout would be
		// redelivered (and sent twice) while still in flight.
		v.add("jetstream.ack_wait", "%s must be longer than http.timeout (%s)", j.AckWait, c.HTTP.Timeout)
	}
	if j.PublishGroupMax < 1 || j.PublishGroupMax > MaxPublishGroup {
		v.add("jetstream.publish_group_max", "%d is not between 1 (publish every envelope alone) and %d", j.PublishGroupMax, MaxPublishGroup)
	}
	v.validateNATSAuth(j)
	if msg := checkListen(j); msg != "" {
		v.add("jetstream.listen", "%s", msg)
	}
	if j.Embedded() && j.StoreDir == "" {
		v.add("jetstream.store_dir", "empty; the embedded server needs a directory")
	}

	// spool
	if c.Spool.Path == "" {
		v.add("spool.path", "empty")
	}
	v.size("spool.max_disk_size", c.Spool.MaxDiskSize)
	v.count("spool.max_batch", c.Spool.MaxBatch)
	v.positive("spool.max_envelope_delay", c.Spool.MaxEnvelopeDelay)
	v.size("spool.max_dead_size", c.Spool.MaxDeadSize)
	v.count("spool.max_dead_count", c.Spool.MaxDeadCount)
	if h := c.Spool.HandBack; h != HandBackAuto && h != HandBackAlways && h != HandBackNever {
		v.add("spool.hand_back", "%q is not one of %s, %s, %s", h, HandBackAuto, HandBackAlways, HandBackNever)
	}

	// worker, ingest
	v.count("worker.concurrency", c.Worker.Concurrency)
	if !c.Worker.Enabled && !c.Ingest.Enabled {
		v.add("ingest.enabled", "false, and so is worker.enabled: this process would do nothing")
	}

	// auth
	if r := c.Auth.Ready; r != AuthReadyAuthenticated && r != AuthReadyAlways {
		v.add("auth.ready", "%q is not one of %s, %s", r, AuthReadyAuthenticated, AuthReadyAlways)
	}
	v.validateCache(&c.Cache)

	// scrub
	if !c.Scrub.PIIConfig.IsZero() {
		if n := c.Scrub.PIIConfig.node; n.Kind != yaml.MappingNode && !isNull(n) {
			v.add("scrub.pii_config", "expected a mapping in Sentry's piiConfig shape (rules, applications), got %s", describe(n))
		} else if _, err := c.Scrub.PIIConfigJSON(); err != nil {
			v.add("scrub.pii_config", "%v", strings.TrimPrefix(err.Error(), "config: scrub.pii_config: "))
		} else if _, err := c.CompileScrubber(); err != nil {
			v.add("scrub.pii_config", "%v", strings.TrimPrefix(err.Error(), "config: scrub.pii_config: "))
		}
	} else if _, err := c.CompileScrubber(); err != nil {
		v.add("scrub.data_scrubbing", "%v", strings.TrimPrefix(err.Error(), "config: scrub.data_scrubbing: "))
	}

	c.Tunnel.validate(v)

	if len(v.problems) > 0 {
		return &Error{Problems: v.problems}
	}
	return nil
}

type validator struct {
	c        *Config
	problems []string
}

// where names the origin of key's value: file:line, env var or flag; for a default value, the
// config file (that is where a person would change it).
func (v *validator) where(key string) string {
	if o, ok := v.c.origins[key]; ok {
		return o.String()
	}
	return v.c.file
}

func (v *validator) add(key, format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf("%s: %s: %s", v.where(key), key, fmt.Sprintf(format, args...)))
}

func (v *validator) port(key string, p int) {
	if p < 0 || p > 65535 {
		v.add(key, "%d is not a port number (0-65535; 0 picks a free port)", p)
	}
}

func (v *validator) positive(key string, d time.Duration) {
	if d <= 0 {
		v.add(key, "must be longer than zero")
	}
}

func (v *validator) size(key string, b ByteSize) {
	if b <= 0 {
		v.add(key, "must be larger than zero")
	}
}

func (v *validator) count(key string, n int) {
	if n <= 0 {
		v.add(key, "%d must be at least 1", n)
	}
}

func joinModes() string {
	s := make([]string, len(Modes))
	for i, m := range Modes {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

// checkUpstream applies Relay's rules for relay.upstream (UpstreamDescriptor): an http or https
// URL with a host and nothing after the "/" — the relay appends /api/… itself.
func checkUpstream(s string) string {
	if s == "" {
		return "empty; expected a URL such as https://sentry.io/"
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("%q is not a URL", s)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("%q must be an http:// or https:// URL", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Sprintf("%q has no host", s)
	}
	if p := u.Port(); p != "" {
		var n int
		if _, err := fmt.Sscan(p, &n); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("%q has a bad port", s)
		}
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Sprintf("%q must not have a path or query (the relay adds /api/…; use e.g. %s://%s/)", s, u.Scheme, u.Host)
	}
	return ""
}

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)

func checkHost(h string) string {
	if h == "" {
		return "empty; expected an address such as 127.0.0.1 or 0.0.0.0"
	}
	if net.ParseIP(h) != nil || hostnameRE.MatchString(h) {
		return ""
	}
	return fmt.Sprintf("%q is not an IP address or host name", h)
}

func checkNATSURL(s string) string {
	if s == "" {
		return ""
	}
	for _, part := range strings.Split(s, ",") {
		p := strings.TrimSpace(part)
		u, err := url.Parse(p)
		if err != nil || u.Host == "" {
			return fmt.Sprintf("%q is not a NATS URL (expected nats://host:port, comma-separated for a cluster, or empty for the embedded server)", p)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Sprintf("%q has scheme %q; expected nats://, tls://, ws:// or wss://", p, u.Scheme)
		}
	}
	return ""
}

// checkStreamName applies NATS's rules for stream names.
func checkStreamName(s string) string {
	if s == "" {
		return "empty"
	}
	if len(s) > 255 {
		return "longer than 255 characters"
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(".*>/\\", r) {
			return fmt.Sprintf("%q may not contain whitespace, control characters or any of . * > / \\", s)
		}
	}
	return ""
}

func checkSync(s string) string {
	if s == "" || s == "always" {
		return ""
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Sprintf("%q is not \"always\", a positive duration such as 1s, or empty for the NATS default (2m)", s)
	}
	return ""
}
