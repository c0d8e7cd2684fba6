// Package upstream is the relay's HTTP client to Sentry (or to another
// relay): it forwards envelopes to {upstream}/api/{project_id}/envelope/
// with the headers Sentry Relay sends (relay-protocol.md §7.5), classifies
// the answer (accepted / rate limited / retryable / rejected / denied), and
// parses and formats X-Sentry-Rate-Limits (§4.1).
//
// The classes are the contract with the worker: Rejected is an answer about
// one envelope (400, 413, 415: final); Denied (401, 403, 404) is an answer
// about the relay or the key, which every envelope of the key would get too,
// so it must never be treated as final for the envelope.
//
// It owns no retry loop and no queue: the worker decides what to do with a
// Result. One Client is shared by all workers; it is safe for concurrent use.
package upstream
