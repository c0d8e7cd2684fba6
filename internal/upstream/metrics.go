package upstream

import "github.com/VictoriaMetrics/metrics"

// Metrics of the upstream client. Drops are not counted here: a Rejected
// result is the worker's to drop (and count), or to keep.
var (
	requestsAccepted    = metrics.NewCounter(`relay_upstream_requests_total{class="accepted"}`)
	requestsRateLimited = metrics.NewCounter(`relay_upstream_requests_total{class="rate_limited"}`)
	requestsRetryable   = metrics.NewCounter(`relay_upstream_requests_total{class="retryable"}`)
	requestsRejected    = metrics.NewCounter(`relay_upstream_requests_total{class="rejected"}`)
	requestsDenied      = metrics.NewCounter(`relay_upstream_requests_total{class="denied"}`)

	// sentBytes counts request bodies as sent (after Content-Encoding),
	// envelopeBytes the same bodies before encoding; their ratio is the
	// compression ratio.
	sentBytes     = metrics.NewCounter(`relay_upstream_sent_bytes_total`)
	envelopeBytes = metrics.NewCounter(`relay_upstream_envelope_bytes_total`)

	requestDuration = metrics.NewHistogram(`relay_upstream_request_duration_seconds`)

	// staleRetries counts sends replayed because their pooled keep-alive
	// connection turned out dead.
	staleRetries = metrics.NewCounter(`relay_upstream_stale_connection_retries_total`)

	probeUp   = metrics.NewCounter(`relay_upstream_probes_total{result="up"}`)
	probeDown = metrics.NewCounter(`relay_upstream_probes_total{result="down"}`)
)

func classCounter(c Class) *metrics.Counter {
	switch c {
	case Accepted:
		return requestsAccepted
	case RateLimited:
		return requestsRateLimited
	case Retryable:
		return requestsRetryable
	case Denied:
		return requestsDenied
	default:
		return requestsRejected
	}
}
