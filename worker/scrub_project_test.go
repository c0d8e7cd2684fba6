package worker

import (
	"context"
	"errors"
	"testing"

	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/scrub"
)

// projectScrubbers is a ScrubberSource over a map: a key's project scrubber,
// nil for keys whose project has none, an error for broken ones.
type projectScrubbers struct {
	by  map[string]*scrub.Scrubber
	bad map[string]error
}

func (p projectScrubbers) ScrubberFor(key string) (*scrub.Scrubber, error) {
	if err := p.bad[key]; err != nil {
		return nil, err
	}
	return p.by[key], nil
}

// A project's own scrubbing wins over the relay-wide settings for its keys;
// other keys get the relay-wide ones; a project whose rules are unknown
// stops the message (it is buried, never forwarded less scrubbed).
func TestScrubStageProjects(t *testing.T) {
	const (
		ownKey    = "0123456789abcdef0123456789abcdef"
		plainKey  = "11111111111111111111111111111111"
		brokenKey = "22222222222222222222222222222222"
	)
	relayWide := compile(t, scrub.Config{DataScrubbing: legacyDefaults})
	// The project removes extra.order (which the relay-wide defaults keep)
	// and asks for IP addresses to go; it has no password rule.
	own := compile(t, scrub.Config{
		PIIConfig:     []byte(`{"applications":{"extra.order":["@anything:remove"]}}`),
		DataScrubbing: &scrub.DataScrubbing{ScrubIPAddresses: true},
	})
	src := projectScrubbers{
		by:  map[string]*scrub.Scrubber{ownKey: own},
		bad: map[string]error{brokenKey: errors.New("project 7 (7.json): config is invalid")},
	}
	st := NewScrubStage(relayWide).WithProjects(src)
	body := env(envHeader, withLen("event", secretEvent, ""), secretEvent)

	run := func(key string) (*stream.Message, error) {
		m := &stream.Message{PublicKey: key, Envelope: append([]byte(nil), body...), ForwardedFor: "203.0.113.7"}
		v, err := st.Process(context.Background(), m)
		if err == nil && v.Dropped() {
			t.Fatalf("key %s: scrub dropped the message", key[:4])
		}
		return m, err
	}

	m, err := run(ownKey)
	if err != nil {
		t.Fatal(err)
	}
	_, items := splitEnvelope(t, m.Envelope)
	check{path: []string{"extra", "order"}, want: nil, rem: []string{"@anything:remove/x"}}.run(t, items[0].payload)
	check{path: []string{"extra", "password"}, want: "hunter2"}.run(t, items[0].payload) // relay-wide rules not applied
	if m.ForwardedFor != "" {
		t.Errorf("project scrubs IP addresses, but X-Forwarded-For %q is still forwarded", m.ForwardedFor)
	}

	m, err = run(plainKey)
	if err != nil {
		t.Fatal(err)
	}
	_, items = splitEnvelope(t, m.Envelope)
	check{path: []string{"extra", "password"}, want: "[Filtered]"}.run(t, items[0].payload)
	check{path: []string{"extra", "order"}, want: 17}.run(t, items[0].payload)
	if m.ForwardedFor == "" {
		t.Error("relay-wide settings keep IP addresses, but X-Forwarded-For was dropped")
	}

	if _, err := run(brokenKey); err == nil {
		t.Error("a key whose project rules are unknown was let through")
	}
}

// With no relay-wide scrubbing and no project rules for a key, the stage
// forwards the message byte for byte without parsing it.
func TestScrubStageProjectsNoopPassThrough(t *testing.T) {
	noop, err := scrub.Compile(scrub.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st := NewScrubStage(noop).WithProjects(projectScrubbers{})
	body := []byte("not an envelope at all")
	m := &stream.Message{PublicKey: "0123456789abcdef0123456789abcdef", Envelope: body}
	if _, err := st.Process(context.Background(), m); err != nil {
		t.Fatalf("Process: %v (a no-op scrubber must not parse)", err)
	}
	if string(m.Envelope) != string(body) {
		t.Errorf("envelope changed: %q", m.Envelope)
	}
}
