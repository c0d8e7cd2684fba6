// Package registration keeps a managed relay registered with its upstream
// (relay-protocol.md §7.1, Sentry Relay's AuthMonitor) and tells the rest
// of the relay whether it is.
//
// Registration is two signed requests: POST /api/0/relays/register/challenge/
// with the relay's id, public key and version, answered with a token; then
// POST /api/0/relays/register/response/ with that token. Sentry accepts only
// public keys an organisation added under Settings → Relays. The Monitor
// registers at start, again every Interval (http.auth_interval), and retries
// failures with backoff (RetryDelay ×1.5 up to MaxRetryInterval).
//
// # States and what they promise
//
//   - registering: not authenticated. Nothing may be sent upstream.
//   - registered: authenticated.
//   - renewing: a periodic re-registration is under way; still
//     authenticated. A network failure (no answer, 502-504) keeps it
//     authenticated and retries; any other failure — the key was removed in
//     Sentry, say — drops back to registering.
//   - denied: the upstream answered 403 with {"relay": "stop"}; the Monitor
//     never asks again and the relay stays unauthenticated until it is
//     restarted.
//
// Being unauthenticated never loses data: the worker's sends wait (Wait)
// while the envelopes stay in JetStream, un-acked and held, or in the
// stream — the durability contract's hand-offs are unchanged, only delayed.
// That includes denial: Relay fails its queued requests then, but an
// envelope this relay acknowledged is kept until an operator fixes the
// credentials.
//
// State changes are logged once each, with the reason (the upstream's
// detail and, for a refused key, which key to allow in Sentry), never once
// per retry.
package registration
