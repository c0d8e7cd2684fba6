package worker

import (
	"slices"

	"github.com/relayhq/relay/internal/envelope"
)

// envelopeCategories returns the data categories of an envelope's items, to
// match rate limits against. nil means unknown (the envelope does not parse;
// ingest validated it, so this is not expected): every limit of the key then
// holds it. An empty, non-nil slice means the items belong to no category
// (client reports only): only key-wide limits hold it.
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
