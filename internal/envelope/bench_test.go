package envelope

import (
	"testing"

	"github.com/relayhq/relay/internal/testfixture"
)

// benchFixtures: a small event with explicit lengths, a browser transaction without lengths, an
// envelope with attachments, and a large event.
var benchFixtures = []string{
	"go-event-message.envelope",
	"browser-transaction.envelope",
	"node-attachment.envelope",
	"ruby-event-big-gzip.envelope",
}

func BenchmarkParse(b *testing.B) {
	for _, name := range benchFixtures {
		body := testfixture.SDKFile(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := Parse(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendTo(b *testing.B) {
	for _, name := range benchFixtures {
		body := testfixture.SDKFile(b, name)
		e, err := Parse(body)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 0, 2*len(body))
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				buf = e.AppendTo(buf[:0])
			}
		})
	}
}

func BenchmarkFromStoreBody(b *testing.B) {
	for _, name := range []string{"python-event-message.store.json", "raven-ruby-event-message.store.b64zlib"} {
		body := testfixture.SDKFile(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := FromStoreBody(body, "raven-ruby/3.1.2"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
