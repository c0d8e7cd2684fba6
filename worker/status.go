package worker

import "time"

// Upstream states as UpstreamState reports them.
const (
	UpstreamUp      = "up"      // the last outcome was an answer (or nothing failed yet)
	UpstreamFailing = "failing" // sends fail, for no longer than the outage grace period yet
	UpstreamOutage  = "outage"  // an outage is declared: envelopes go to the spool
)

// UpstreamState reports the upstream's state as the worker's outage
// detector sees it, since when sends have been failing (zero when up), and
// whether the failures are denials (401/403/404 for every key). For the
// status page and `relay status`; it takes the detector's lock only.
func (w *Worker) UpstreamState() (state string, since time.Time, denied bool) {
	o := w.outage
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case o.active:
		return UpstreamOutage, o.failingSince, o.denied
	case !o.failingSince.IsZero():
		return UpstreamFailing, o.failingSince, o.denied
	}
	return UpstreamUp, time.Time{}, false
}

// Totals returns what the /metrics counters relay_worker_forwarded_total
// plus relay_worker_drained_total (envelopes the upstream accepted, from the
// stream or the spool) and relay_worker_spooled_total hold: the totals the
// status page charts. They count every worker of the process.
func Totals() (forwarded, spooled uint64) {
	return forwardedTotal.Get() + drainedTotal.Get(), spooledTotal.Get()
}
