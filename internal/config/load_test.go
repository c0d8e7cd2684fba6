package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env returns a lookup over a fixed environment, so tests never see the real one.
func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// writeConfig writes config.yml into a fresh directory and returns the directory.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func load(t *testing.T, content string, kv ...string) (*Config, error) {
	t.Helper()
	return LoadWithEnv(writeConfig(t, content), env(kv...))
}

func mustLoad(t *testing.T, content string, kv ...string) *Config {
	t.Helper()
	c, err := load(t, content, kv...)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	dir := t.TempDir()
	c, err := LoadWithEnv(dir, env())
	if err != nil {
		t.Fatal(err)
	}
	if c.FileExists() {
		t.Fatal("FileExists true without a file")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"relay.mode", c.Relay.Mode, ModeManaged},
		{"relay.upstream", c.Relay.Upstream, "https://sentry.io/"},
		{"relay.host", c.Relay.Host, "127.0.0.1"},
		{"relay.port", c.Relay.Port, 3000},
		{"relay.tls_port", c.Relay.TLSPort, 0},
		{"http.timeout", c.HTTP.Timeout, 5 * time.Second},
		{"http.connection_timeout", c.HTTP.ConnectionTimeout, 3 * time.Second},
		{"http.max_retry_interval", c.HTTP.MaxRetryInterval, 60 * time.Second},
		{"http.outage_grace_period", c.HTTP.OutageGracePeriod, 10 * time.Second},
		{"http.retry_delay", c.HTTP.RetryDelay, time.Second},
		{"http.encoding", c.HTTP.Encoding, "zstd"},
		{"http.auth_interval", c.HTTP.AuthInterval, 600 * time.Second},
		{"http.forward", c.HTTP.Forward, true},
		{"limits.max_api_payload_size", c.Limits.MaxAPIPayloadSize, 20 * MiB},
		{"limits.max_api_file_upload_size", c.Limits.MaxAPIFileUploadSize, 40 * MiB},
		{"limits.max_api_chunk_upload_size", c.Limits.MaxAPIChunkUploadSize, 100 * MiB},
		{"auth.ready", c.Auth.Ready, "authenticated"},
		{"limits.max_envelope_size", c.Limits.MaxEnvelopeSize, 200 * MiB},
		{"limits.max_event_size", c.Limits.MaxEventSize, 1 * MiB},
		{"limits.max_attachment_size", c.Limits.MaxAttachmentSize, 200 * MiB},
		{"limits.max_attachments_size", c.Limits.MaxAttachmentsSize, 200 * MiB},
		{"limits.max_attachment_count", c.Limits.MaxAttachmentCount, 30},
		{"limits.max_sessions_size", c.Limits.MaxSessionsSize, 10 * MiB},
		{"limits.max_session_count", c.Limits.MaxSessionCount, 100},
		{"limits.max_client_reports_size", c.Limits.MaxClientReportsSize, 100 * KiB},
		{"limits.max_check_in_size", c.Limits.MaxCheckInSize, 100 * KiB},
		{"limits.max_profile_size", c.Limits.MaxProfileSize, 50 * MiB},
		{"limits.max_log_size", c.Limits.MaxLogSize, 2 * MiB},
		{"limits.max_span_size", c.Limits.MaxSpanSize, 10 * MiB},
		{"limits.max_standalone_span_count", c.Limits.MaxStandaloneSpanCount, 25},
		{"limits.max_container_size", c.Limits.MaxContainerSize, 12 * MiB},
		{"limits.shutdown_timeout", c.Limits.ShutdownTimeout, 10 * time.Second},
		{"limits.max_concurrent_requests", c.Limits.MaxConcurrentRequests, 100},
		{"logging.level", c.Logging.Level, "info"},
		{"logging.format", c.Logging.Format, "auto"},
		{"jetstream.url", c.JetStream.URL, ""},
		{"jetstream.stream", c.JetStream.Stream, "RELAY_ENVELOPES"},
		{"jetstream.replicas", c.JetStream.Replicas, 1},
		{"jetstream.max_bytes", c.JetStream.MaxBytes, 1 * GiB},
		{"jetstream.sync", c.JetStream.Sync, ""},
		{"jetstream.ack_wait", c.JetStream.AckWait, 30 * time.Second},
		{"jetstream.publish_group_max", c.JetStream.PublishGroupMax, 32},
		{"jetstream.store_dir", c.JetStream.StoreDir, filepath.Join(dir, "jetstream")},
		{"spool.path", c.Spool.Path, filepath.Join(dir, "spool.db")},
		{"spool.max_disk_size", c.Spool.MaxDiskSize, ByteSize(500 * 1000 * 1000)},
		{"spool.max_batch", c.Spool.MaxBatch, 128},
		{"spool.max_envelope_delay", c.Spool.MaxEnvelopeDelay, 24 * time.Hour},
		{"spool.max_dead_size", c.Spool.MaxDeadSize, ByteSize(100 * 1000 * 1000)},
		{"spool.max_dead_count", c.Spool.MaxDeadCount, 100000},
		{"spool.hand_back", c.Spool.HandBack, "auto"},
		{"worker.enabled", c.Worker.Enabled, true},
		{"worker.concurrency", c.Worker.Concurrency, 64},
		{"ingest.enabled", c.Ingest.Enabled, true},
		{"scrub.data_scrubbing.scrub_data", c.Scrub.DataScrubbing.ScrubData, false},
		{"scrub.pii_config", c.Scrub.PIIConfig.IsZero(), true},
		{"Dir", c.Dir(), dir},
		{"ListenAddr", c.ListenAddr(), "127.0.0.1:3000"},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default() does not validate: %v", err)
	}
}

func TestLoadFullFile(t *testing.T) {
	c := mustLoad(t, `
relay:
  mode: proxy
  upstream: http://127.0.0.1:9000/
  host: 0.0.0.0
  port: 3001
  tls_port: 3443
  tls_identity_path: relay.p12
  tls_identity_password: secret
http:
  timeout: 7
  connection_timeout: 1500ms
  max_retry_interval: 2m
  outage_grace_period: 0
  retry_delay: 0.25
  encoding: gzip
  auth_interval: 120
limits:
  max_envelope_size: 100MB
  max_event_size: 1048576
  max_attachment_count: 5
  shutdown_timeout: 3s
logging:
  level: debug
  format: json
jetstream:
  url: nats://a:4222,nats://b:4222
  stream: MY_STREAM
  replicas: 3
  max_bytes: 2GiB
  sync: 5
  ack_wait: 1m
spool:
  path: /var/lib/relay/spool.db
  max_disk_size: 1GB
  max_batch: 64
worker:
  enabled: false
  concurrency: 8
ingest:
  enabled: true
scrub:
  data_scrubbing:
    scrub_data: true
    scrub_defaults: true
    sensitive_fields: [card_token, secret_sauce]
    exclude_fields: []
`)
	dir := c.Dir()
	if c.Relay.Mode != ModeProxy || c.Relay.Upstream != "http://127.0.0.1:9000/" || c.Relay.Host != "0.0.0.0" || c.Relay.Port != 3001 {
		t.Errorf("relay = %+v", c.Relay)
	}
	if c.Relay.TLSPort != 3443 || c.Relay.TLSIdentityPath != filepath.Join(dir, "relay.p12") || c.Relay.TLSIdentityPassword != "secret" {
		t.Errorf("relay tls = %+v", c.Relay)
	}
	wantHTTP := HTTP{7 * time.Second, 1500 * time.Millisecond, 2 * time.Minute, 0, 250 * time.Millisecond, "gzip", 2 * time.Minute, true, ""}
	if c.HTTP != wantHTTP {
		t.Errorf("http = %+v, want %+v", c.HTTP, wantHTTP)
	}
	if c.Limits.MaxEnvelopeSize != 100*MB || c.Limits.MaxEventSize != MiB || c.Limits.MaxAttachmentCount != 5 || c.Limits.ShutdownTimeout != 3*time.Second {
		t.Errorf("limits = %+v", c.Limits)
	}
	if c.Limits.MaxAttachmentSize != 200*MiB {
		t.Errorf("an absent limit lost its default: %v", c.Limits.MaxAttachmentSize)
	}
	if c.Logging != (Logging{"debug", "json"}) {
		t.Errorf("logging = %+v", c.Logging)
	}
	wantJS := JetStream{URL: "nats://a:4222,nats://b:4222", Stream: "MY_STREAM", Replicas: 3, MaxBytes: 2 * GiB, Sync: "5s", AckWait: time.Minute, StoreDir: filepath.Join(dir, "jetstream"), PublishGroupMax: 32}
	if c.JetStream != wantJS {
		t.Errorf("jetstream = %+v, want %+v", c.JetStream, wantJS)
	}
	if c.Spool != (Spool{"/var/lib/relay/spool.db", GB, 64, 24 * time.Hour, 100 * MB, 100000, HandBackAuto}) {
		t.Errorf("spool = %+v", c.Spool)
	}
	if c.Worker != (Worker{false, 8}) || !c.Ingest.Enabled {
		t.Errorf("worker = %+v ingest = %+v", c.Worker, c.Ingest)
	}
	ds := c.Scrub.DataScrubbing
	if !ds.ScrubData || !ds.ScrubDefaults || ds.ScrubIPAddresses || !reflect.DeepEqual(ds.SensitiveFields, []string{"card_token", "secret_sauce"}) || len(ds.ExcludeFields) != 0 {
		t.Errorf("data_scrubbing = %+v", ds)
	}
	if !c.FileExists() {
		t.Error("FileExists false")
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestLoadEmptyAndNull(t *testing.T) {
	for name, content := range map[string]string{
		"empty":           "",
		"comment only":    "# nothing\n",
		"null document":   "~\n",
		"empty sections":  "relay:\nhttp:\nscrub:\n",
		"null values":     "relay:\n  mode:\n  port: ~\n",
		"empty pii":       "scrub:\n  pii_config:\n",
		"empty sensitive": "scrub:\n  data_scrubbing:\n    sensitive_fields:\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := mustLoad(t, content)
			d := Default()
			if c.Relay != d.Relay || c.HTTP != d.HTTP || c.Limits != d.Limits || !c.Scrub.PIIConfig.IsZero() {
				t.Fatalf("defaults changed: %+v", c.Relay)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		env     []string
		want    []string // each must appear in the error, in this order, one per line
	}{
		{
			name:    "unknown top-level key",
			content: "relay:\n  mode: proxy\nrelya:\n  port: 1\n",
			want:    []string{`config.yml:3: relya: unknown key (did you mean "relay"?) (known keys: relay, http, limits, logging, jetstream, spool, worker, ingest, scrub, auth, cache, tunnel)`},
		},
		{
			name:    "unknown nested key",
			content: "relay:\n  mdoe: proxy\n",
			want:    []string{`config.yml:2: relay.mdoe: unknown key (did you mean "mode"?) (known keys of relay: mode, upstream, host, port, tls_port, tls_identity_path, tls_identity_password, tls_cert_path, tls_key_path, override_project_ids)`},
		},
		{
			name:    "unknown key far from any",
			content: "http:\n  zzzzzzzz: 1\n",
			want:    []string{`config.yml:2: http.zzzzzzzz: unknown key (known keys of http: timeout,`},
		},
		{
			name:    "every problem is reported",
			content: "relay:\n  port: abc\n  bogus: 1\nhttp:\n  timeout: soon\nlimits:\n  max_event_size: 1mb\nworker:\n  enabled: yes\n",
			want: []string{
				`config.yml:2: relay.port: expected an integer, got "abc"`,
				`config.yml:3: relay.bogus: unknown key`,
				`config.yml:5: http.timeout: "soon" is not a duration`,
				`config.yml:7: limits.max_event_size: "1mb" has an unknown unit "mb"`,
				`config.yml:9: worker.enabled: expected true or false, got "yes"`,
			},
		},
		{
			name:    "section is not a mapping",
			content: "relay: proxy\n",
			want:    []string{`config.yml:1: relay: expected a mapping with the keys of relay (mode, upstream,`},
		},
		{
			name:    "root is not a mapping",
			content: "- a\n- b\n",
			want:    []string{`config.yml:1: expected a mapping with the keys of the config (relay, http,`},
		},
		{
			name:    "list where a value is expected",
			content: "relay:\n  port: [1, 2]\n",
			want:    []string{`config.yml:2: relay.port: expected a single value, got a list`},
		},
		{
			name:    "value where a list is expected",
			content: "scrub:\n  data_scrubbing:\n    sensitive_fields: password\n",
			want:    []string{`config.yml:3: scrub.data_scrubbing.sensitive_fields: expected a list, got "password"`},
		},
		{
			name:    "port out of int range",
			content: "relay:\n  port: 99999999999999999999\n",
			want:    []string{`relay.port: "99999999999999999999" is out of range`},
		},
		{
			name:    "yaml syntax error",
			content: "relay:\n  mode: proxy\n port: 1\n",
			want:    []string{`config.yml:2: did not find expected key`},
		},
		{
			name:    "duplicate key",
			content: "relay:\n  mode: proxy\n  mode: managed\n",
			want:    []string{`config.yml:3: relay.mode: given twice (first on line 2)`},
		},
		{
			name:    "second document",
			content: "relay:\n  mode: proxy\n---\nrelay:\n  mode: managed\n",
			want:    []string{`config.yml:3: a second YAML document (---) is not allowed`},
		},
		{
			name:    "merge key",
			content: "relay:\n  <<: {port: 1}\n",
			want:    []string{`config.yml:2: relay: merge keys (<<) are not supported`},
		},
		{
			name:    "missing env var",
			content: "relay:\n  upstream: ${UPSTREAM}\n",
			want:    []string{`config.yml:2: relay.upstream: environment variable UPSTREAM is not set (referenced as ${UPSTREAM})`},
		},
		{
			name:    "missing env var in a list",
			content: "scrub:\n  data_scrubbing:\n    sensitive_fields: [a, \"${FIELD}\"]\n",
			want:    []string{`config.yml:3: scrub.data_scrubbing.sensitive_fields: environment variable FIELD is not set`},
		},
		{
			name:    "missing env var in pii_config",
			content: "scrub:\n  pii_config:\n    rules:\n      r:\n        pattern: ${PATTERN}\n",
			want:    []string{`config.yml:5: scrub.pii_config: environment variable PATTERN is not set`},
		},
		{
			name:    "unterminated reference",
			content: "relay:\n  host: ${HOST\n",
			want:    []string{`relay.host: "${HOST" has an unterminated ${`},
		},
		{
			name:    "file references",
			content: "relay:\n  tls_identity_password: ${file:pw.txt}\n",
			want:    []string{`relay.tls_identity_password: ${file:pw.txt}: reading values from files is not supported`},
		},
		{
			name:    "bad variable name",
			content: "relay:\n  host: ${1X}\n",
			want:    []string{`relay.host: ${1X} is not a valid environment variable reference`},
		},
		{
			name:    "bad env override",
			content: "",
			env:     []string{"RELAY_PORT", "eighty", "RELAY_LOG_LEVEL", "loud"},
			want:    []string{`RELAY_PORT: relay.port: expected an integer, got "eighty"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.content, tt.env...)
			if err == nil {
				t.Fatal("no error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			msg := err.Error()
			if len(ce.Problems) != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%s", len(ce.Problems), len(tt.want), msg)
			}
			for i, w := range tt.want {
				if i >= len(ce.Problems) || !strings.Contains(ce.Problems[i], w) {
					t.Errorf("problem %d does not contain %q; all:\n%s", i, w, msg)
				}
			}
		})
	}
}

func TestLoadNamesTheFileAsGiven(t *testing.T) {
	dir := writeConfig(t, "relay:\n  mdoe: proxy\n")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, dir)
	if err != nil {
		t.Skip("temp dir not relative to the working directory")
	}
	_, err = LoadWithEnv(rel, env())
	want := filepath.Join(rel, FileName) + ":2: relay.mdoe: unknown key"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error = %v, want prefix %q", err, want)
	}
}

func TestLoadUnreadable(t *testing.T) {
	dir := t.TempDir()
	// config.yml is a directory: reading fails with something other than "not found".
	if err := os.Mkdir(filepath.Join(dir, FileName), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := LoadWithEnv(dir, env())
	if err == nil || !strings.Contains(err.Error(), FileName) {
		t.Fatalf("error = %v", err)
	}
}

func TestEnvSubstitution(t *testing.T) {
	c := mustLoad(t, `
relay:
  upstream: ${UPSTREAM}
  host: "${HOST}"
  port: ${PORT}
  tls_identity_password: pre-${PW}-post $${LITERAL} pa$$word
http:
  timeout: ${TIMEOUT}
limits:
  max_event_size: ${SIZE}
worker:
  enabled: ${ENABLED}
scrub:
  data_scrubbing:
    sensitive_fields: ["${FIELD}", plain]
  pii_config:
    rules:
      r1:
        type: pattern
        pattern: ${PATTERN}
        count: ${COUNT}
        quoted: "${COUNT}"
`, "UPSTREAM", "https://example.com/", "HOST", "10.0.0.1", "PORT", "4000", "PW", "x",
		"TIMEOUT", "2m", "SIZE", "2MiB", "ENABLED", "false", "FIELD", "iban", "PATTERN", `[0-9]{4}`, "COUNT", "3")
	if c.Relay.Upstream != "https://example.com/" || c.Relay.Host != "10.0.0.1" || c.Relay.Port != 4000 {
		t.Errorf("relay = %+v", c.Relay)
	}
	if c.Relay.TLSIdentityPassword != "pre-x-post ${LITERAL} pa$$word" {
		t.Errorf("password = %q", c.Relay.TLSIdentityPassword)
	}
	if c.HTTP.Timeout != 2*time.Minute || c.Limits.MaxEventSize != 2*MiB || c.Worker.Enabled {
		t.Errorf("timeout %v size %v enabled %v", c.HTTP.Timeout, c.Limits.MaxEventSize, c.Worker.Enabled)
	}
	if !reflect.DeepEqual(c.Scrub.DataScrubbing.SensitiveFields, []string{"iban", "plain"}) {
		t.Errorf("sensitive_fields = %v", c.Scrub.DataScrubbing.SensitiveFields)
	}
	js, err := c.Scrub.PIIConfigJSON()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"rules":{"r1":{"type":"pattern","pattern":"[0-9]{4}","count":3,"quoted":"3"}}}`; string(js) != want {
		t.Errorf("pii_config = %s, want %s", js, want)
	}
}

func TestExpandEnv(t *testing.T) {
	lookup := env("A", "1", "B", "two", "EMPTY", "")
	tests := []struct {
		in, want string
		whole    bool
	}{
		{"plain", "plain", false},
		{"${A}", "1", true},
		{"${EMPTY}", "", true},
		{"x${A}", "x1", false},
		{"${A}${B}", "1two", false},
		{"${A}x", "1x", false},
		{"$${A}", "${A}", false},
		{"$A", "$A", false},
		{"$", "$", false},
		{"a$$b", "a$$b", false},
	}
	for _, tt := range tests {
		got, whole, err := expandEnv(tt.in, lookup)
		if err != nil || got != tt.want || whole != tt.whole {
			t.Errorf("expandEnv(%q) = %q, %v, %v; want %q, %v", tt.in, got, whole, err, tt.want, tt.whole)
		}
	}
}

func TestEnvOverrides(t *testing.T) {
	file := "relay:\n  mode: managed\n  upstream: https://file.example/\n  host: 127.0.0.2\n  port: 1000\nlogging:\n  level: warn\n"
	c := mustLoad(t, file,
		"RELAY_MODE", "proxy",
		"RELAY_UPSTREAM_URL", "http://env.example:8080/",
		"RELAY_HOST", "0.0.0.0",
		"RELAY_PORT", "2000",
		"RELAY_LOG_LEVEL", "debug",
		"RELAY_LOG_FORMAT", "json",
	)
	want := Relay{Mode: ModeProxy, Upstream: "http://env.example:8080/", Host: "0.0.0.0", Port: 2000}
	if c.Relay != want || c.Logging != (Logging{"debug", "json"}) {
		t.Fatalf("relay = %+v logging = %+v", c.Relay, c.Logging)
	}

	// An empty variable is unset: the file's value stays.
	c = mustLoad(t, file, "RELAY_PORT", "", "RELAY_MODE", "")
	if c.Relay.Port != 1000 || c.Relay.Mode != ModeManaged {
		t.Fatalf("empty env changed values: %+v", c.Relay)
	}

	// Flags (Override) win over the environment.
	c = mustLoad(t, file, "RELAY_PORT", "2000")
	if err := c.Override("relay.port", "3000", "--port"); err != nil {
		t.Fatal(err)
	}
	if c.Relay.Port != 3000 {
		t.Fatalf("port = %d", c.Relay.Port)
	}
	c.Relay.Port = 70000
	err := c.Validate()
	if err == nil || !strings.HasPrefix(err.Error(), "--port: relay.port: 70000 is not a port number") {
		t.Fatalf("Validate = %v", err)
	}

	if vars := EnvVars(); vars["RELAY_UPSTREAM_URL"] != "relay.upstream" || len(vars) != 6 {
		t.Fatalf("EnvVars = %v", vars)
	}
}

func TestOverride(t *testing.T) {
	c := Default()
	for _, o := range []struct{ key, val string }{
		{"relay.mode", "proxy"},
		{"http.timeout", "9"},
		{"limits.max_event_size", "2MiB"},
		{"worker.enabled", "false"},
		{"jetstream.sync", "3"},
	} {
		if err := c.Override(o.key, o.val, "--set"); err != nil {
			t.Fatalf("Override(%s): %v", o.key, err)
		}
	}
	if c.Relay.Mode != ModeProxy || c.HTTP.Timeout != 9*time.Second || c.Limits.MaxEventSize != 2*MiB || c.Worker.Enabled || c.JetStream.Sync != "3s" {
		t.Fatalf("config = %+v", c)
	}
	for _, tt := range []struct{ key, val, want string }{
		{"relay.prot", "1", `--x: unknown key "relay.prot" (did you mean "port"?)`},
		{"relay", "1", `--x: relay: not a single value`},
		{"scrub.pii_config.rules", "1", `--x: scrub.pii_config: not a single value`},
		{"scrub.data_scrubbing.sensitive_fields", "1", `not a single value`},
		{"relay.port", "x", `--x: relay.port: expected an integer, got "x"`},
	} {
		err := c.Override(tt.key, tt.val, "--x")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Override(%s) = %v, want %q", tt.key, err, tt.want)
		}
	}
}

func TestRelativePaths(t *testing.T) {
	c := mustLoad(t, "spool:\n  path: data/spool.db\njetstream:\n  store_dir: js\n")
	if c.Spool.Path != filepath.Join(c.Dir(), "data", "spool.db") || c.JetStream.StoreDir != filepath.Join(c.Dir(), "js") {
		t.Fatalf("paths: %q %q", c.Spool.Path, c.JetStream.StoreDir)
	}
}

func TestLoadDefaultDir(t *testing.T) {
	c, err := LoadWithEnv("", env())
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(DefaultDir)
	if c.Dir() != abs || c.File() != filepath.Join(DefaultDir, FileName) {
		t.Fatalf("Dir = %q File = %q", c.Dir(), c.File())
	}
}

func FuzzLoad(f *testing.F) {
	f.Add("relay:\n  mode: proxy\n  port: 1\n")
	f.Add("scrub:\n  pii_config: &a\n    x: *a\n")
	f.Add("limits:\n  max_event_size: ${X}\n")
	f.Add("a: &a [*a]\n")
	f.Add("scrub:\n  pii_config: {rules: {a: [1, 2.5, true, null, \"s\"]}}\n")
	f.Fuzz(func(t *testing.T, content string) {
		c := Default()
		c.file = "config.yml"
		if err := c.decode([]byte(content), env("X", "1")); err != nil {
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("decode error is not a non-empty *Error: %v", err)
			}
			return
		}
		_ = c.Validate()
		if _, err := c.Marshal(); err != nil {
			t.Fatalf("Marshal after a successful decode: %v", err)
		}
	})
}
