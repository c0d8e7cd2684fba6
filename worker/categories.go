package worker

import (
	"slices"

	"github.com/relayhq/relay/internal/envelope"
)

// categories are the data categories of an envelope's items, to match rate
// limits against. They cost an envelope parse, so they are worked out only
// when needed — when the key has a rate limit or the upstream answered 429 —
// never for the common case of an unlimited key.
type categories struct {
	env    []byte
	parsed bool
	list   []string
}

// get returns the categories. nil means unknown (the envelope does not
// parse; ingest validated it, so this is not expected): every limit of the
// key then holds it. An empty, non-nil slice means the items belong to no
// category (client reports only): only key-wide limits hold it.
func (c *categories) get() []string {
	if !c.parsed {
		c.list, c.parsed = envelopeCategories(c.env), true
	}
	return c.list
}

func envelopeCategories(env []byte) []string {
	e, err := envelope.Parse(env)
	if err != nil {
		return nil
	}
	out := []string{}
	for _, it := range e.Items {
		for _, c := range it.DataCategories() {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// knownCategories wraps categories already worked out (nil = unknown).
func knownCategories(list []string) *categories { return &categories{parsed: true, list: list} }
