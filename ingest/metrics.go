package ingest

import (
	"strconv"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// route identifies what a request was for; it labels the request metrics.
type route uint8

const (
	routeOther       route = iota // not a route of ours (404)
	routeEnvelope                 // POST /api/{project_id}/envelope/
	routeStore                    // POST|GET /api/{project_id}/store/
	routeStoreLegacy              // POST|GET /api/store/
	routeHealthLive               // GET /api/relay/healthcheck/live/
	routeHealthReady              // GET /api/relay/healthcheck/ready/
	routeRelaysLive               // GET /api/0/relays/live/
	routeTunnel                   // POST <tunnel.path> (tunnel.go)
	routeNEL                      // POST /api/{project_id}/nel/ (integrations.go)
	routeCron                     // GET|POST /api/{project_id}/cron/{slug}[/{key}][/]
	routeOTLPTraces               // POST /api/{project_id}/integration/otlp/v1/traces[/]
	routeOTLPLogs                 // POST /api/{project_id}/integration/otlp/v1/logs[/]
	routeForward                  // any other /api/ path, proxied (forward.go)
	routeMinidump                 // POST /api/{project_id}/minidump/ (uploads.go)
	routeUnreal                   // POST /api/{project_id}/unreal/{sentry_key}/
	routeSecurity                 // POST /api/{project_id}/security/ and /csp-report/
	routeAttachments              // POST /api/{project_id}/events/{event_id}/attachments/
	numRoutes
)

var routeNames = [numRoutes]string{
	routeOther:       "other",
	routeEnvelope:    "envelope",
	routeStore:       "store",
	routeStoreLegacy: "store_legacy",
	routeHealthLive:  "healthcheck_live",
	routeHealthReady: "healthcheck_ready",
	routeRelaysLive:  "relays_live",
	routeTunnel:      "tunnel",
	routeNEL:         "nel",
	routeCron:        "cron",
	routeOTLPTraces:  "otlp_traces",
	routeOTLPLogs:    "otlp_logs",
	routeForward:     "forward",
	routeMinidump:    "minidump",
	routeUnreal:      "unreal",
	routeSecurity:    "security",
	routeAttachments: "attachments",
}

// storeLike reports whether the route ingests data (and so speaks CORS).
func (r route) storeLike() bool {
	return r == routeEnvelope || r == routeStore || r == routeStoreLegacy || r == routeTunnel ||
		r.integration() || r.upload()
}

// takesEnvelopes reports whether the route's body is an envelope (the
// envelope endpoint's limits and tunnel authentication apply).
func (r route) takesEnvelopes() bool { return r == routeEnvelope || r == routeTunnel }

// publishDuration is the time from handing a message to the stream until its
// PubAck (or failure): the part of the SDK's latency that durability costs.
var publishDuration = metrics.NewPrometheusHistogramExt(`relay_ingest_publish_duration_seconds`, latencyBuckets)

// ackDuration is the time from the handler taking an ingest request (its
// headers are in) until the SDK's 200 is written, after the PubAck: what an
// acknowledgement costs the client, body upload included. Only acknowledged
// requests are timed; refusals are counted by reason instead.
var ackDuration = metrics.NewPrometheusHistogramExt(`relay_ingest_ack_duration_seconds`, latencyBuckets)

// latencyBuckets are the upper bounds of the latency histograms, in
// seconds. Prometheus's defaults start at 5 ms, where every answer of an
// unloaded relay (a few hundred µs) falls into the first bucket; these
// resolve the sub-millisecond range and still reach the publish timeout.
var latencyBuckets = []float64{
	50e-6, 75e-6, 100e-6, 150e-6, 200e-6, 300e-6, 500e-6, 750e-6,
	1e-3, 2e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3,
	1, 2.5, 5, 10,
}

// acceptedTotal counts envelopes stored in the stream (PubAck), each then
// acknowledged to its client: what the status page calls accepted.
var acceptedTotal = metrics.NewCounter(`relay_ingest_accepted_envelopes_total`)

// AcceptedTotal returns relay_ingest_accepted_envelopes_total.
func AcceptedTotal() uint64 { return acceptedTotal.Get() }

// requestCounters caches relay_ingest_requests_total{route,status} counters
// so the hot path does one atomic load instead of building a metric name and
// looking it up. Filled lazily; GetOrCreateCounter makes racing fills agree.
var requestCounters [numRoutes][500]atomic.Pointer[metrics.Counter]

// countRequest counts one answered request by route and status.
func (s *Server) countRequest(rt route, status int) {
	if status < 100 || status >= 600 {
		status = 599
	}
	slot := &requestCounters[rt][status-100]
	c := slot.Load()
	if c == nil {
		c = metrics.GetOrCreateCounter(`relay_ingest_requests_total{route="` + routeNames[rt] +
			`",status="` + strconv.Itoa(status) + `"}`)
		slot.Store(c)
	}
	c.Inc()
}
