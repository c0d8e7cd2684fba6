package worker

import (
	"fmt"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
)

// Every field the upstream needs travels unchanged, and the envelope is not
// copied.
func TestRequestFor(t *testing.T) {
	m := &stream.Message{
		ProjectID: 42, PublicKey: "k", Client: "sentry.go/0.50.0", Version: 7, Origin: "https://o",
		UserAgent: "ua", RemoteAddr: "10.0.0.2", ForwardedFor: "1.2.3.4, 10.0.0.2",
		ReceivedAt: time.Now(), EventID: "9ec79c33ec9942ab8353589fcb2e04dc", Envelope: envelopeFor("9ec79c33ec9942ab8353589fcb2e04dc"),
	}
	got := requestFor(m)
	want := upstream.Request{ProjectID: 42, PublicKey: "k", Client: "sentry.go/0.50.0", Version: 7, ForwardedFor: "1.2.3.4, 10.0.0.2",
		UserAgent: "ua", Origin: "https://o", Envelope: m.Envelope}
	if fmt.Sprint(got) != fmt.Sprint(want) || &got.Envelope[0] != &m.Envelope[0] {
		t.Fatalf("requestFor = %+v, want %+v", got, want)
	}
}
