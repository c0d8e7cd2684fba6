// Package upstream is the relay's HTTP client to Sentry (or to another
// relay): it forwards envelopes to {upstream}/api/{project_id}/envelope/
// with the headers Sentry Relay sends (relay-protocol.md §7.5), classifies
// the answer (accepted / rate limited / retryable / rejected), and parses and
// formats X-Sentry-Rate-Limits (§4.1).
//
// It owns no retry loop and no queue: the worker decides what to do with a
// Result. One Client is shared by all workers; it is safe for concurrent use.
package upstream
