package worker

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/scrub"
)

// signScrubber replaces every payload by its name, so that a test can see
// which scrubber handled which item. It yields between items, to widen the
// window in which a swap could land mid-envelope.
type signScrubber string

func (s signScrubber) ScrubItem(_ scrub.Item, _ []byte) ([]byte, bool, error) {
	runtime.Gosched()
	return []byte(s), true, nil
}

// SetScrubber while envelopes are being scrubbed: every envelope comes out
// wholly scrubbed by one scrubber, never partly by the old rules and partly
// by the new ones, and once SetScrubber returned the next envelope gets the
// new rules.
func TestScrubStageSetScrubber(t *testing.T) {
	st := NewScrubStage(signScrubber("0"))
	in := env(envHeader, `{"type":"event"}`, `{}`, `{"type":"attachment"}`, `x`, `{"type":"transaction"}`, `{}`)
	ctx, cancel := context.WithCancel(context.Background())
	reloads := make(chan struct{})
	go func() {
		defer close(reloads)
		for i := 1; ctx.Err() == nil; i++ {
			st.SetScrubber(signScrubber(fmt.Sprint(i % 10)))
			runtime.Gosched()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 300 {
				m := &stream.Message{Envelope: append([]byte(nil), in...)}
				if _, err := st.Process(ctx, m); err != nil {
					errs <- err
					return
				}
				e, err := envelope.Parse(m.Envelope)
				if err != nil {
					errs <- err
					return
				}
				for _, it := range e.Items[1:] {
					if !bytes.Equal(it.Payload, e.Items[0].Payload) {
						errs <- fmt.Errorf("an envelope scrubbed by two scrubbers:\n%s", m.Envelope)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	cancel()
	<-reloads
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	st.SetScrubber(signScrubber("new"))
	m := &stream.Message{Envelope: append([]byte(nil), in...)}
	if _, err := st.Process(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if _, items := splitEnvelope(t, m.Envelope); string(items[0].payload) != "new" {
		t.Fatalf("after SetScrubber the next envelope was scrubbed by %q", items[0].payload)
	}
}
