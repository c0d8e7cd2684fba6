package scrub

import (
	"bytes"
	"fmt"
	"slices"
)

// Lint lists what in a piiConfig is accepted but does nothing, because
// Sentry Relay treats it so and Compile follows Relay: a rule whose regex
// does not compile, a rule of an unknown type, and a reference (from an
// application, a `multiple` or an `alias` rule) to a rule that does not
// exist. Each is most likely a typo that leaves data unscrubbed; Compile
// skips them silently, `relay config validate` reports them. The error is
// Compile's for a config that does not parse.
func Lint(piiConfig []byte) ([]string, error) {
	p := bytes.TrimSpace(piiConfig)
	if len(p) == 0 {
		return nil, nil
	}
	pc, err := parsePIIConfig(p)
	if err != nil {
		return nil, fmt.Errorf("scrub: %w", err)
	}
	if pc == nil {
		return nil, nil
	}
	var out []string
	missing := func(where, id string) {
		if lookupRule(pc, id) == nil {
			out = append(out, fmt.Sprintf("%s: rule %q does not exist (neither in rules nor built in); nothing is applied for it", where, id))
		}
	}
	ids := make([]string, 0, len(pc.rules))
	for id := range pc.rules {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		spec := pc.rules[id]
		where := fmt.Sprintf("rules[%q]", id)
		switch spec.typ {
		case "pattern":
			if _, err := compileUserRegex(spec.pattern); err != nil {
				out = append(out, fmt.Sprintf("%s: pattern %q does not compile (%v); the rule does nothing", where, spec.pattern, err))
			}
		case "redact_pair", "redactPair":
			if _, err := compileUserRegex(spec.keyPattern); err != nil {
				out = append(out, fmt.Sprintf("%s: keyPattern %q does not compile (%v); the rule does nothing", where, spec.keyPattern, err))
			}
		case "multiple":
			for _, c := range spec.rules {
				missing(where, c)
			}
		case "alias":
			missing(where, spec.rule)
		default:
			if _, _, _, ok := matchersFor(spec); !ok {
				out = append(out, fmt.Sprintf("%s: unknown type %q; the rule does nothing", where, spec.typ))
			}
		}
	}
	for _, a := range pc.apps {
		for _, id := range a.ids {
			missing(fmt.Sprintf("applications[%q]", a.sel.String()), id)
		}
	}
	return out, nil
}
