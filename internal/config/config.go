// Package config reads the relay's configuration: <config dir>/config.yml, Sentry Relay's keys
// (snake_case, Relay's defaults where Relay has the key) plus the relay's own sections
// (jetstream, spool, worker, ingest, scrub, tunnel).
//
// Precedence, lowest first: the defaults in this file, config.yml, the RELAY_* environment
// variables (ApplyEnv), then command-line flags (Override). Every value remembers where it came
// from, so Validate can say "RELAY_PORT: relay.port: …" or ".relay/config.yml:4: relay.mode: …".
//
// Load reads and decodes; Validate checks meaning. Both return one plain error listing every
// problem, so a person fixes a config in one round instead of one key per restart.
package config

import (
	"net"
	"path/filepath"
	"strconv"
	"time"
)

const (
	// DefaultDir is the config directory used when none is given, relative to the working
	// directory, as in Sentry Relay.
	DefaultDir = ".relay"
	// FileName is the config file inside the config directory.
	FileName = "config.yml"
)

// Mode is the relay's operating mode (relay.mode).
type Mode string

// The modes Sentry Relay knows. Static was deprecated in Relay 25.9.0 and removed later; this
// relay keeps it: only the projects in <config dir>/projects/*.json are accepted.
const (
	ModeManaged Mode = "managed"
	ModeProxy   Mode = "proxy"
	ModeStatic  Mode = "static"
)

// Modes lists the accepted modes in the order help texts show them.
var Modes = []Mode{ModeManaged, ModeProxy, ModeStatic}

// Encodings lists the accepted http.encoding values.
var Encodings = []string{"identity", "deflate", "gzip", "br", "zstd"}

// LogLevels lists the accepted logging.level values (Relay's).
var LogLevels = []string{"off", "error", "warn", "info", "debug", "trace"}

// LogFormats lists the accepted logging.format values (Relay's).
var LogFormats = []string{"auto", "pretty", "simplified", "json"}

// Config is the whole configuration. Field order is the order `config show` prints.
type Config struct {
	Relay     Relay     `yaml:"relay"`
	HTTP      HTTP      `yaml:"http"`
	Limits    Limits    `yaml:"limits"`
	Logging   Logging   `yaml:"logging"`
	JetStream JetStream `yaml:"jetstream"`
	Spool     Spool     `yaml:"spool"`
	Worker    Worker    `yaml:"worker"`
	Ingest    Ingest    `yaml:"ingest"`
	Scrub     Scrub     `yaml:"scrub"`
	Auth      Auth      `yaml:"auth"`
	Cache     Cache     `yaml:"cache"`
	Tunnel    Tunnel    `yaml:"tunnel"`

	dir        string            // absolute config directory
	file       string            // config.yml as the user named it (for messages)
	fileExists bool              // whether config.yml was read
	origins    map[string]origin // dotted key → where its value came from

	lookup    func(string) (string, bool) // the environment Load read (Reload reads it again)
	overrides []override                  // Override calls after Load, replayed by Reload
}

// origin says where a value came from: a file and line, an environment variable or a flag.
type origin struct {
	source string // file path, "RELAY_PORT", "--port"
	line   int    // > 0 only for file values
}

func (o origin) String() string {
	if o.line > 0 {
		return o.source + ":" + strconv.Itoa(o.line)
	}
	return o.source
}

// Relay is the `relay` section: mode, upstream and the listening socket.
type Relay struct {
	// Mode: managed (default, as in Relay), proxy or static.
	Mode Mode `yaml:"mode"`
	// Upstream is the Sentry (or Relay) envelopes are forwarded to: an http(s) URL with a host
	// and no path, as Relay requires.
	Upstream string `yaml:"upstream"`
	// Host is the interface to listen on.
	Host string `yaml:"host"`
	// Port is the HTTP port to listen on.
	Port int `yaml:"port"`
	// TLSPort is the HTTPS port, served beside Port (0: no HTTPS). Its identity is the PKCS #12
	// archive TLSIdentityPath opened with TLSIdentityPassword (Relay's keys), or the PEM files
	// TLSCertPath (certificate chain, leaf first) and TLSKeyPath.
	TLSPort             int    `yaml:"tls_port,omitempty"`
	TLSIdentityPath     string `yaml:"tls_identity_path,omitempty"`
	TLSIdentityPassword string `yaml:"tls_identity_password,omitempty"`
	TLSCertPath         string `yaml:"tls_cert_path,omitempty"`
	TLSKeyPath          string `yaml:"tls_key_path,omitempty"`
	// OverrideProjectIDs accepts a request whose project id differs from the one its key's
	// project config names, and sends it to the config's project (Relay's key, for moving DSNs
	// to another Sentry). Off: such a request is refused with 403.
	OverrideProjectIDs bool `yaml:"override_project_ids,omitempty"`
}

// HTTP is the `http` section: how the relay talks to the upstream.
type HTTP struct {
	// Timeout bounds an upstream request until its response headers arrive.
	Timeout time.Duration `yaml:"timeout"`
	// ConnectionTimeout bounds establishing the connection.
	ConnectionTimeout time.Duration `yaml:"connection_timeout"`
	// MaxRetryInterval caps the exponential backoff between retries.
	MaxRetryInterval time.Duration `yaml:"max_retry_interval"`
	// OutageGracePeriod is how long upstream failures may last before the relay treats the
	// upstream as in outage (and starts spooling).
	OutageGracePeriod time.Duration `yaml:"outage_grace_period"`
	// RetryDelay is the first backoff interval.
	RetryDelay time.Duration `yaml:"retry_delay"`
	// Encoding is the Content-Encoding of envelopes sent upstream: identity, deflate, gzip, br
	// or zstd. The default is zstd, as in the newest Relay code (its docs still say gzip).
	Encoding string `yaml:"encoding"`
	// AuthInterval is how often a managed relay registers with the upstream again (Relay's
	// http.auth_interval, 600 s), so that a key removed in Sentry stops the relay within it.
	// 0 registers once and never again.
	AuthInterval time.Duration `yaml:"auth_interval"`
	// Forward proxies every /api/ request that is not an ingest route to the upstream
	// (sentry-cli release and source-map uploads through the relay), as Relay's http.forward.
	// Off: such requests are 404.
	Forward bool `yaml:"forward"`
	// CAFile is a PEM bundle of CA certificates trusted for the upstream's certificate in
	// addition to the system's (a self-hosted Sentry behind a private CA).
	CAFile string `yaml:"ca_file,omitempty"`
}

// Limits is the `limits` section: Relay's size and count limits (checked on the decompressed
// body at ingest; the whole envelope gets 413 when one is exceeded) and shutdown timing.
type Limits struct {
	MaxConcurrentRequests int `yaml:"max_concurrent_requests"`

	MaxEnvelopeSize           ByteSize `yaml:"max_envelope_size"`
	MaxEventSize              ByteSize `yaml:"max_event_size"`
	MaxAttachmentSize         ByteSize `yaml:"max_attachment_size"`
	MaxAttachmentsSize        ByteSize `yaml:"max_attachments_size"`
	MaxAttachmentCount        int      `yaml:"max_attachment_count"`
	MaxReplayCompressedSize   ByteSize `yaml:"max_replay_compressed_size"`
	MaxReplayUncompressedSize ByteSize `yaml:"max_replay_uncompressed_size"`
	MaxSessionsSize           ByteSize `yaml:"max_sessions_size"`
	MaxSessionCount           int      `yaml:"max_session_count"`
	MaxClientReportsSize      ByteSize `yaml:"max_client_reports_size"`
	MaxClientReportsCount     int      `yaml:"max_client_reports_count"`
	MaxCheckInSize            ByteSize `yaml:"max_check_in_size"`
	MaxProfileSize            ByteSize `yaml:"max_profile_size"`
	MaxLogSize                ByteSize `yaml:"max_log_size"`
	MaxTraceMetricSize        ByteSize `yaml:"max_trace_metric_size"`
	MaxSpanSize               ByteSize `yaml:"max_span_size"`
	MaxStandaloneSpanCount    int      `yaml:"max_standalone_span_count"`
	MaxContainerSize          ByteSize `yaml:"max_container_size"`
	MaxStatsdSize             ByteSize `yaml:"max_statsd_size"`
	MaxMetricBucketsSize      ByteSize `yaml:"max_metric_buckets_size"`
	// The bodies of forwarded API requests (http.forward): release file and dSYM uploads,
	// chunk uploads, everything else.
	MaxAPIPayloadSize     ByteSize `yaml:"max_api_payload_size"`
	MaxAPIFileUploadSize  ByteSize `yaml:"max_api_file_upload_size"`
	MaxAPIChunkUploadSize ByteSize `yaml:"max_api_chunk_upload_size"`

	// ShutdownTimeout bounds a graceful shutdown after SIGTERM/SIGINT.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Logging is the `logging` section.
type Logging struct {
	// Level: off, error, warn, info (default), debug or trace.
	Level string `yaml:"level"`
	// Format: auto (pretty on a terminal, simplified otherwise), pretty, simplified or json.
	Format string `yaml:"format"`
}

// JetStream is the `jetstream` section: the stream between ingest and the workers.
type JetStream struct {
	// URL is empty to run an embedded NATS server with JetStream in this process, or nats://…
	// (comma-separated for a cluster) to use an existing server.
	URL string `yaml:"url"`
	// Stream is the stream name.
	Stream string `yaml:"stream"`
	// Replicas is the stream's replication factor (1 for the embedded server).
	Replicas int `yaml:"replicas"`
	// MaxBytes caps the stream; when it is full, ingest answers 503.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// Sync is how often the embedded server fsyncs its store: "" for the NATS default (2m),
	// "always" for every write, or a duration such as "1s". Integer seconds are accepted and
	// normalised to a duration ("5" → "5s").
	Sync string `yaml:"sync"`
	// AckWait is how long a delivered message may stay un-acked before it is redelivered.
	AckWait time.Duration `yaml:"ack_wait"`
	// StoreDir is the embedded server's store directory; default <config dir>/jetstream.
	StoreDir string `yaml:"store_dir"`
	// PublishGroupMax is the most envelopes ingest puts in one stream message when
	// concurrent requests for one project arrive while a publish for it is in flight
	// (ingest/group.go): they share one publish and one PubAck. 1 publishes every
	// envelope alone; at most 256 (a group's limit). A request with nothing in flight
	// for its project is always published alone, at once.
	PublishGroupMax int `yaml:"publish_group_max"`
	// How the connection to the server at URL authenticates (at most one of: a .creds file,
	// user and password, a token, an NKey seed file) and is encrypted (TLS with the server's
	// CA and, for mutual TLS, a client certificate). Relative paths are in the config
	// directory. See nats_auth.go.
	CredentialsFile string `yaml:"credentials_file,omitempty"`
	User            string `yaml:"user,omitempty"`
	Password        string `yaml:"password,omitempty"`
	Token           string `yaml:"token,omitempty"`
	NKeySeedFile    string `yaml:"nkey_seed_file,omitempty"`
	TLSCAFile       string `yaml:"tls_ca_file,omitempty"`
	TLSCertFile     string `yaml:"tls_cert_file,omitempty"`
	TLSKeyFile      string `yaml:"tls_key_file,omitempty"`
	// Listen, embedded only: host:port where the embedded server also accepts NATS
	// clients, so worker-only processes reach this stream with jetstream.url. Empty (the
	// default): nothing listens and the stream is reachable from this process only.
	Listen string `yaml:"listen,omitempty"`
}

// Spool is the `spool` section: the on-disk store used while the upstream is in outage.
type Spool struct {
	// Path is the bbolt file; default <config dir>/spool.db.
	Path string `yaml:"path"`
	// MaxDiskSize caps the spool on disk (Relay's spool.envelopes.max_disk_size default).
	MaxDiskSize ByteSize `yaml:"max_disk_size"`
	// MaxBatch is the most envelopes one spool transaction commits.
	MaxBatch int `yaml:"max_batch"`
	// MaxEnvelopeDelay is how long an acknowledged envelope may wait for an
	// upstream that refuses it without saying why it is wrong (401, 403, 404)
	// or rate limits it, before it is moved to the dead letters (Relay's
	// spool.envelopes.max_envelope_delay, 24 h).
	MaxEnvelopeDelay time.Duration `yaml:"max_envelope_delay"`
	// MaxDeadSize and MaxDeadCount cap the dead letters. Dead letters are never
	// evicted: at the cap the workers stop taking from the stream (ingest then
	// answers 503) until an operator deals with them (`relay spool dead`).
	MaxDeadSize  ByteSize `yaml:"max_dead_size"`
	MaxDeadCount int      `yaml:"max_dead_count"`
	// HandBack: whether a worker hands its spool back to the stream on a
	// graceful shutdown (handback.go): auto, always or never.
	HandBack string `yaml:"hand_back"`
}

// Worker is the `worker` section: the forwarding workers.
type Worker struct {
	Enabled     bool `yaml:"enabled"`
	Concurrency int  `yaml:"concurrency"`
}

// Auth is the `auth` section: how registration with the upstream affects readiness.
type Auth struct {
	// Ready is "authenticated" (default, as in Relay): a managed relay reports ready only once
	// it is registered with the upstream; or "always": ready regardless, for deployments
	// whose orchestrator must route traffic to the relay while it waits (envelopes are stored
	// and held, never sent, until it is registered).
	Ready string `yaml:"ready"`
}

// The auth.ready values.
const (
	AuthReadyAuthenticated = "authenticated"
	AuthReadyAlways        = "always"
)

// Ingest is the `ingest` section: the HTTP endpoints SDKs talk to.
type Ingest struct {
	Enabled bool `yaml:"enabled"`
}

// Default returns the built-in defaults, with the paths that live in the config directory
// (spool.path, jetstream.store_dir) under DefaultDir relative to the working directory. Load
// replaces them with paths under the directory it loads from.
func Default() *Config {
	c := &Config{
		Relay: Relay{
			Mode:     ModeManaged,
			Upstream: "https://sentry.io/",
			Host:     "127.0.0.1",
			Port:     3000,
		},
		HTTP: HTTP{
			Timeout:           5 * time.Second,
			ConnectionTimeout: 3 * time.Second,
			MaxRetryInterval:  60 * time.Second,
			OutageGracePeriod: 10 * time.Second,
			RetryDelay:        1 * time.Second,
			Encoding:          "zstd",
			AuthInterval:      600 * time.Second,
			Forward:           true,
		},
		Limits: Limits{
			MaxConcurrentRequests:     100,
			MaxEnvelopeSize:           200 * MiB,
			MaxEventSize:              1 * MiB,
			MaxAttachmentSize:         200 * MiB,
			MaxAttachmentsSize:        200 * MiB,
			MaxAttachmentCount:        30,
			MaxReplayCompressedSize:   10 * MiB,
			MaxReplayUncompressedSize: 100 * MiB,
			MaxSessionsSize:           10 * MiB,
			MaxSessionCount:           100,
			MaxClientReportsSize:      100 * KiB,
			MaxClientReportsCount:     100,
			MaxCheckInSize:            100 * KiB,
			MaxProfileSize:            50 * MiB,
			MaxLogSize:                2 * MiB,
			MaxTraceMetricSize:        1 * MiB,
			MaxSpanSize:               10 * MiB,
			MaxStandaloneSpanCount:    25,
			MaxContainerSize:          12 * MiB,
			MaxStatsdSize:             1 * MiB,
			MaxMetricBucketsSize:      1 * MiB,
			MaxAPIPayloadSize:         20 * MiB,
			MaxAPIFileUploadSize:      40 * MiB,
			MaxAPIChunkUploadSize:     100 * MiB,
			ShutdownTimeout:           10 * time.Second,
		},
		Logging: Logging{Level: "info", Format: "auto"},
		JetStream: JetStream{
			Stream:   "RELAY_ENVELOPES",
			Replicas: 1,
			MaxBytes: 1 * GiB,
			AckWait:  30 * time.Second,
			// Groups of 8–32 cut JetStream's publish CPU per envelope by 71–82 %
			// (internal/stream/group_bench_test.go); 32 is the top of that range.
			PublishGroupMax: 32,
		},
		Spool: Spool{
			MaxDiskSize:      500 * MB,
			MaxBatch:         128,
			MaxEnvelopeDelay: 24 * time.Hour,
			MaxDeadSize:      100 * MB,
			MaxDeadCount:     100000,
			HandBack:         HandBackAuto,
		},
		Worker: Worker{Enabled: true, Concurrency: 64},
		Ingest: Ingest{Enabled: true},
		Auth:   Auth{Ready: AuthReadyAuthenticated},
		Cache:  defaultCache(),
		Tunnel: Tunnel{Path: "/tunnel"},
		file:   filepath.Join(DefaultDir, FileName),
	}
	c.setDir(DefaultDir)
	return c
}

// setDir records the config directory and points the directory-relative defaults into it.
func (c *Config) setDir(dir string) {
	abs, err := filepath.Abs(dir)
	if err != nil { // only when the working directory is gone; keep the relative path
		abs = filepath.Clean(dir)
	}
	c.dir = abs
	c.Spool.Path = filepath.Join(abs, "spool.db")
	c.JetStream.StoreDir = filepath.Join(abs, "jetstream")
}

// Dir is the absolute config directory (credentials.json and the default storage live there).
func (c *Config) Dir() string { return c.dir }

// File is the config file path as the user named it, used in messages.
func (c *Config) File() string { return c.file }

// FileExists reports whether Load found and read config.yml (false: defaults only).
func (c *Config) FileExists() bool { return c.fileExists }

// ListenAddr is host:port for the HTTP listener.
func (c *Config) ListenAddr() string {
	return net.JoinHostPort(c.Relay.Host, strconv.Itoa(c.Relay.Port))
}

// MaxPublishGroup is the largest jetstream.publish_group_max: the most members a
// group message may have (internal/stream.MaxGroupMembers, checked by a test).
const MaxPublishGroup = 256

// SyncAlways reports whether jetstream.sync asks for an fsync on every write.
func (j JetStream) SyncAlways() bool { return j.Sync == "always" }

// Embedded reports whether the relay runs its own NATS server (jetstream.url empty).
func (j JetStream) Embedded() bool { return j.URL == "" }
