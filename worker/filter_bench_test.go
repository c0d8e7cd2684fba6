package worker

import (
	"context"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/testfixture"
)

// benchFilters turns on every filter the stage implements, with settings a
// real project might have; none but localhost matches the captured browser
// event (its page is served from localhost).
const benchFilters = `{
	"generic":{"version":1,"filters":[
		{"id":"slow-checkout","isEnabled":true,"condition":{"op":"and","inner":[{"op":"glob","name":"event.transaction","value":["*checkout*"]},{"op":"gt","name":"event.duration","value":30000}]}},
		{"id":"internal-users","isEnabled":true,"condition":{"op":"or","inner":[{"op":"glob","name":"event.user.email","value":["*@example.internal"]},{"op":"eq","name":"event.tags.synthetic","value":"true"}]}}
	]},
	"csp":{"disallowedSources":["about","ms-browser-extension","*.superfish.com","chrome://*","chrome-extension://*","localhost"]},
	"clientIps":{"blacklistedIps":["10.0.0.0/8","192.168.0.0/16","2001:db8::/32"]},
	"releases":{"releases":["0.*","1.0.0-beta*","{staging,dev}-*"]},
	"errorMessages":{"patterns":["*ChunkLoadError: Loading chunk *","*https://reactjs.org/docs/error-decoder.html?invariant={418,419,422,423,425}*","ResizeObserver loop *"]},
	"browserExtensions":{"isEnabled":true},
	"legacyBrowsers":{"isEnabled":true,"options":["ie","edge","safari","firefox","chrome","opera","opera_mini","android"]},
	"webCrawlers":{"isEnabled":true},
	"ignoreTransactions":{"isEnabled":true,"patterns":["*healthcheck*","*/health"]}
	LOCALHOST
}`

// BenchmarkFilterStage runs the stage over the browser SDK's captured
// exception event (2 KB) with all filters on: "kept" is the common case (the
// event passes, the envelope is forwarded as it came), "filtered" adds the
// localhost filter, which matches, so the envelope is rebuilt around a
// client report.
func BenchmarkFilterStage(b *testing.B) {
	body := testfixture.SDKFile(b, "browser-event-exception.envelope")
	for _, c := range []struct{ name, localhost string }{
		{"kept", ``},
		{"filtered", `,"localhost":{"isEnabled":true}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			settings := []byte(strings.Replace(benchFilters, "LOCALHOST", c.localhost, 1))
			st := NewFilterStage(settingsFor(keyA, string(settings)), nil)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				m := &stream.Message{PublicKey: keyA, RemoteAddr: "203.0.113.9", ForwardedFor: "203.0.113.9", Envelope: body}
				if _, err := st.Process(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
