/*
Package scrub removes personal data from Sentry event payloads exactly as
Sentry's Relay does: the legacy data-scrubbing settings and the advanced
piiConfig are compiled once into a Scrubber, which is then applied to many
events. Every change is recorded in the event's `_meta` so Sentry's UI can
show what was removed and why.

The package is pure: it imports nothing of the relay and does no I/O.
A Scrubber is immutable after Compile and safe for concurrent use.

# Configuration

A Config holds Sentry's two kinds of scrubbing settings, exactly as Sentry
stores them for a project:

  - DataScrubbing: the legacy "Security & Privacy" toggles (scrubData,
    scrubDefaults, scrubIpAddresses, sensitiveFields, excludeFields). They are
    converted into rules as Relay's convert.rs does: the default rules
    (@common:filter — bearer tokens, credit cards, IBANs, PEM keys, URL
    passwords, password-like keys and values, US SSNs), sensitive cookies,
    IP addresses, additional sensitive fields (case-insensitive substring match
    on key and value) and safe fields (selectors exempted from those rules).
  - PIIConfig: the "advanced data scrubbing" JSON (rules, vars,
    applications keyed by selectors).

For example, a relay-wide configuration that removes a custom field and masks
IBANs on top of Sentry's defaults:

	scrubber, err := scrub.Compile(scrub.Config{
		DataScrubbing: &scrub.DataScrubbing{ScrubData: true, ScrubDefaults: true},
		PIIConfig: []byte(`{
		  "applications": {
		    "extra.customer_note": ["@anything:remove"],
		    "$string": ["@iban:mask"]
		  }
		}`),
	})

Selectors (doc §6) address event fields by path (`extra.customer_note`,
`request.headers.x-api-key`), by value type (`$string`, `$frame.vars`,
`$http.headers`), with wildcards (`*` one level, `**` any depth) and boolean
operators (`&&`, `||`, `!`). Generic selectors such as `$string` or `**` only
reach fields Sentry marks pii=true; fields marked pii=maybe (tags, request.url,
frame paths, …) must be named explicitly, and pii=false fields (transaction
names, releases, exception types, …) are never touched.

# Output

Every change is recorded in the event's `_meta`, in Sentry's format, so
Sentry's UI shows what was removed and by which rule:

	"_meta": {"extra": {"password": {"": {"rem": [["@password:filter", "s", 0, 10]], "len": 7}}}}

ScrubEvent returns the input slice itself when nothing changed, so callers can
forward such items byte-for-byte. Attachments keep their length and get no
`_meta`.

# Known differences from Relay

  - Minidumps are not parsed; they are scrubbed like other binary attachments
    (only when a selector addresses `$attachments.<name>`), which is what
    Relay does when it cannot parse one.
  - Replay videos are passed through unchanged; replay recordings are
    scrubbed as the doc's §9.5 describes (custom events only).
  - `_meta` original values (`val`) set by normalisation are not re-scrubbed:
    the relay runs before Sentry's normalisation, so events carry none.
  - Header keys are not title-cased (normalisation Sentry does upstream);
    key matching is case-insensitive, so the scrubbing result is the same.
  - Rust-regex syntax in user patterns that RE2 does not support (look-around,
    backreferences) makes that rule a no-op, as an invalid pattern does in
    Relay.
  - Raw security reports (CSP, HPKP, …) are forwarded as the browser sent
    them; Sentry converts and scrubs them with the project's own settings.
  - PII flags of span data and EAP attribute keys come from a built-in
    excerpt of sentry-conventions (schema.go); unknown keys are pii=true as
    in Relay.
*/
package scrub
