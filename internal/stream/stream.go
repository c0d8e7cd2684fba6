package stream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors wrapped by Publish (and Ready). Every Publish error wraps exactly one
// of them, so ingest can map it to a status without looking at NATS errors:
// ErrFull and ErrUnavailable → 503 with Retry-After, ErrTooLarge → 413.
var (
	// ErrUnavailable: JetStream did not take the message (server down,
	// connection closed, no PubAck in time, ctx ended before the PubAck).
	// Nothing was promised; a copy may still have been stored (at-least-once).
	ErrUnavailable = errors.New("jetstream unavailable")
	// ErrFull: the stream is at MaxBytes (DiscardNew) or the server is out of
	// storage. It clears once workers ack messages.
	ErrFull = errors.New("jetstream stream full")
	// ErrTooLarge: the encoded message exceeds MaxPayload. Retrying cannot help.
	ErrTooLarge = errors.New("message exceeds jetstream max payload")
)

// Defaults applied by Open to zero Config fields.
const (
	DefaultStream         = "RELAY_ENVELOPES"
	DefaultAckWait        = 30 * time.Second
	DefaultMaxPending     = 4096
	DefaultPublishTimeout = 5 * time.Second
	DefaultFetchWait      = 5 * time.Second
	DefaultFetchLinger    = 5 * time.Millisecond
	DefaultStartTimeout   = 60 * time.Second
	DefaultCloseTimeout   = 10 * time.Second
	// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id: a
	// publish retried within it is stored once.
	DuplicateWindow = 2 * time.Minute
	// MaxAckPending bounds messages delivered but not yet acked across all
	// workers sharing the durable; generous so a spool-bound or slow upstream
	// does not starve fetches, finite so a stuck worker cannot hold the stream.
	MaxAckPending = 20000
	// embeddedMaxPayload is the embedded server's max_payload. nats-server's
	// file store treats a record longer than 32 MiB (its rlBadThresh:
	// payload, headers, subject and the record's own framing) as damage
	// when it reads a block back, and its JetStream refuses such a message
	// at publish. The cap keeps 16 KiB of that for headers, subject and
	// framing, so that every message Publish takes is one a restart reads.
	embeddedMaxPayload = 32<<20 - 16<<10
	// embeddedMaxPending is the per-client outbound buffer of the embedded
	// server; above max_payload so one big message in flight does not mark a
	// consumer slow.
	embeddedMaxPending = 4 * embeddedMaxPayload
	// headerReserve is what MaxPayload keeps back for the headers Publish adds
	// (Nats-Msg-Id and the NATS/1.0 header framing): max_payload counts
	// headers and body together.
	headerReserve = 1024
)

// Config of the JetStream layer. Zero values take the defaults above.
type Config struct {
	URL      string // "" = embedded server in this process; else nats://host:port[,…]
	StoreDir string // embedded JetStream store directory (required when URL == "")
	Stream   string // stream name, default "RELAY_ENVELOPES"; subjects "<lower stream>.<project id>"
	Replicas int    // default 1; >1 needs a cluster (URL)
	MaxBytes int64  // stream size limit; a full stream fails Publish with ErrFull. 0 = no stream limit (the server's store limit still applies)
	// Sync, embedded only: "always" = Publish returns only after the message
	// is fsynced (a group fsync shared by concurrent publishes, syncer.go);
	// a Go duration = nats fsyncs the store that often, and a PubAck means
	// "in the kernel" (survives a process kill, not a power loss); "" = the
	// nats default interval (2m).
	Sync    string
	AckWait time.Duration // redelivery after this long un-acked; default 30s

	// How to authenticate to the external server at URL: at most one of
	// CredentialsFile (a .creds file: user JWT and NKey seed), User and
	// Password, Token, NKeySeedFile. TLS, when set, encrypts the connection
	// with it (the server's CA, a client certificate); nil uses TLS only when
	// a tls:// URL or the server asks, with the system's roots. None of them
	// is ever logged.
	CredentialsFile string
	User, Password  string
	Token           string
	NKeySeedFile    string
	TLS             *tls.Config

	// Additions beyond the contract (all optional).

	// Listen, embedded only: also accept NATS clients on this TCP address
	// (e.g. "127.0.0.1:4222", port 0 = pick one) so worker processes can
	// share the store. "" = in-process only (the fastest path; nothing listens).
	Listen string
	// MaxPending bounds publishes awaiting their PubAck at once; callers
	// beyond it wait (bounded by their ctx). Default 4096.
	MaxPending int
	// PublishTimeout is how long one publish attempt waits for its PubAck
	// before it is retried with the same Nats-Msg-Id. Default 5s.
	PublishTimeout time.Duration
	// FetchWait is how long a pull request of Fetch waits on the server
	// when the stream is empty (Fetch blocks that long plus a round trip).
	// Default 5s.
	FetchWait time.Duration
	// FetchLinger is how long Fetch waits, once a message arrived on an
	// empty stream, for others to join it before it returns the batch
	// (at most the batch asked for). It applies only while the stream is
	// drained — at low load, when each envelope would otherwise cost a
	// pull request, a worker wake-up and a nearly empty ack round of its
	// own — and delays those envelopes' delivery by at most this much;
	// under load Fetch finds messages waiting and never lingers. The
	// messages a lingering Fetch holds are un-acked like any fetched
	// message: a kill redelivers them after AckWait. Default 5ms, at most
	// AckWait/4; a negative value turns it off.
	FetchLinger time.Duration
	// StartTimeout bounds embedded start-up (including store recovery) and
	// the first connection, when ctx has no earlier deadline. Default 60s.
	StartTimeout time.Duration
	// CloseTimeout bounds Close (drain + server shutdown). Default 10s.
	CloseTimeout time.Duration
	// nativeSyncAlways: sync "always" by nats-server's own per-message
	// fsync instead of the group fsync barrier (syncer.go); benchmarks only.
	nativeSyncAlways bool
	// storeCheckEvery: how often the embedded store is checked for write
	// errors (storewatch.go); default defaultStoreCheckEvery, shorter in tests.
	storeCheckEvery time.Duration
}

func (cfg *Config) setDefaults() {
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = DefaultAckWait
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.FetchWait == 0 {
		cfg.FetchWait = DefaultFetchWait
	}
	if cfg.FetchLinger == 0 {
		cfg.FetchLinger = DefaultFetchLinger
	}
	// A lingering Fetch holds its first message un-acked; past AckWait the
	// server would hand that message out again while it is still held.
	cfg.FetchLinger = min(cfg.FetchLinger, cfg.AckWait/4)
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.CloseTimeout == 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	if cfg.storeCheckEvery == 0 {
		cfg.storeCheckEvery = defaultStoreCheckEvery
	}
}

// syncSetting is Config.Sync parsed.
type syncSetting struct {
	always   bool
	interval time.Duration // 0 = server default
}

func parseSync(s string) (syncSetting, error) {
	switch s = strings.TrimSpace(s); s {
	case "":
		return syncSetting{}, nil
	case "always":
		return syncSetting{always: true}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return syncSetting{}, fmt.Errorf(`sync %q: want "always" or a positive duration such as "1s"`, s)
	}
	return syncSetting{interval: d}, nil
}

// validate checks cfg after setDefaults.
func (cfg *Config) validate() error {
	if strings.ContainsAny(cfg.Stream, ". *>\t\r\n/\\") || cfg.Stream == "" {
		return fmt.Errorf("stream name %q: must not be empty or contain '.', '*', '>', '/', '\\' or whitespace", cfg.Stream)
	}
	if cfg.Replicas < 1 || cfg.Replicas > 5 {
		return fmt.Errorf("replicas %d: want 1 to 5", cfg.Replicas)
	}
	if cfg.MaxBytes < 0 {
		return fmt.Errorf("max_bytes %d: must not be negative", cfg.MaxBytes)
	}
	if cfg.AckWait < time.Second {
		return fmt.Errorf("ack_wait %s: want at least 1s", cfg.AckWait)
	}
	if cfg.MaxPending < 1 || cfg.PublishTimeout <= 0 || cfg.FetchWait < 10*time.Millisecond || cfg.StartTimeout <= 0 || cfg.CloseTimeout <= 0 {
		return errors.New("max_pending, publish_timeout, fetch_wait (>=10ms), start_timeout and close_timeout must be positive")
	}
	if cfg.URL == "" {
		if cfg.StoreDir == "" {
			return errors.New("store_dir is required for the embedded server (url empty)")
		}
		if cfg.Replicas > 1 {
			return fmt.Errorf("replicas %d needs a NATS cluster (set url); the embedded server is a single node", cfg.Replicas)
		}
		if _, err := parseSync(cfg.Sync); err != nil {
			return err
		}
		if cfg.Listen != "" {
			if _, _, err := splitListen(cfg.Listen); err != nil {
				return err
			}
		}
	} else if err := cfg.validateAuth(); err != nil {
		return err
	} else if cfg.Listen != "" || cfg.Sync != "" {
		// Both configure the embedded server; silently ignoring them would let
		// an operator believe sync: always protects data on a remote server.
		return errors.New("listen and sync apply to the embedded server only; configure them on the NATS server at url")
	}
	return nil
}

func splitListen(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("listen %q: %w", addr, err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("listen %q: bad port", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "127.0.0.1" // never all interfaces by accident
	}
	return host, port, nil
}

// Conn is one connection to JetStream (and, when embedded, the server it
// started). Safe for concurrent use: Publish is called by many HTTP handlers at
// once, Consumer/Fetch by many workers.
type Conn struct {
	cfg    Config
	log    *slog.Logger
	srv    *server.Server // nil when URL != ""
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream

	// consConns are the consumers' own connections (Consumer), drained
	// before nc on Close.
	consMu    sync.Mutex
	consConns []*nats.Conn
	prefix    string // subject prefix: "<lower stream>."

	// pubSem bounds publishes awaiting a PubAck (Config.MaxPending). Acquired
	// with the caller's ctx, so a saturated relay turns into ctx errors, not
	// unbounded goroutines.
	pubSem chan struct{}
	// syncPublish switches publishOnce to a request/reply publish; only the
	// benchmark sets it, to compare the two.
	syncPublish bool
	// libAsyncPublish switches publishOnce to the library's async publish
	// (one shared reply subscription); only the benchmark sets it.
	libAsyncPublish bool
	// inProcess: publishes store in the embedded server's stream on the
	// publisher's goroutine (pubinproc.go).
	inProcess bool
	// boxes are the publishes' reply inboxes (pubreply.go).
	boxes *replyBoxes

	// syncer is the group fsync barrier for Sync "always" (embedded only).
	syncer *storeSyncer

	ready readyCache
	// fullAtBytes: the stream's size (from a fresh stream info) when a
	// publish last failed with ErrFull; 0 when not known to be full.
	fullAtBytes atomic.Int64
	fullNoting  atomic.Bool // one noteFull at a time

	// What Open found lost when it loaded the store: by the relay's own
	// record (record.go) or, without one, as the server reported it.
	lostMsgs, lostBytes uint64
	// rec is the relay's account of the stream for the next start-up loss
	// check; nil when the check is off (external server, or Listen).
	rec *seqRecord

	// down is set while the embedded store cannot take writes (full disk);
	// watch clears it once a reload worked (storewatch.go).
	down  atomic.Pointer[storeDown]
	watch *storeWatcher

	// avail logs JetStream going away and coming back once per change for
	// the whole process (availability.go).
	avail *availability

	closing   atomic.Bool  // set when Close starts: new publishes fail, retries stop
	inflight  atomic.Int64 // publishes in progress; Close waits for them
	closeOnce sync.Once
	closeErr  error
}

// Open connects to JetStream — starting the embedded server first when
// cfg.URL is "" — and declares (creates or updates) the stream. It returns an
// error rather than hang: start-up is bounded by ctx and cfg.StartTimeout.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Conn, error) {
	if log == nil {
		log = slog.Default()
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("stream: config: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()

	c := &Conn{
		cfg:    cfg,
		log:    log.With("component", "stream"),
		prefix: strings.ToLower(cfg.Stream) + ".",
		pubSem: make(chan struct{}, cfg.MaxPending),
	}
	c.avail = newAvailability(c.log, c.streamAnswers, func() nats.Status { return c.nc.Status() })
	var (
		before  storeScan
		trouble <-chan struct{}
		err     error
	)
	if cfg.URL == "" {
		before, err = scanStore(cfg.StoreDir, cfg.Stream)
		if err != nil {
			return nil, fmt.Errorf("stream: open: %w", err)
		}
		if c.srv, trouble, err = startEmbedded(ctx, cfg, log); err != nil {
			return nil, fmt.Errorf("stream: open: %w", err)
		}
	}
	if err := c.connect(ctx); err != nil {
		c.shutdownServer(cfg.CloseTimeout)
		return nil, fmt.Errorf("stream: open: %w", err)
	}
	if err := c.declareStream(ctx, before); err != nil {
		c.closeWithin(cfg.CloseTimeout)
		return nil, fmt.Errorf("stream: open: %w", err)
	}
	if sync, _ := parseSync(cfg.Sync); cfg.URL == "" && sync.always && !cfg.nativeSyncAlways {
		if c.syncer, err = newStoreSyncer(before.dir, before.topDir, c.log); err != nil {
			c.closeWithin(cfg.CloseTimeout)
			return nil, fmt.Errorf("stream: open: %w", err)
		}
	}
	if c.srv != nil {
		c.inProcess = true
		c.startStoreWatch(cfg.storeCheckEvery, trouble)
	}
	return c, nil
}

func (c *Conn) connect(ctx context.Context) error {
	nc, js, err := c.dial(ctx, "relay", slog.LevelWarn)
	if err != nil {
		return err
	}
	c.nc, c.js = nc, js
	c.boxes = newReplyBoxes(nc, replyBoxesIdle)
	return nil
}

// dial opens one NATS connection (in-process to the embedded server, or to
// Config.URL) and its JetStream context, named name. A disconnect and a
// reconnect are logged at level (Info for the reconnect once level is
// Warn): the main connection's lines are the operator's, a consumer's own
// connection goes away with it and only repeats them (Debug).
func (c *Conn) dial(ctx context.Context, name string, level slog.Level) (*nats.Conn, jetstream.JetStream, error) {
	reconnLevel := min(level, slog.LevelInfo)
	opts := []nats.Option{
		nats.Name(name),
		nats.DrainTimeout(c.cfg.CloseTimeout),
		nats.MaxReconnects(-1), // a NATS restart must not leave the relay disconnected for good
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			// A broken connection fails each write in flight; that is the
			// disconnect, logged once below (and by availability), not news.
			level := slog.LevelWarn
			var opErr *net.OpError
			if errors.As(err, &opErr) || errors.Is(err, io.EOF) {
				level = slog.LevelDebug
			}
			c.log.Log(context.Background(), level, "nats async error", "subject", subj, "err", err)
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				c.log.Log(context.Background(), level, "nats disconnected", "connection", name, "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.log.Log(context.Background(), reconnLevel, "nats reconnected", "connection", name, "url", nc.ConnectedUrlRedacted())
		}),
	}
	url := c.cfg.URL
	auth, err := c.cfg.authOptions()
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, auth...)
	if c.srv != nil {
		// In-process: a net.Pipe into the server, no TCP, no listener needed.
		opts = append(opts, nats.InProcessServer(c.srv))
		url = ""
	}
	if dl, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(time.Until(dl)))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats %q: %w: %w", redactURL(c.cfg.URL), ErrUnavailable, err)
	}
	js, err := jetstream.New(nc,
		// Only for the library's async publish, which Publish uses solely in
		// the benchmark's comparison mode (libAsyncPublish; Publish itself
		// waits on a reply box, pubreply.go). Its cap is a backstop above
		// pubSem: a publish abandoned by its ctx frees pubSem before its
		// PubAck future is settled; the timeout settles a future whose
		// PubAck never came.
		jetstream.WithPublishAsyncMaxPending(2*c.cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(c.cfg.PublishTimeout),
	)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream context: %w", err)
	}
	return nc, js, nil
}

func redactURL(u string) string {
	// Credentials in nats://user:pass@host must not reach logs or errors;
	// each server of a comma-separated list is redacted on its own, so the
	// list keeps every host.
	parts := strings.Split(u, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if j := strings.Index(p, "://"); j >= 0 && j < at {
				parts[i] = p[:j+3] + "***" + p[at:]
			} else {
				parts[i] = "***" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

func (c *Conn) streamConfig() jetstream.StreamConfig {
	maxBytes := c.cfg.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	return jetstream.StreamConfig{
		Name:        c.cfg.Stream,
		Description: "relay: accepted envelopes awaiting forwarding",
		Subjects:    []string{c.prefix + ">"},
		// A message leaves once a worker acks it (after the upstream's 2xx or
		// the spool's commit).
		Retention: jetstream.WorkQueuePolicy,
		// Full means refuse new (→ 503 to the SDK), never drop old.
		Discard:    jetstream.DiscardNew,
		MaxBytes:   maxBytes,
		MaxMsgs:    -1,
		MaxAge:     0,
		MaxMsgSize: -1,
		Duplicates: DuplicateWindow,
		Storage:    jetstream.FileStorage,
		Replicas:   c.cfg.Replicas,
	}
}

// declareStream creates the stream, or updates it when its settings differ.
// before is what was on disk ahead of an embedded start: if it held messages
// and the server did not load the stream, we refuse to create a fresh, empty
// one over it (that would silently start empty).
// streamLookupRetries counts lookups of the stream at start-up that the
// JetStream API did not answer and that were tried again (apiwait.go).
var streamLookupRetries = metrics.NewCounter(`relay_stream_lookup_retries_total`)

func (c *Conn) declareStream(ctx context.Context, before storeScan) error {
	want := c.streamConfig()
	var st jetstream.Stream
	_, err := c.untilAnswered(ctx, streamLookupRetries, func(err error) {
		c.log.Warn("jetstream not available yet (a cluster electing a leader, or the server restarting); retrying until it answers",
			"stream", want.Name, "err", err)
	}, func(ctx context.Context) error {
		var err error
		st, err = c.js.Stream(ctx, want.Name)
		return err
	})
	switch {
	case err == nil:
		info, err := st.Info(ctx)
		if err != nil {
			return fmt.Errorf("stream %s info: %w", want.Name, err)
		}
		if err := checkRecovered(before, info); err != nil {
			return err
		}
		if c.srv == nil {
			// Someone else's stream: refuse what could drop an envelope
			// rather than rewrite it (their tooling could put it back).
			if err := checkExternalStream(info.Config, c.cfg.Replicas); err != nil {
				return err
			}
			// More copies than asked for are the operator's choice: keep them.
			want.Replicas = max(want.Replicas, info.Config.Replicas)
		}
		if !sameStreamConfig(info.Config, want) {
			c.log.Info("updating stream settings", "stream", want.Name)
			if st, err = c.js.UpdateStream(ctx, want); err != nil {
				return fmt.Errorf("update stream %s: %w", want.Name, err)
			}
		}
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if before.blockBytes > 0 {
			return fmt.Errorf("store %s holds %d bytes in %d message blocks for stream %s, but the server did not load the stream "+
				"(see the nats-server warnings logged above); refusing to create an empty stream over it — move %s aside to start empty",
				before.dir, before.blockBytes, before.blocks, want.Name, before.dir)
		}
		if st, err = c.js.CreateStream(ctx, want); err != nil {
			return fmt.Errorf("create stream %s: %w", want.Name, err)
		}
	default:
		return fmt.Errorf("look up stream %s: %w: %w", want.Name, ErrUnavailable, err)
	}
	c.stream = st
	info := st.CachedInfo()
	var loss startupLoss
	switch {
	case c.srv != nil && c.cfg.Listen == "":
		if loss, err = c.checkStartupLoss(ctx, info, before.dir); err != nil {
			return fmt.Errorf("start-up loss check of %s: %w", before.dir, err)
		}
		c.lostMsgs = loss.lost
	case c.srv != nil:
		// Workers in other processes ack through the listener, and their
		// acks cannot be counted here: a stale record would report them as
		// lost at a later start without Listen.
		if err := os.Remove(recordPath(c.cfg.StoreDir, c.cfg.Stream)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the start-up loss record: %w", err)
		}
		c.log.Info("start-up loss check off: with listen set, other processes may ack messages", "listen", c.cfg.Listen)
	}
	if lost := info.State.Lost; loss.lost == 0 && lost != nil && len(lost.Msgs) > 0 {
		// The server recovered what it could of a damaged store and lost
		// the rest. Never silent: an error line and a counter.
		c.lostMsgs, c.lostBytes = max(c.lostMsgs, uint64(len(lost.Msgs))), lost.Bytes
		recoveryLost.Add(len(lost.Msgs))
		c.log.Error("jetstream store was damaged: messages could not be recovered and are lost",
			"stream", want.Name, "lost_messages", len(lost.Msgs), "lost_bytes", lost.Bytes,
			"first_lost_seq", lost.Msgs[0], "recovered_messages", info.State.Msgs)
	}
	if c.srv != nil {
		c.warnStrandedStreams(ctx)
	}
	c.log.Info("jetstream stream ready", "stream", want.Name, "embedded", c.srv != nil,
		"messages", info.State.Msgs, "bytes", info.State.Bytes, "first_seq", info.State.FirstSeq, "last_seq", info.State.LastSeq,
		"max_bytes", want.MaxBytes, "sync", c.cfg.Sync, "max_payload", c.MaxPayload())
	return nil
}

// warnStrandedStreams logs other streams in the embedded store that still
// hold messages: after a change of the stream name they would sit there
// unforwarded, and nothing else would say so.
func (c *Conn) warnStrandedStreams(ctx context.Context) {
	l := c.js.ListStreams(ctx)
	for info := range l.Info() {
		if info.Config.Name != c.cfg.Stream && !isKVStream(info.Config.Name) && info.State.Msgs > 0 {
			c.log.Warn("another stream in the embedded store holds messages the relay does not forward (was jetstream.stream changed?)",
				"stream", info.Config.Name, "messages", info.State.Msgs, "subjects", info.Config.Subjects, "relay_stream", c.cfg.Stream)
		}
	}
	if err := l.Err(); err != nil {
		c.log.Warn("listing streams", "err", err)
	}
}

// checkExternalStream refuses an existing stream on an external server whose
// settings could remove a message no worker has acked, naming every such
// setting. The relay acknowledges an envelope to the SDK once the stream has
// it, so anything that deletes it before a worker's ack is a silent loss:
//
//   - retention other than workqueue: "limits" keeps acked messages and
//     drops by its limits, "interest" deletes messages no consumer is
//     interested in yet;
//
//   - discard old: a stream at any limit deletes its oldest messages to make
//     room (discard new refuses the publish instead: a 503, not a loss);
//
//   - max_age: messages older than it are deleted, forwarded or not (e.g.
//     held through a long upstream outage);
//
//   - max_msgs_per_subject: subjects are per project, so a project's oldest
//     messages beyond it are deleted (under discard old, or even under
//     discard new unless discard_new_per_subject is set);
//
//   - max_msgs and max_bytes under discard old (named with discard);
//
//   - memory storage: a restart of the NATS server loses every message.
//
//   - fewer replicas than jetstream.replicas: the relay promises as many
//     copies as configured (losing a node's disk would lose envelopes).
//
// max_msgs and max_bytes under discard new only refuse publishes (ErrFull).
func checkExternalStream(have jetstream.StreamConfig, replicas int) error {
	var bad []string
	if have.Replicas < replicas {
		bad = append(bad, fmt.Sprintf("replicas %d (want at least jetstream.replicas, %d: fewer copies than configured lose acknowledged envelopes with a node's disk)", have.Replicas, replicas))
	}
	if have.Retention != jetstream.WorkQueuePolicy {
		bad = append(bad, fmt.Sprintf("retention %s (want workqueue: envelopes must leave the stream only when a worker acks them)", strings.ToLower(have.Retention.String())))
	}
	if have.Discard != jetstream.DiscardNew {
		limits := ""
		if have.MaxMsgs > 0 {
			limits += fmt.Sprintf(", max_msgs %d", have.MaxMsgs)
		}
		if have.MaxBytes > 0 {
			limits += fmt.Sprintf(", max_bytes %d", have.MaxBytes)
		}
		bad = append(bad, fmt.Sprintf("discard old%s (want new: a full stream must refuse new envelopes, not delete old ones)", limits))
	}
	if have.MaxAge > 0 {
		bad = append(bad, fmt.Sprintf("max_age %s (want 0: envelopes older than that are deleted, forwarded or not)", have.MaxAge))
	}
	if have.MaxMsgsPerSubject > 0 {
		bad = append(bad, fmt.Sprintf("max_msgs_per_subject %d (want -1: subjects are per project, so a project's oldest envelopes beyond it are deleted)", have.MaxMsgsPerSubject))
	}
	if have.Storage != jetstream.FileStorage {
		bad = append(bad, fmt.Sprintf("storage %s (want file: a NATS server restart loses every envelope in memory)", strings.ToLower(have.Storage.String())))
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("existing stream %s on the external server has settings that can delete envelopes the relay acknowledged: %s; "+
		"refusing to use it — change them on the NATS server or delete the stream so the relay creates it",
		have.Name, strings.Join(bad, "; "))
}

// sameStreamConfig compares the settings we own; fields the server fills in
// (and ones an operator may tune, like Description) are ignored.
func sameStreamConfig(have, want jetstream.StreamConfig) bool {
	return have.Retention == want.Retention && have.Discard == want.Discard &&
		have.MaxBytes == want.MaxBytes && have.MaxMsgs == want.MaxMsgs && have.MaxAge == want.MaxAge &&
		have.MaxMsgSize == want.MaxMsgSize && have.Duplicates == want.Duplicates &&
		have.Storage == want.Storage && have.Replicas == want.Replicas &&
		len(have.Subjects) == 1 && have.Subjects[0] == want.Subjects[0]
}

// recoveryLost counts messages the server could not recover from a damaged
// store (a drop nobody chose, reported once per Open).
var recoveryLost = metrics.NewCounter(`relay_stream_recovery_lost_total`)

// LostOnOpen reports the messages Open found lost when it loaded the store
// (by the relay's record, see record.go, or as the server reported them) and
// the bytes the server reported lost; zero for an intact store.
func (c *Conn) LostOnOpen() (msgs, bytes uint64) { return c.lostMsgs, c.lostBytes }

// Subject is the subject a message for projectID is published on.
func (c *Conn) Subject(projectID uint64) string {
	return c.prefix + strconv.FormatUint(projectID, 10)
}

// StreamName is the declared stream's name.
func (c *Conn) StreamName() string { return c.cfg.Stream }

// MaxPayload is the largest encoded Message (len of MarshalBinary) one
// Publish may carry: the connection's max_payload less room for the headers
// Publish adds. Ingest derives its envelope limit from it (minus the
// metadata, a few hundred bytes). 32 MiB − 17 KiB for the embedded server;
// whatever the remote server's max_payload allows otherwise (1 MiB by default).
func (c *Conn) MaxPayload() int64 {
	return c.nc.MaxPayload() - headerReserve
}

// ClientURL is the nats:// address other processes can connect to: the
// embedded server's listener when Config.Listen is set, the configured URL
// when external (with any user, password or token in it redacted: it is
// for logs), "" for an in-process-only embedded server.
func (c *Conn) ClientURL() string {
	if c.srv == nil {
		return redactURL(c.cfg.URL)
	}
	if c.cfg.Listen == "" {
		return ""
	}
	return c.srv.ClientURL()
}

// Ready returns nil when JetStream takes writes: the connection is up and the
// stream answers its info request, and it is not full (then it wraps
// ErrFull). The answer is cached for a second so a storm of health checks
// costs one request; concurrent callers share one in-flight check.
func (c *Conn) Ready(ctx context.Context) error {
	// A store known broken is said at once, not once the cached answer
	// expired: publishes already fail with it (and fail fast, in process).
	if err := c.downErr(); err != nil {
		return fmt.Errorf("stream: ready: %w", err)
	}
	return c.ready.get(ctx, c.checkReady)
}

const readyCacheTTL = time.Second

func (c *Conn) checkReady(ctx context.Context) error {
	start := time.Now()
	if err := c.downErr(); err != nil {
		return fmt.Errorf("stream: ready: %w", err)
	}
	if st := c.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("stream: ready: connection %s: %w", st, ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	info, err := c.stream.Info(ctx)
	if err != nil {
		err = fmt.Errorf("stream: ready: stream info: %w: %w", ErrUnavailable, err)
		c.noteUnavailable(ctx, "ready", start, err)
		return err
	}
	if limit := info.Config.MaxBytes; limit > 0 && int64(info.State.Bytes) >= limit {
		return fmt.Errorf("stream: ready: %d of %d bytes used: %w", info.State.Bytes, limit, ErrFull)
	}
	// A stream a few bytes short of MaxBytes refuses every real message.
	// Publish remembers its size when it was refused; until workers have
	// consumed something since, it is still full.
	if at := c.fullAtBytes.Load(); at > 0 {
		if info.State.Bytes >= uint64(at) {
			return fmt.Errorf("stream: ready: refused a publish at %d bytes, now %d: %w", at, info.State.Bytes, ErrFull)
		}
		c.fullAtBytes.CompareAndSwap(at, 0)
	}
	return nil
}

// readyCache remembers the last readiness answer for readyCacheTTL.
type readyCache struct {
	sem  chan struct{} // 1 slot: the one in-flight check
	once sync.Once
	mu   sync.Mutex
	at   time.Time
	err  error
}

func (r *readyCache) get(ctx context.Context, check func(context.Context) error) error {
	r.once.Do(func() { r.sem = make(chan struct{}, 1) })
	if err, ok := r.cached(); ok {
		return err
	}
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("stream: ready: %w: %w", ErrUnavailable, ctx.Err())
	}
	defer func() { <-r.sem }()
	if err, ok := r.cached(); ok { // another caller refreshed it while we waited
		return err
	}
	err := check(ctx)
	r.mu.Lock()
	r.at, r.err = time.Now(), err
	r.mu.Unlock()
	return err
}

func (r *readyCache) cached() (error, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at.IsZero() && time.Since(r.at) < readyCacheTTL {
		return r.err, true
	}
	return nil, false
}

// Close stops new publishes (they fail with ErrUnavailable), waits for those
// in flight to get their PubAck, drains the connection (fetches in flight
// end; un-acked deliveries are redelivered later), and then shuts the
// embedded server down, which flushes its store. Bounded by
// Config.CloseTimeout. Safe to call more than once. Stop ingest before
// calling it; workers may still hold deliveries (their acks then fail, and
// the messages come back after AckWait).
func (c *Conn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.CloseTimeout)
	defer cancel()
	return c.CloseContext(ctx)
}

// CloseContext is Close bounded by ctx instead of Config.CloseTimeout.
func (c *Conn) CloseContext(ctx context.Context) error {
	c.closeOnce.Do(func() { c.closeErr = c.close(ctx) })
	return c.closeErr
}

func (c *Conn) closeWithin(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_ = c.CloseContext(ctx) // only on a failed Open, whose error is what the caller needs
}

func (c *Conn) close(ctx context.Context) error {
	c.closing.Store(true)
	c.avail.close()
	var errs []error
	// Let publishes in flight get their PubAck (and fsync): draining first
	// would drop their acks, and their callers would answer 503 for
	// messages that are in fact stored.
	for c.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("%d publishes still waiting: %w", c.inflight.Load(), ctx.Err()))
		case <-time.After(2 * time.Millisecond):
			continue
		}
		break
	}
	c.stopStoreWatch() // at most one check (a reload) in progress
	if c.syncer != nil {
		c.syncer.close() // at most one fsync round
	}
	// The consumers' connections first: draining one sends the acks still
	// in its buffer before the server goes.
	c.consMu.Lock()
	conns := append(c.consConns, c.nc)
	c.consConns = nil
	c.consMu.Unlock()
	for _, nc := range conns {
		if err := drainConn(ctx, nc); err != nil {
			errs = append(errs, err)
		}
	}
	if c.boxes != nil {
		c.boxes.stop()
	}
	if c.srv != nil {
		d := time.Until(deadlineOr(ctx, time.Now().Add(DefaultCloseTimeout)))
		if err := c.shutdownServer(d); err != nil {
			errs = append(errs, err)
		}
	}
	// Last: acks still in flight above count until the connection is gone.
	if err := c.rec.close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stream: close: %w", err)
	}
	return nil
}

// drainConn drains nc (its subscriptions, then what it still has to send)
// and closes it, or cuts it when ctx ends first: un-acked messages are then
// redelivered, nothing else is lost.
func drainConn(ctx context.Context, nc *nats.Conn) error {
	if nc == nil {
		return nil
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	switch err := nc.Drain(); {
	case errors.Is(err, nats.ErrConnectionClosed):
		// already closed (e.g. the server went away for good)
	case err != nil:
		nc.Close()
		return fmt.Errorf("drain: %w", err)
	default:
		select {
		case <-closed:
		case <-ctx.Done():
			nc.Close() // drain did not finish in time: cut it; un-acked messages are redelivered
			return fmt.Errorf("drain: %w", ctx.Err())
		}
	}
	return nil
}

func deadlineOr(ctx context.Context, def time.Time) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return def
}

// shutdownServer stops the embedded server and waits for it (its store is
// flushed and closed by then), at most d.
func (c *Conn) shutdownServer(d time.Duration) error {
	if c.srv == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		c.srv.Shutdown()
		c.srv.WaitForShutdown()
		close(done)
	}()
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		// The goroutine keeps going; the process is exiting anyway, and
		// JetStream's file store survives an unclean stop (it is recovered at
		// the next start).
		return fmt.Errorf("embedded nats-server did not shut down within %s", d)
	}
}
