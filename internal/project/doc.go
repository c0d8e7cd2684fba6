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
//     reader never sees half of an update. Lookups take no lock.
//   - A project's piiConfig and datascrubbingSettings are compiled when the
//     file is read (once per distinct content) and win over the relay-wide
//     scrub settings for that project's keys; keys whose config has neither
//     use the relay-wide scrubber. A config whose scrubbing rules do not
//     compile is invalid as a whole, like one that does not parse: it is
//     refused rather than forwarded with less scrubbing than asked for.
//   - The raw JSON of every state is kept, so fields this relay does not
//     interpret yet (filterSettings, quotas, …) are not lost.
package project
