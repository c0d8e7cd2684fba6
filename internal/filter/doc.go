// Package filter implements Sentry Relay's inbound filters (relay-protocol.md
// §9): a project's `filterSettings` JSON is compiled once into Settings, and
// Settings.Check decides for one event-like item (event, transaction,
// security report) whether it is filtered and for which reason.
//
// # Contract
//
//   - The filters run in Relay's order (relay-filter/src/lib.rs): generic →
//     csp → client_ips → releases → error_messages → localhost →
//     browser_extensions → legacy_browsers → web_crawlers →
//     transaction_name. The first match decides the reason.
//   - Generic filters (`filterSettings.generic`, Relay's RuleCondition DSL)
//     support eq, gt/gte/lt/lte, glob, cidr, and, or, not over the `event.*`
//     fields Relay's Event getter exposes (generic.go). `any`/`all` (array
//     operations) and unknown ops never match, as Relay's Unsupported
//     condition does; the generic filters of Sentry's global config are not
//     known to this relay (the upstream applies them).
//   - Reasons are Relay's FilterStatKey names (Reason*), or a generic
//     filter's id: they are what the upstream expects in a client report's
//     `filtered_events` and the only values used as metric labels — never
//     anything from the payload.
//   - Compile is lenient where Relay is: unknown keys, unknown legacy-browser
//     options, CIDRs and glob patterns that do not parse are ignored, exactly
//     as Relay ignores them. It fails when the JSON itself, the type of a
//     known key, or a generic condition is malformed, or the document is
//     over 1 MiB; the caller decides what that means (the worker's filter
//     stage forwards unfiltered and counts it).
//   - Check never panics (FuzzCheck, FuzzCompile) and allocates in
//     proportion to the payload only; the fixed lists scan at most the first
//     8 KiB of a field, user agents the first 1 KiB, and every expression is
//     RE2 (linear time). A payload that is not a JSON object is reported as
//     ErrNotAnEvent; the caller forwards it — the filter is no gatekeeper of
//     validity.
//   - Settings are immutable after Compile and safe for concurrent use.
//     Compiling costs regexp compilation per glob; Cache keeps one compiled
//     Settings per distinct settings document (by content hash), so the hot
//     path never compiles.
//
// # What is read from an event
//
// Relay filters the normalised event. This package reads the fields the
// filters need straight from the SDK's JSON, with the leniency Relay's schema
// has (strings that arrive as numbers, `exception` as a list or as
// `{"values": [...]}`, request headers as an object or as a list of pairs,
// `message` as a string or a logentry object). The user agent is the
// request's `User-Agent` header; for security reports, which carry no request
// interface, the caller passes the HTTP request's User-Agent instead (Relay
// copies it into the event it builds from the report).
//
// # User agents
//
// The legacy-browsers filter compares browser families as uap-core (Relay's
// user-agent parser) names them. useragent.go tells apart the families the
// filter's options name (IE, IE Mobile, Edge, Chrome, Firefox, Safari,
// Opera, Opera Mini, Android) and those that imitate them, not uap-core's
// full list: an unlisted browser is "Other" and never filtered. The
// per-browser options (`chrome`, `safari`, …) use the cut-offs Sentry
// documents for them (filters.go, legacyOptions).
package filter
