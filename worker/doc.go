// Package worker moves envelopes from the JetStream stream to the upstream
// (Sentry): it fetches messages, runs the named stages (the relay's are
// project → filter → scrub; the project stage, project_stage.go, only in
// managed mode, deciding about envelopes accepted while their key's config
// was pending), forwards what is kept, and — while the upstream is in outage —
// moves envelopes into the spool and drains the spool, oldest first, once the
// upstream answers again.
//
// # The invariant
//
// One function, forward, decides the outcome of sending one envelope, for a
// stream delivery and a spool record alike; the callers only dispose of it
// (dispose: ack or Nak; drainDisposal: delete or keep). A JetStream message
// is acknowledged only after one of:
//   - the upstream answered 2xx for it;
//   - the spool's Put for it returned nil (the bbolt transaction holding it
//     committed);
//   - the spool's Bury for it returned nil — it is in the dead letters,
//     where an operator can see it — because the upstream rejected it for
//     good (400, 413, 415 and other 4xx about the envelope), it was held by
//     its key for longer than Config.MaxEnvelopeDelay, or handling it
//     panicked;
//   - a stage decided to drop it (counted by stage and reason).
//
// A spool record is deleted only after the same: a 2xx, or a Bury that
// returned nil. Every other outcome — a network error, a 5xx, a 429, a 401,
// 403 or 404, a spool error, a full spool, full dead letters, a shutdown —
// keeps the message un-acknowledged (held with InProgress heartbeats, or
// Nak'd) or the record in the spool. The price is at-least-once delivery: a
// crash between the upstream's 2xx and the ack, or between the 2xx and the
// spool delete, sends the envelope again.
//
// # The ack rule
//
// Acks are sent without waiting for the server's answer
// (stream.Delivery.AckNoWait): each one follows a decision that is already
// durable somewhere else — the upstream's 2xx, a spool commit, a dead letter,
// a stage's drop — so an ack that is lost (a kill, a dropped connection)
// only makes JetStream redeliver the message after AckWait: the upstream
// gets a duplicate, the spool a second record, the dead letters a second
// entry; never a loss. That is the price already paid for a crash between
// the 2xx and the ack, and it saves a round trip per envelope. The rule
// never applies the other way: nothing is acked before its decision is
// durable, ingest answers an SDK only after the PubAck, and a spool record is
// deleted only after a 2xx or a Bury that returned nil.
//
// A group (several envelopes in one stream message, published by ingest's
// group publish) reaches the worker as one stream.Delivery per member, and
// each member is handled, acked or Nak'd exactly as a lone message; the
// stream package acks the group only once every member was settled. A Nak
// on a member re-publishes that member alone (the delay it asked for
// applies to the copy's next Nak: a deferred member is delivered once more
// at once and deferred again); a member whose re-publish fails makes the
// whole group come back — the members already forwarded or spooled as
// duplicates, never a loss. FetchBatch, MaxAckPending and the byte budget
// count stream messages, so a fetch may hand a consumer up to FetchBatch ×
// stream.MaxGroupMembers deliveries; it handles at most FetchBatch of them
// at once.
//
// Outcomes that are not final:
//   - 429: the key (and data categories) is held until the limit expires;
//     nothing is sent for it meanwhile.
//   - 401, 403, 404 (upstream.Denied): about the relay or the key, not the
//     envelope. The key is held with backoff from RetryDelay, capped by
//     MaxRetryInterval; held past OutageGracePeriod, its envelopes wait in
//     the spool instead of the stream. When every key is denied the
//     upstream is in outage and the drainer probes it with one spooled
//     envelope. One ERROR line per state change of a key.
//   - A held envelope (429 or denial) older than MaxEnvelopeDelay, counted
//     from stream.Message.ReceivedAt (when ingest accepted it), is buried
//     with reason "expired"; one without ReceivedAt has no known age and is
//     never expired. Envelopes held by an outage never expire.
//   - Dead letters full (spool.ErrDeadFull): the envelope that could not be
//     buried is kept, and the consumers stop fetching — the stream fills and
//     ingest answers 503 — until an operator purged the dead letters; one
//     ERROR line names the cap and the remedy.
//   - A panic while handling one envelope (a stage, the scrubber, the send)
//     is recovered for that envelope alone: logged once with its event id
//     and the stack, counted, and the envelope buried as it was published.
//     The stream redelivers without limit, so without this one envelope
//     would crash-loop the relay.
//
// # Shape
//
// Run starts Config.Concurrency consumers, one heartbeat goroutine and one
// drainer, and returns once all of them have exited after ctx is cancelled.
// A consumer handles the last delivery of a batch itself and the others on
// helper goroutines that outlive one envelope (helpers.go: a goroutine per
// delivery regrew its stack on every send); Run stops the helpers after the
// consumers, whose batches wait for every delivery they handed out.
// The consumers share one outage detector and one rate limiter:
//
//   - outage: the upstream is "in outage" when sends have failed with a
//     retryable error continuously, with no answer in between, for longer than
//     Config.OutageGracePeriod (Relay's http.outage_grace_period). While in
//     outage, consumers do not send; they put envelopes into the spool, and
//     stop fetching when the spool is full (back-pressure: the stream fills
//     and ingest answers 503). Only an answer from the upstream — the
//     drainer's probe, or a send that was already in flight — ends an outage.
//     Each transition is logged exactly once, by whichever goroutine made
//     it (outagelog.go): a WARN when an outage begins (upstream URL, status,
//     error, envelopes waiting), an INFO when it ends (how long, how many to
//     drain); the drainer adds an INFO when the spool is empty again (how
//     many it delivered). Logs never carry payloads or a DSN key; a key is
//     named by envelope.KeyRef.
//   - rate limits: a 429 is recorded per public key and data category, so
//     every consumer (and the drainer) sending for that key waits until the
//     limit expires instead of hammering the upstream. A consumer does not
//     wait in place: it Naks the message with the remaining time as delay,
//     so one limited key cannot occupy every consumer while other keys
//     starve; the drainer skips the key's records, reads on past them
//     (spool.OldestAfter), and comes back for them on its next pass.
//     Cost: deferred messages stay un-acked and count against the durable's
//     MaxAckPending; a high-volume key limited for a long time can fill it,
//     and then the stream fills and ingest answers 503 — back-pressure, not
//     loss. The limits learnt are also handed to a LimitSharer when one is
//     set (ShareRateLimits): every relay process's ingest then refuses the
//     key's limited data with 429 before storing it (sharelimits.go).
//
// Memory is bounded by bytes, not only by count: the messages the
// consumers hold at once (fetched, not yet acked or handed back) stay within
// Config.MaxHeldBytes (budget.go) besides Concurrency × FetchBatch, so moving
// a backlog of large envelopes into the spool, or forwarding them, takes the
// same memory whatever their size. The drainer keeps DrainConcurrency sends
// in flight continuously, in spool order, within a window of records
// (drainpass.go) bounded by count and by the bytes read and not yet sent,
// and deletes what was delivered in grouped commits beside the sends.
//
// # Outside Run
//
// Two functions work on a spool while no Worker runs on it:
//   - DrainSpool (manual.go, `relay spool drain`) sends its records through
//     the drainer's own path — forward decides, drainSpoolPass deletes only after
//     a 2xx or a burial — so a manual drain keeps the invariant above and
//     treats every answer as Run does;
//   - HandBack (handback.go, on a graceful shutdown) publishes its records
//     back to the stream, deleting each only after JetStream's PubAck, so a
//     worker removed from a pool strands nothing.
//
// Worker never imports ingest; internal/stream.Message is the only contract
// between the two.
package worker
