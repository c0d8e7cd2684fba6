// Package telemetry serves what the relay counts, in the Prometheus text
// exposition format (version 0.0.4), on GET /metrics.
//
// Contract:
//   - The exposition holds every metric the packages declare on the
//     VictoriaMetrics default set, every metrics.Set registered with
//     metrics.RegisterSet (a spool's gauges, the stream's depth), and the
//     process and Go runtime metrics (process_*, go_*).
//   - Each family carries # HELP and # TYPE lines, so a scraper knows a
//     counter from a gauge and the naming rules can be checked per type.
//   - A scrape never blocks on the hot path: counters are atomics, and gauges
//     that ask JetStream cache their answer for a second (stream.Conn.MetricsSet)
//     and report NaN, not 0, when the server does not answer.
//   - Gauges of a resource that can be opened and closed (a spool, the stream
//     connection) live in that instance's metrics.Set, registered by whoever
//     opens it and unregistered when it closes it, never in package globals.
//   - The handler does not depend on ingest: the ingest listener and a
//     worker-only listener mount the same Handler.
//
// Naming (enforced for every metric the real binary serves by
// e2e.TestMetricsAfterKnownTraffic, see e2e/exposition_test.go): names match
// relay_<subsystem>_<what>; counters end in _total; durations are in
// _seconds and sizes in _bytes; label values are bounded sets (a route, a
// status code, a reason), never keys, ids or URLs.
package telemetry
