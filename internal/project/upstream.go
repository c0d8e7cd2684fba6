package project

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cenkalti/backoff/v4"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/scrub"
)

// ProjectConfigsPath is the upstream's project-config endpoint, version 3
// (protocol doc §7.3).
const ProjectConfigsPath = "/api/0/relays/projectconfigs/?version=3"

// Querier sends a signed JSON query to the upstream (*upstream.Client).
type Querier interface {
	Query(ctx context.Context, path string, body []byte, out any) error
}

// Authenticator tells whether the relay is registered with the upstream
// (*registration.Monitor). Project configs are only asked for once it is.
type Authenticator interface {
	Authenticated() bool
	Wait(ctx context.Context) error
}

// networkError is implemented by *upstream.QueryError: a failure that says
// nothing about the request (no answer, 502-504).
type networkError interface{ Network() bool }

// Fetches and what came of them, by key.
var (
	fetchQueries      = metrics.NewCounter(`relay_project_fetch_queries_total{result="ok"}`)
	fetchQueriesNet   = metrics.NewCounter(`relay_project_fetch_queries_total{result="network"}`)
	fetchQueriesErr   = metrics.NewCounter(`relay_project_fetch_queries_total{result="rejected"}`)
	fetchKeysConfig   = metrics.NewCounter(`relay_project_fetch_keys_total{result="config"}`)
	fetchKeysMissing  = metrics.NewCounter(`relay_project_fetch_keys_total{result="missing"}`)
	fetchKeysInvalid  = metrics.NewCounter(`relay_project_fetch_keys_total{result="invalid"}`)
	fetchKeysPending  = metrics.NewCounter(`relay_project_fetch_keys_total{result="pending"}`)
	fetchKeysSame     = metrics.NewCounter(`relay_project_fetch_keys_total{result="unchanged"}`)
	fetchKeysShared   = metrics.NewCounter(`relay_project_fetch_keys_total{result="shared"}`)
	fetchKeysGaveUp   = metrics.NewCounter(`relay_project_fetch_keys_total{result="pending_timeout"}`)
	fetchQueueRefused = metrics.NewCounter(`relay_project_fetch_refused_total{reason="queue_full"}`)
)

// UpstreamOptions configure an UpstreamSource; the cache.* and http.* keys
// of the same names.
type UpstreamOptions struct {
	BatchInterval time.Duration // cache.batch_interval
	BatchSize     int           // cache.batch_size
	Expiry        time.Duration // cache.project_expiry
	Grace         time.Duration // cache.project_grace_period
	MissExpiry    time.Duration // cache.miss_expiry
	// RetryDelay and MaxRetryInterval shape the backoff after a failed
	// query (http.retry_delay, http.max_retry_interval); a key the upstream
	// answers "pending" is asked again after RetryDelay.
	RetryDelay       time.Duration
	MaxRetryInterval time.Duration
	// PendingTimeout is how long a key the upstream keeps answering
	// "pending" is asked for before the source stops (it is asked again on
	// its next use). 0: 30 s, Relay's limits.query_timeout.
	PendingTimeout time.Duration
	// MaxQueued bounds the keys waiting to be fetched: any client can send
	// made-up keys. 0: 10000.
	MaxQueued int
	// Shared is where configs are shared with the deployment's other
	// processes (nil: not shared).
	Shared SharedStore
	// Now replaces time.Now in tests (expiry decisions only).
	Now    func() time.Time
	Logger *slog.Logger
}

// cached is what the source holds for one key; replaced as a whole.
type cached struct {
	entry   *Entry // nil: the upstream does not know the key (missing)
	fetched time.Time
	rev     string
}

// UpstreamSource fetches project configs from the upstream for the keys the
// registry is asked about and does not have in a project file (managed mode,
// protocol doc §6.4, §7.3). See the package documentation for the cache's
// rules.
type UpstreamSource struct {
	reg  *Registry
	q    Querier
	auth Authenticator
	opts UpstreamOptions
	log  *slog.Logger

	states sync.Map // public key → *cached

	// failing: the last query failed; cached states and misses are served
	// past their expiry until one succeeds.
	failing atomic.Bool
	// sharedDown: the shared store failed last time (logged once a spell).
	sharedDown atomic.Bool

	mu     sync.Mutex
	queued map[string]queuedKey
	// inflight: keys being asked for right now; a lookup meanwhile does not
	// queue them again. Invariant: a key leaves inflight in the same
	// critical section (mu) that stores its answer (settle), or, when it
	// got none, before the waiters are woken (release). So whoever sees
	// the answer — a waiter woken by it, or any lookup that loads it — and
	// needs the key fetched again (its state expired meanwhile) can queue
	// it; a key still inflight after its answer was visible would drop
	// that request, and the key would not be asked for again until its
	// next use.
	inflight map[string]struct{}
	wake     chan struct{} // a key was queued (capacity 1)
	changed  chan struct{} // closed and replaced whenever states change

	compiled sync.Map // scrubKey → *scrub.Scrubber, settings compiled once
}

type queuedKey struct {
	notBefore    time.Time // asked no earlier than this (pending, backoff)
	pendingSince time.Time // first "pending" answer; zero when none
}

// NewUpstreamSource returns a source that fills reg from the upstream
// through q once auth says the relay is registered. Run fetches; until it
// runs, unknown keys stay Pending.
func NewUpstreamSource(reg *Registry, q Querier, auth Authenticator, opts UpstreamOptions) (*UpstreamSource, error) {
	if reg == nil || q == nil || auth == nil {
		return nil, errors.New("project upstream: registry, querier and authenticator are required")
	}
	if opts.BatchInterval <= 0 || opts.BatchSize <= 0 || opts.Expiry <= 0 || opts.Grace < 0 || opts.MissExpiry <= 0 ||
		opts.RetryDelay <= 0 || opts.MaxRetryInterval < opts.RetryDelay {
		return nil, fmt.Errorf("project upstream: bad options (batch %s/%d, expiry %s, grace %s, miss %s, retry %s..%s)",
			opts.BatchInterval, opts.BatchSize, opts.Expiry, opts.Grace, opts.MissExpiry, opts.RetryDelay, opts.MaxRetryInterval)
	}
	if opts.PendingTimeout <= 0 {
		opts.PendingTimeout = 30 * time.Second
	}
	if opts.MaxQueued <= 0 {
		opts.MaxQueued = 10000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u := &UpstreamSource{
		reg: reg, q: q, auth: auth, opts: opts, log: log,
		queued:   make(map[string]queuedKey),
		inflight: make(map[string]struct{}),
		wake:     make(chan struct{}, 1),
		changed:  make(chan struct{}),
	}
	reg.up.Store(u)
	return u, nil
}

// lookup answers for a key no project file has. It never blocks: a key to
// fetch is queued.
func (u *UpstreamSource) lookup(key string) (Status, *Entry) {
	v, ok := u.states.Load(key)
	if !ok {
		u.enqueue(key, nil)
		return Pending, nil
	}
	c := v.(*cached)
	age := u.opts.Now().Sub(c.fetched)
	if c.entry == nil {
		if age < u.opts.MissExpiry {
			return Missing, nil
		}
		u.enqueue(key, c)
		if u.failing.Load() {
			return Missing, nil
		}
		return Pending, nil
	}
	if age >= u.opts.Expiry {
		u.enqueue(key, c)
	}
	if age < u.opts.Expiry+u.opts.Grace || u.failing.Load() {
		return Known, c.entry
	}
	return Pending, nil
}

// enqueue queues key for the next batch unless it is already queued or
// being asked for, or its state was replaced since the caller loaded seen
// (nil: the caller found none): then the answer the caller would ask for
// has come in the meantime (settle stores it under mu), and asking again
// would cost a redundant request. A state that was swept meanwhile is
// asked for.
func (u *UpstreamSource) enqueue(key string, seen *cached) {
	u.mu.Lock()
	_, queued := u.queued[key]
	_, inflight := u.inflight[key]
	replaced := false
	if v, ok := u.states.Load(key); ok && v.(*cached) != seen {
		replaced = true
	}
	if queued || inflight || replaced {
		u.mu.Unlock()
		return
	}
	if len(u.queued) >= u.opts.MaxQueued {
		u.mu.Unlock()
		fetchQueueRefused.Inc()
		return
	}
	u.queued[key] = queuedKey{notBefore: time.Now()}
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// settle makes c the state of key and takes key out of inflight, at once
// (see inflight's invariant).
func (u *UpstreamSource) settle(key string, c *cached) {
	u.mu.Lock()
	u.states.Store(key, c)
	delete(u.inflight, key)
	u.mu.Unlock()
}

// release takes keys out of inflight (those settle did not), then wakes
// the waiters of WaitKnown, in that order: a waiter that looks one of them
// up again can queue it.
func (u *UpstreamSource) release(keys []string) {
	u.mu.Lock()
	for _, k := range keys {
		delete(u.inflight, k)
	}
	close(u.changed)
	u.changed = make(chan struct{})
	u.mu.Unlock()
}

// requeue puts keys back to be asked no earlier than at.
func (u *UpstreamSource) requeue(keys []string, at time.Time, pendingSince map[string]time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, k := range keys {
		if _, ok := u.queued[k]; ok {
			continue
		}
		u.queued[k] = queuedKey{notBefore: at, pendingSince: pendingSince[k]}
	}
}

// take removes and returns up to n keys due at now, with their queue
// records, and when the next remaining key is due (zero: none).
func (u *UpstreamSource) take(now time.Time, n int) ([]string, map[string]queuedKey, time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var (
		keys []string
		recs = make(map[string]queuedKey)
		next time.Time
	)
	for k, q := range u.queued {
		if !q.notBefore.After(now) && len(keys) < n {
			keys = append(keys, k)
			recs[k] = q
			delete(u.queued, k)
			u.inflight[k] = struct{}{}
			continue
		}
		if next.IsZero() || q.notBefore.Before(next) {
			next = q.notBefore
		}
	}
	return keys, recs, next
}

// Run fetches queued keys until ctx ends: it waits for a key, collects for
// BatchInterval, waits for the registration, then asks for at most
// BatchSize keys per request. It returns ctx's error.
func (u *UpstreamSource) Run(ctx context.Context) error {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = u.opts.RetryDelay
	bo.Multiplier = 1.5
	bo.MaxInterval = u.opts.MaxRetryInterval
	bo.MaxElapsedTime = 0
	bo.Reset()
	var (
		next      time.Time // when a requeued key is due; zero: none
		holdUntil time.Time // no request before this, after a failed one
	)
	lastSweep := u.opts.Now()
	for {
		var (
			t     *time.Timer
			timer <-chan time.Time
		)
		if !next.IsZero() {
			t = time.NewTimer(max(time.Until(next), 0))
			timer = t.C
		}
		select {
		case <-ctx.Done():
		case <-u.wake:
		case <-timer:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := sleep(ctx, max(u.opts.BatchInterval, time.Until(holdUntil))); err != nil {
			return err
		}
		if err := u.waitRegistered(ctx); err != nil {
			return err
		}
		for {
			keys, recs, due := u.take(time.Now(), u.opts.BatchSize)
			next = due
			if len(keys) == 0 {
				break
			}
			if retryIn, ok := u.fetch(ctx, keys, recs, bo); !ok {
				// Failed: these keys are requeued after the backoff, and
				// no other batch is asked for before then either.
				holdUntil = time.Now().Add(retryIn)
				break
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if now := u.opts.Now(); now.Sub(lastSweep) >= u.opts.Expiry {
			u.sweep(now)
			lastSweep = now
		}
		_, _, next = u.take(time.Time{}, 0)
	}
}

// waitRegistered waits until the relay is registered. Meanwhile every
// batch of queued keys is answered from the shared cache where it can be
// (fromSharedOnly): reading it needs no registration.
func (u *UpstreamSource) waitRegistered(ctx context.Context) error {
	for {
		if u.auth.Authenticated() {
			return nil // the usual case: fetch reads the shared cache itself
		}
		u.fromSharedOnly(ctx)
		actx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- u.auth.Wait(actx) }() // joined below on every path
		select {
		case err := <-done:
			cancel()
			return err
		case <-u.wake: // new keys while unregistered
			cancel()
			if err := <-done; err == nil {
				return nil // registered just now
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := sleep(ctx, u.opts.BatchInterval); err != nil {
				return err
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// sweep forgets states nobody refreshed: past expiry and grace (misses:
// past their expiry), unless the upstream is failing and they are all
// there is. A key used again is fetched again.
func (u *UpstreamSource) sweep(now time.Time) {
	if u.failing.Load() {
		return
	}
	u.states.Range(func(k, v any) bool {
		c := v.(*cached)
		limit := u.opts.Expiry + u.opts.Grace
		if c.entry == nil {
			limit = u.opts.MissExpiry
		}
		if now.Sub(c.fetched) >= limit {
			u.states.Delete(k)
		}
		return true
	})
}

// The v3 request and answer (protocol doc §7.3).
type configsRequest struct {
	PublicKeys []string  `json:"publicKeys"`
	Revisions  []*string `json:"revisions"`
	FullConfig bool      `json:"fullConfig"`
	NoCache    bool      `json:"noCache"`
}

type configsResponse struct {
	Configs   map[string]json.RawMessage `json:"configs"`
	Pending   []string                   `json:"pending"`
	Unchanged []string                   `json:"unchanged"`
}

// fetch asks for keys: first the shared cache, then the upstream for the
// rest. It reports whether the upstream answered (or was not needed), and
// when it did not, how long to wait before the next request. Every key
// leaves inflight before fetch returns: answered ones as their answer is
// stored, the others (requeued, or given up) at the end, before the
// waiters are woken.
func (u *UpstreamSource) fetch(ctx context.Context, keys []string, recs map[string]queuedKey, bo *backoff.ExponentialBackOff) (time.Duration, bool) {
	defer u.release(keys)
	now := u.opts.Now()
	ask := keys[:0:0]
	for _, k := range keys {
		if u.fromShared(ctx, k, now) {
			continue
		}
		ask = append(ask, k)
	}
	if len(ask) == 0 {
		return 0, true
	}
	req := configsRequest{PublicKeys: ask, Revisions: make([]*string, len(ask))}
	for i, k := range ask {
		if v, ok := u.states.Load(k); ok {
			if rev := v.(*cached).rev; rev != "" {
				req.Revisions[i] = &rev
			}
		}
	}
	body, err := json.Marshal(req)
	if err != nil { // cannot happen for strings; still never dropped silently
		u.log.Error("project configs: encode request", "err", err)
		u.requeue(ask, time.Now().Add(u.opts.MaxRetryInterval), nil)
		return u.opts.MaxRetryInterval, false
	}
	var resp configsResponse
	if err := u.q.Query(ctx, ProjectConfigsPath, body, &resp); err != nil {
		if ctx.Err() != nil {
			return 0, false // shutting down: nothing to retry
		}
		var ne networkError
		if errors.As(err, &ne) && ne.Network() {
			fetchQueriesNet.Inc()
		} else {
			fetchQueriesErr.Inc()
		}
		wait := bo.NextBackOff()
		if !u.failing.Swap(true) {
			u.log.Warn("project configs: the upstream did not answer; cached configs are served until it does", "keys", len(ask), "err", err, "retry_in", wait)
		} else {
			u.log.Debug("project configs: query failed again", "err", err, "retry_in", wait)
		}
		u.requeue(ask, time.Now().Add(wait), nil)
		return wait, false
	}
	fetchQueries.Inc()
	bo.Reset()
	if u.failing.Swap(false) {
		u.log.Info("project configs: the upstream answers again")
	}
	now = u.opts.Now()
	asked := make(map[string]bool, len(ask))
	for _, k := range ask {
		asked[k] = true
	}
	done := make(map[string]bool, len(ask))
	for _, k := range resp.Unchanged {
		v, ok := u.states.Load(k)
		if !ok || done[k] || !asked[k] {
			continue
		}
		done[k] = true
		fetchKeysSame.Inc()
		c := *v.(*cached)
		c.fetched = now
		u.settle(k, &c)
		u.share(ctx, k, &c)
	}
	for k, raw := range resp.Configs {
		if done[k] || !asked[k] { // an answer for a key not asked for is ignored
			continue
		}
		done[k] = true
		c := u.parse(k, raw, now)
		u.settle(k, c)
		u.share(ctx, k, c)
	}
	var again []string
	since := make(map[string]time.Time)
	wallNow := time.Now()
	for _, k := range ask { // pending, or not answered at all: ask again later
		if done[k] {
			continue
		}
		fetchKeysPending.Inc()
		first := recs[k].pendingSince
		if first.IsZero() {
			first = wallNow
		}
		if wallNow.Sub(first) >= u.opts.PendingTimeout {
			fetchKeysGaveUp.Inc()
			u.log.Warn("project configs: the upstream kept the key pending; asking again on its next use", "key", envelope.KeyRef(k), "for", wallNow.Sub(first))
			continue
		}
		again = append(again, k)
		since[k] = first
	}
	u.requeue(again, wallNow.Add(u.opts.RetryDelay), since)
	return 0, true
}

// parse turns one answer into a cached state: null is a miss, a disabled
// state is kept (and refused as ProjectId), a state that does not parse or
// whose scrubbing does not compile is invalid (refused as ProjectState, as
// Relay serves an unparsable config as disabled).
func (u *UpstreamSource) parse(key string, raw json.RawMessage, now time.Time) *cached {
	if len(nullToNil(raw)) == 0 {
		fetchKeysMissing.Inc()
		return &cached{fetched: now}
	}
	e := &Entry{Key: PublicKey{PublicKey: key}, Source: "upstream"}
	st, err := Parse(raw)
	if err == nil {
		e.ProjectID = st.ProjectID
		for _, pk := range st.PublicKeys {
			if pk.PublicKey == key {
				e.Key = pk
			}
		}
		e.scrubber, err = u.compile(st)
	}
	if err != nil {
		fetchKeysInvalid.Inc()
		e.Invalid = err
		u.log.Warn("project configs: the upstream's config for a key is unusable; the key is refused until it is fixed", "key", envelope.KeyRef(key), "err", envelope.RedactKey(err.Error(), key))
		if v, ok := u.states.Load(key); ok && v.(*cached).entry != nil {
			old := v.(*cached).entry
			e.ProjectID, e.scrubber = old.ProjectID, old.scrubber
			e.wasValid = old.Invalid == nil || old.wasValid
		}
		return &cached{entry: e, fetched: now}
	}
	fetchKeysConfig.Inc()
	e.State = st
	return &cached{entry: e, fetched: now, rev: st.Rev}
}

func (u *UpstreamSource) compile(st *State) (*scrub.Scrubber, error) {
	c := &st.Config
	if c.PIIConfig == nil && c.DataScrubbingSettings == nil {
		return nil, nil
	}
	k := scrubKey(st)
	if v, ok := u.compiled.Load(k); ok {
		return v.(*scrub.Scrubber), nil
	}
	sc, err := compileScrubbing(st, u.reg.opts.MaxRecordingSize)
	if err != nil {
		return nil, err
	}
	u.compiled.Store(k, sc)
	return sc, nil
}

func (u *UpstreamSource) changes() <-chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.changed
}

// WaitKnown returns what the registry knows about publicKey as soon as it
// is no longer Pending, or Pending when ctx ends first. Without an upstream
// source it answers at once.
func (r *Registry) WaitKnown(ctx context.Context, publicKey string) (Status, *Entry) {
	for {
		u := r.up.Load()
		var ch <-chan struct{}
		if u != nil {
			ch = u.changes() // before the lookup: no change is missed
		}
		st, e := r.Lookup(publicKey)
		if st != Pending || u == nil {
			return st, e
		}
		select {
		case <-ctx.Done():
			return Pending, nil
		case <-ch:
		}
	}
}
