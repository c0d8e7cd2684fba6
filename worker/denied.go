package worker

import (
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// denials remembers, per public key, that the upstream answered 401, 403 or
// 404 (upstream.Denied): an answer about the relay or the key, not about one
// envelope. Every envelope of a denied key is held — like a 429 without a
// duration — and the key is tried again with backoff: RetryDelay·2^(n-1)
// after the n-th denial in a row, capped at MaxRetryInterval, so the
// upstream sees about one request per key per interval instead of one per
// envelope.
//
// Invariants: a key is in the map exactly while its last answer from the
// upstream was a denial; any other answer for the key (2xx, 429, a final
// 4xx) removes it (clear). The state of a key changes when it enters the
// map, when its status changes (401 → 403), and when it leaves; each change
// is reported to the caller exactly once, for the one ERROR/INFO log line.
type denials struct {
	now  func() time.Time
	base time.Duration
	max  time.Duration

	mu   sync.Mutex
	keys map[string]*denial
	last int // the status of the latest denial of any key
}

// denial is the state of one denied key.
type denial struct {
	status int       // the last denial's status
	since  time.Time // when this status was first answered
	first  time.Time // when the key was first denied (any status) in this run of denials
	until  time.Time // nothing is sent for the key before
	n      int       // denials in a row
	held   int       // envelopes held back while in this state (a redelivered one counts again)
}

var (
	deniedKeysGauge = metrics.NewGauge(`relay_worker_denied_keys`, nil)
)

// deniedCounter counts denial answers by status:
// relay_worker_upstream_denied_total{status="401"}.
func deniedCounter(status int) *metrics.Counter {
	return metrics.GetOrCreateCounter(`relay_worker_upstream_denied_total{status="` + strconv.Itoa(status) + `"}`)
}

func newDenials(now func() time.Time, base, max time.Duration) *denials {
	return &denials{now: now, base: base, max: max, keys: make(map[string]*denial)}
}

// record notes a denial with status for key. It returns the state before
// (prev, nil when the key was not denied) and whether the state changed.
func (ds *denials) record(key string, status int) (prev denial, wasDenied, changed bool) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	now := ds.now()
	d, ok := ds.keys[key]
	if !ok {
		d = &denial{first: now}
		ds.keys[key] = d
		deniedKeysGauge.Inc()
	} else {
		prev = *d
	}
	if !ok || d.status != status {
		changed = true
		d.status, d.since, d.held = status, now, 0
	}
	d.n++
	ds.last = status
	wait := ds.base
	for i := 1; i < d.n && wait < ds.max; i++ {
		wait *= 2
	}
	d.until = now.Add(min(wait, ds.max))
	return prev, ok, changed
}

// clear forgets key's denial after another answer for it; ok reports
// whether it was denied (the state changed).
func (ds *denials) clear(key string) (was denial, ok bool) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	d, ok := ds.keys[key]
	if !ok {
		return denial{}, false
	}
	delete(ds.keys, key)
	deniedKeysGauge.Dec()
	return *d, true
}

// hold reports how long an envelope of key must still wait, and the
// denial's state; wait 0 when the key is not denied or its retry is due.
// A held envelope is counted in the state's held figure.
func (ds *denials) hold(key string) (wait time.Duration, d denial) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	p, ok := ds.keys[key]
	if !ok {
		return 0, denial{}
	}
	wait = p.until.Sub(ds.now())
	if wait <= 0 {
		return 0, *p
	}
	p.held++
	return wait, *p
}

// statusOf is the status key was last denied with or, when the key is not
// denied, the latest denial of any key (in an outage of denials every key is
// refused alike); 0 when there was none.
func (ds *denials) statusOf(key string) int {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if d, ok := ds.keys[key]; ok {
		return d.status
	}
	return ds.last
}
