package project

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// SharedStore is a key-value store the relay processes of one deployment
// share (internal/stream's JetStream key-value bucket). Get returns nil,
// nil for a key it does not hold.
type SharedStore interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, value []byte) error
}

// Shared-cache use: hits, and failures (each falls back to the upstream).
var (
	sharedHits      = metrics.NewCounter(`relay_project_shared_total{result="hit"}`)
	sharedMisses    = metrics.NewCounter(`relay_project_shared_total{result="miss"}`)
	sharedStale     = metrics.NewCounter(`relay_project_shared_total{result="stale"}`)
	sharedGetErrors = metrics.NewCounter(`relay_project_shared_errors_total{op="get"}`)
	sharedPutErrors = metrics.NewCounter(`relay_project_shared_errors_total{op="put"}`)
	sharedBad       = metrics.NewCounter(`relay_project_shared_errors_total{op="decode"}`)
)

// sharedRecord is what one process puts for a key: the upstream's answer
// as it came, and when it came. State null: the upstream does not know the
// key.
type sharedRecord struct {
	FetchedAt time.Time       `json:"fetchedAt"`
	State     json.RawMessage `json:"state"`
}

// sharedKey maps a public key to a bucket key. A DSN key is 32 characters
// but not checked to be hex (§2.1): one outside the bucket's alphabet is
// base64url-encoded, under a prefix that no plain key has.
func sharedKey(publicKey string) string {
	for i := 0; i < len(publicKey); i++ {
		c := publicKey[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "b64." + base64.RawURLEncoding.EncodeToString([]byte(publicKey))
		}
	}
	return publicKey
}

// fromShared installs the shared record of key when it is fresh by this
// process's own expiry, and reports whether it did. A store that fails is
// logged (once per failing spell) and the key is asked upstream.
func (u *UpstreamSource) fromShared(ctx context.Context, key string, now time.Time) bool {
	if u.opts.Shared == nil {
		return false
	}
	b, err := u.opts.Shared.Get(ctx, sharedKey(key))
	if err != nil {
		sharedGetErrors.Inc()
		u.sharedFailed("get", err)
		return false
	}
	u.sharedWorks()
	if b == nil {
		sharedMisses.Inc()
		return false
	}
	var rec sharedRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.FetchedAt.IsZero() {
		sharedBad.Inc()
		return false
	}
	limit := u.opts.Expiry
	if len(nullToNil(rec.State)) == 0 {
		limit = u.opts.MissExpiry
	}
	age := now.Sub(rec.FetchedAt)
	if age >= limit || age < -time.Minute { // stale, or from a clock far ahead
		sharedStale.Inc()
		return false
	}
	if v, ok := u.states.Load(key); ok && !v.(*cached).fetched.Before(rec.FetchedAt) {
		sharedStale.Inc() // nothing newer than what this process has
		return false
	}
	sharedHits.Inc()
	fetchKeysShared.Inc()
	c := u.parse(key, rec.State, now)
	c.fetched = rec.FetchedAt
	u.settle(key, c)
	return true
}

// share puts what the upstream answered for key, for the other processes.
func (u *UpstreamSource) share(ctx context.Context, key string, c *cached) {
	if u.opts.Shared == nil {
		return
	}
	rec := sharedRecord{FetchedAt: c.fetched, State: json.RawMessage("null")}
	if c.entry != nil {
		switch {
		case c.entry.State != nil:
			rec.State = c.entry.State.Raw
		default:
			return // an unusable config: each process asks and logs for itself
		}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		sharedBad.Inc()
		return
	}
	if err := u.opts.Shared.Put(ctx, sharedKey(key), b); err != nil {
		sharedPutErrors.Inc()
		u.sharedFailed("put", err)
		return
	}
	u.sharedWorks()
}

func (u *UpstreamSource) sharedFailed(op string, err error) {
	if !u.sharedDown.Swap(true) {
		u.log.Warn("project configs: the shared cache failed; asking the upstream directly until it works again", "op", op, "err", err)
	}
}

func (u *UpstreamSource) sharedWorks() {
	if u.sharedDown.Swap(false) {
		u.log.Info("project configs: the shared cache works again")
	}
}

// fromSharedOnly answers the queued keys the shared cache holds fresh
// records for, before the relay is registered: reading the bucket needs no
// registration, so a process restarted while the upstream is unreachable
// (or before it has registered) knows the projects the deployment fetched
// recently. The other keys stay queued for the upstream.
func (u *UpstreamSource) fromSharedOnly(ctx context.Context) {
	if u.opts.Shared == nil {
		return
	}
	keys, recs, _ := u.take(time.Now(), u.opts.MaxQueued)
	if len(keys) == 0 {
		return
	}
	now := u.opts.Now()
	var rest []string
	for _, k := range keys {
		if !u.fromShared(ctx, k, now) {
			rest = append(rest, k)
		}
	}
	u.mu.Lock()
	for _, k := range rest {
		if _, ok := u.queued[k]; !ok {
			u.queued[k] = recs[k]
		}
	}
	u.mu.Unlock()
	u.release(keys)
}
