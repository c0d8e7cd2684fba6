package upstream

import (
	"strconv"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// Metrics of the upstream client. Drops are not counted here: a Rejected
// result is the worker's to drop (and count), or to keep.
var (
	// sentBytes counts request bodies as sent (after Content-Encoding),
	// envelopeBytes the same bodies before encoding; their ratio is the
	// compression ratio.
	sentBytes     = metrics.NewCounter(`relay_upstream_sent_bytes_total`)
	envelopeBytes = metrics.NewCounter(`relay_upstream_envelope_bytes_total`)

	// requestDuration is a Prometheus (le) histogram so that any Prometheus
	// can take quantiles of it; the buckets reach past the default 30 s
	// request timeout.
	requestDuration = metrics.NewPrometheusHistogramExt(`relay_upstream_request_duration_seconds`,
		[]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60})

	// staleRetries counts sends replayed because their pooled keep-alive
	// connection turned out dead.
	staleRetries = metrics.NewCounter(`relay_upstream_stale_connection_retries_total`)

	probeUp   = metrics.NewCounter(`relay_upstream_probes_total{result="up"}`)
	probeDown = metrics.NewCounter(`relay_upstream_probes_total{result="down"}`)
)

var classNames = [...]string{
	Accepted:    "accepted",
	RateLimited: "rate_limited",
	Retryable:   "retryable",
	Rejected:    "rejected",
	Denied:      "denied",
}

// requestCounters caches relay_upstream_requests_total{class,status}: the
// class is what the relay made of the answer, status the HTTP status ("none"
// when no response arrived: a connection error or a timeout). Both label
// sets are bounded (five classes, statuses 100-599).
var requestCounters [len(classNames)][501]atomic.Pointer[metrics.Counter]

// countRequest counts one send by class and status.
func countRequest(c Class, status int) {
	if c < 0 || int(c) >= len(classNames) {
		c = Rejected
	}
	slot := 0 // no response
	if status >= 100 && status <= 599 {
		slot = status - 99
	}
	p := &requestCounters[c][slot]
	ctr := p.Load()
	if ctr == nil {
		st := "none"
		if slot > 0 {
			st = strconv.Itoa(status)
		}
		ctr = metrics.GetOrCreateCounter(`relay_upstream_requests_total{class="` + classNames[c] + `",status="` + st + `"}`)
		p.Store(ctr)
	}
	ctr.Inc()
}
