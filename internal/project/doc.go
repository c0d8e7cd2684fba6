// Package project holds what the relay knows about Sentry projects: their
// states (Relay's project config JSON, protocol doc §6.3), a registry keyed
// by DSN public key, and the static file source that fills it from
// <config dir>/projects/<project id>.json (§6.2).
//
// Contract:
//
//   - The registry answers, for a public key, one of three things: Pending
//     (nothing is known yet: accept, and let the worker decide, as Relay does
//     before a config is cached), Known (a state, possibly disabled or
//     invalid), or Missing (the key's project is known not to exist: refuse).
//     In static mode every key without a file is Missing; in proxy mode it is
//     Pending forever (Relay's "allowed" state: forward unchanged).
//   - Decisions use Relay's DiscardReason names, which ingest puts in its 403
//     detail: a disabled project or key, an unknown key and a project id that
//     does not match the key's project are "ProjectId"; an Origin outside
//     allowedDomains is "Cors"; a config that does not parse is
//     "ProjectState".
//   - A state is replaced only as a whole, by the next scan of its source; a
//     reader never sees half of an update. Lookups take no lock (in managed
//     mode, one that queues a key for fetching takes the queue's briefly).
//   - A project's piiConfig and datascrubbingSettings are compiled when the
//     file is read (once per distinct content) and win over the relay-wide
//     scrub settings for that project's keys; keys whose config has neither
//     use the relay-wide scrubber. A config whose scrubbing rules do not
//     compile is invalid as a whole, like one that does not parse: it is
//     refused rather than forwarded with less scrubbing than asked for.
//   - The raw JSON of every state is kept, so fields this relay does not
//     interpret yet (filterSettings, quotas, …) are not lost.
//
// # Managed mode: configs from the upstream (upstream.go)
//
// In managed mode an UpstreamSource answers for the keys no project file
// has. Project files win: Relay consults its local files before the
// upstream, and a key with a file is never asked for upstream.
//
//   - The first lookup of an unknown key answers Pending (ingest accepts, as
//     Relay does) and queues the key. Keys are collected for
//     cache.batch_interval and asked for, at most cache.batch_size per
//     signed POST /api/0/relays/projectconfigs/?version=3, only once the
//     relay is registered. Revisions already held are sent, so an unchanged
//     config costs no body.
//   - "pending" answers (and keys the answer leaves out) are asked again
//     after http.retry_delay, for up to 30 s (Relay's query_timeout), then
//     again on the key's next use. "unchanged" keeps the state and restarts
//     its expiry. null is Missing, remembered cache.miss_expiry. A disabled
//     project or key is Known and refused as ProjectId; a config that does
//     not parse, or whose scrubbing does not compile, is refused as
//     ProjectState (Relay serves an unparsable config as disabled).
//   - A state is used for cache.project_expiry, then for another
//     cache.project_grace_period while it is fetched again; a state nobody
//     refreshed in that time is Pending again. Any lookup that finds a
//     state (or miss) expired queues its refresh, from the moment the
//     state can be seen (WaitKnown returning it included); one that raced
//     with the state's replacement leaves the decision to the next lookup,
//     which sees the new state. A failed query is retried
//     with backoff (http.retry_delay ×1.5 up to http.max_retry_interval),
//     and while the last query failed every cached state and miss keeps
//     being served, however old: an unreachable upstream never turns a
//     known project into an unknown one.
//
// Sharing between processes (shared.go): the processes of one deployment
// share the JetStream they already use. A process that got an answer from
// the upstream puts it, with its fetch time, into a key-value bucket
// (internal/stream KV); a process about to ask the upstream first reads the
// bucket and takes a record that is fresh by its own cache.project_expiry
// (misses: cache.miss_expiry), so N processes ask once, not N times. What
// is shared is the upstream's answer as it came (the state JSON, or null
// for a miss) — never a compiled form, and never a config the process could
// not use (each process logs those itself). The bucket is read before the
// relay is registered, too: a process restarted while the upstream is
// unreachable knows what the deployment fetched within the last
// cache.project_expiry (the bucket lives in JetStream's store, which
// survives the restart). Values expire from the bucket
// after cache.project_expiry + cache.project_grace_period. The bucket is a
// cache: when it cannot be read or written (counted, logged once per
// spell), the process asks the upstream as if there were no bucket.
package project
