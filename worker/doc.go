// Package worker moves envelopes from the JetStream stream to the upstream
// (Sentry): it fetches messages, runs the named stages (filter → scrub →
// enrich), forwards what is kept, and — while the upstream is in outage —
// moves envelopes into the spool and drains the spool, oldest first, once the
// upstream answers again.
//
// # The invariant
//
// A JetStream message is acknowledged only after one of:
//   - the upstream answered 2xx for it;
//   - the spool's Put for it returned nil (the bbolt transaction holding it
//     committed);
//   - the upstream rejected it for good (a 4xx other than 429) and the spool
//     buried it in its dead letters, where an operator can see it;
//   - a stage decided to drop it (counted by stage and reason).
//
// A spool record is deleted only after the upstream answered 2xx for it, or
// after a final rejection buried it. Every other outcome — a network error, a
// 5xx, a 429, a spool error, a full spool, a shutdown — keeps the message
// un-acknowledged (held with InProgress heartbeats, or Nak'd) or the record in
// the spool. The price is at-least-once delivery: a crash between the
// upstream's 2xx and the ack, or between the 2xx and the spool delete, sends
// the envelope again.
//
// # Shape
//
// Run starts Config.Concurrency consumers, one heartbeat goroutine and one
// drainer, and returns once all of them have exited after ctx is cancelled.
// The consumers share one outage detector and one rate limiter:
//
//   - outage: the upstream is "in outage" when sends have failed with a
//     retryable error continuously, with no answer in between, for longer than
//     Config.OutageGracePeriod (Relay's http.outage_grace_period). While in
//     outage, consumers do not send; they put envelopes into the spool, and
//     stop fetching when the spool is full (back-pressure: the stream fills
//     and ingest answers 503). Only an answer from the upstream — the
//     drainer's probe, or a send that was already in flight — ends an outage.
//   - rate limits: a 429 is recorded per public key and data category, so
//     every consumer (and the drainer) sending for that key waits until the
//     limit expires instead of hammering the upstream. A consumer does not
//     wait in place: it Naks the message with the remaining time as delay,
//     so one limited key cannot occupy every consumer while other keys
//     starve; the drainer skips the key's records and comes back for them.
//     Cost: deferred messages stay un-acked and count against the durable's
//     MaxAckPending; a high-volume key limited for a long time can fill it,
//     and then the stream fills and ingest answers 503 — back-pressure, not
//     loss.
//
// Worker never imports ingest; internal/stream.Message is the only contract
// between the two.
package worker
