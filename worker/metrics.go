package worker

import "github.com/VictoriaMetrics/metrics"

// The worker's metrics. Every envelope that leaves the relay other than by a
// 2xx is counted by reason here or in stage.go (stage drops).
var (
	// forwardedTotal counts envelopes the upstream accepted (2xx) from the
	// stream directly; drainedTotal those accepted from the spool.
	forwardedTotal = metrics.NewCounter(`relay_worker_forwarded_total`)
	drainedTotal   = metrics.NewCounter(`relay_worker_drained_total`)
	// retriesTotal counts sends repeated after a retryable failure or a 429.
	retriesTotal = metrics.NewCounter(`relay_worker_retries_total`)
	// rateLimitedTotal counts upstream 429 answers.
	rateLimitedTotal = metrics.NewCounter(`relay_worker_rate_limited_total`)
	// spooledTotal counts envelopes committed to the spool (then acked).
	spooledTotal = metrics.NewCounter(`relay_worker_spooled_total`)
	// redeliveredTotal counts deliveries JetStream made more than once (after
	// a Nak, or an AckWait that ran out — the latter may become a duplicate
	// upstream).
	redeliveredTotal = metrics.NewCounter(`relay_worker_redelivered_total`)
	// nakedTotal counts messages handed back to JetStream un-acked because
	// of a shutdown or a failure (dead-letter write); deferredTotal those
	// handed back to wait out a rate limit of their key.
	nakedTotal    = metrics.NewCounter(`relay_worker_naked_total`)
	deferredTotal = metrics.NewCounter(`relay_worker_rate_limit_deferred_total`)

	// Final drops, each also kept in the spool's dead letters.
	droppedRejected    = metrics.NewCounter(`relay_worker_dropped_total{reason="upstream_rejected"}`)
	droppedStageError  = metrics.NewCounter(`relay_worker_dropped_total{reason="stage_error"}`)
	droppedUndecodable = metrics.NewCounter(`relay_worker_dropped_total{reason="spool_record_undecodable"}`)
	// droppedExpired: held by its key (429, 401/403/404) past
	// MaxEnvelopeDelay.
	droppedExpired = metrics.NewCounter(`relay_worker_dropped_total{reason="expired"}`)

	// Errors that never lose anything but deserve an alert.
	fetchErrorsTotal = metrics.NewCounter(`relay_worker_errors_total{op="fetch"}`)
	ackErrorsTotal   = metrics.NewCounter(`relay_worker_errors_total{op="ack"}`)
	nakErrorsTotal   = metrics.NewCounter(`relay_worker_errors_total{op="nak"}`)
	beatErrorsTotal  = metrics.NewCounter(`relay_worker_errors_total{op="in_progress"}`)
	spoolPutErrors   = metrics.NewCounter(`relay_worker_errors_total{op="spool_put"}`)
	spoolReadErrors  = metrics.NewCounter(`relay_worker_errors_total{op="spool_oldest"}`)
	spoolDelErrors   = metrics.NewCounter(`relay_worker_errors_total{op="spool_delete"}`)
	buryErrorsTotal  = metrics.NewCounter(`relay_worker_errors_total{op="spool_bury"}`)
	spoolFullTotal   = metrics.NewCounter(`relay_worker_spool_full_total`)
	probeFailures    = metrics.NewCounter(`relay_worker_probe_failures_total`)

	// outageGauge is 1 while the upstream is in outage; outagesTotal counts
	// the outages declared.
	outageGauge  = metrics.NewGauge(`relay_worker_outage`, nil)
	outagesTotal = metrics.NewCounter(`relay_worker_outages_total`)
	// inFlightGauge counts messages a consumer holds (fetched, not yet acked
	// or Nak'd); pausedGauge counts consumers that stopped fetching because
	// the spool is full during an outage.
	// spoolWaitGauge counts held messages waiting for the spool to take them
	// (full, or failing).
	inFlightGauge  = metrics.NewGauge(`relay_worker_in_flight`, nil)
	pausedGauge    = metrics.NewGauge(`relay_worker_fetch_paused`, nil)
	spoolWaitGauge = metrics.NewGauge(`relay_worker_spool_waiting`, nil)

	// deadFullGauge is 1 while consumers do not fetch because the dead
	// letters are full; deadFullRefusals counts the envelopes the dead
	// letters refused (each kept: Nak'd, or left in the spool).
	deadFullGauge    = metrics.NewGauge(`relay_worker_dead_letters_full`, nil)
	deadFullRefusals = metrics.NewCounter(`relay_worker_dead_letters_refused_total`)
)
