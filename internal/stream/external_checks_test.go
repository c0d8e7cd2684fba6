package stream

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// An existing stream with fewer replicas than jetstream.replicas is refused,
// naming the setting, and left as it is.
func TestOpenRefusesExternalStreamWithFewerReplicas(t *testing.T) {
	url := startExternal(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctxT(t, 5*time.Second), jetstream.StreamConfig{
		Name: "R1", Subjects: []string{"r1.>"}, Retention: jetstream.WorkQueuePolicy, Discard: jetstream.DiscardNew,
		Storage: jetstream.FileStorage, Replicas: 1,
	}); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctxT(t, 10*time.Second), Config{URL: url, Stream: "R1", Replicas: 3}, testLog(t))
	if err == nil || !strings.Contains(err.Error(), "replicas 1 (want at least jetstream.replicas, 3") {
		t.Fatalf("Open = %v, want a refusal naming replicas", err)
	}
}

// An existing consumer whose settings could strand an envelope (never offer
// it again before a worker acked it) is refused, naming each setting, and left as it
// is; one with the relay's settings is used.
func TestConsumerRefusesUnsafeExternalConsumer(t *testing.T) {
	url := startExternal(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for i, tt := range []struct {
		name   string
		modify func(*jetstream.ConsumerConfig)
		want   []string
	}{
		{"safe", func(*jetstream.ConsumerConfig) {}, nil},
		{"max deliver", func(c *jetstream.ConsumerConfig) { c.MaxDeliver = 5 }, []string{"max_deliver 5"}},
		{"max deliver 1", func(c *jetstream.ConsumerConfig) { c.MaxDeliver = 1 }, []string{"max_deliver 1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := "CONS" + string(rune('A'+i))
			c, err := Open(ctxT(t, 10*time.Second), Config{URL: url, Stream: name, AckWait: 2 * time.Second}, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cc := jetstream.ConsumerConfig{Durable: "relay-worker", AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1}
			tt.modify(&cc)
			if _, err := js.CreateConsumer(ctxT(t, 5*time.Second), name, cc); err != nil {
				t.Fatalf("create the operator's consumer: %v", err)
			}
			_, err = c.Consumer(ctxT(t, 5*time.Second), "relay-worker")
			if tt.want == nil {
				if err != nil {
					t.Fatalf("a safe consumer was refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("an unsafe consumer was used")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %q: %v", w, err)
				}
			}
			cons, err := js.Consumer(ctxT(t, 5*time.Second), name, "relay-worker")
			if err != nil {
				t.Fatal(err)
			}
			if have := cons.CachedInfo().Config; have.MaxDeliver != cc.MaxDeliver {
				t.Fatalf("refused consumer was modified: %+v", have)
			}
		})
	}
}
