package stream

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startExternal starts a nats-server with JetStream listening on a free
// 127.0.0.1 port, standing in for an external server the relay does not own,
// and returns its URL.
func startExternal(t *testing.T) string {
	t.Helper()
	s := serverAt(t, server.RANDOM_PORT, t.TempDir())
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s.ClientURL()
}

// TestOpenRefusesUnsafeExternalStream: an existing stream on an external
// server whose settings could delete an acknowledged envelope is refused by
// Open, with an error naming each such setting, and is left as it was; a
// stream with safe settings is used.
func TestOpenRefusesUnsafeExternalStream(t *testing.T) {
	url := startExternal(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	safe := func(name string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name: name, Subjects: []string{strings.ToLower(name) + ".>"},
			Retention: jetstream.WorkQueuePolicy, Discard: jetstream.DiscardNew,
			MaxMsgs: -1, MaxBytes: -1, Storage: jetstream.FileStorage,
		}
	}
	tests := []struct {
		name   string
		modify func(*jetstream.StreamConfig)
		want   []string // each must be in the error; none = Open succeeds
	}{
		{"safe", func(*jetstream.StreamConfig) {}, nil},
		{"safe with max_msgs under discard new", func(c *jetstream.StreamConfig) { c.MaxMsgs = 1000 }, nil},
		{"max_age", func(c *jetstream.StreamConfig) { c.MaxAge = time.Hour }, []string{"max_age 1h0m0s"}},
		{"max_msgs_per_subject", func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject = 10 }, []string{"max_msgs_per_subject 10"}},
		{"max_msgs_per_subject with discard_new_per_subject", func(c *jetstream.StreamConfig) {
			c.MaxMsgsPerSubject, c.DiscardNewPerSubject = 10, true
		}, []string{"max_msgs_per_subject 10"}},
		{"discard old", func(c *jetstream.StreamConfig) { c.Discard = jetstream.DiscardOld }, []string{"discard old"}},
		{"discard old with max_msgs", func(c *jetstream.StreamConfig) {
			c.Discard, c.MaxMsgs = jetstream.DiscardOld, 1000
		}, []string{"discard old, max_msgs 1000"}},
		{"limits retention", func(c *jetstream.StreamConfig) { c.Retention = jetstream.LimitsPolicy }, []string{"retention limits"}},
		{"interest retention", func(c *jetstream.StreamConfig) { c.Retention = jetstream.InterestPolicy }, []string{"retention interest"}},
		{"memory storage", func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage }, []string{"storage memory"}},
		{"several", func(c *jetstream.StreamConfig) {
			c.MaxAge, c.Discard, c.MaxBytes = 24*time.Hour, jetstream.DiscardOld, 1<<20
		}, []string{"max_age 24h0m0s", "discard old, max_bytes 1048576"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "EXT" + string(rune('A'+i))
			sc := safe(name)
			tt.modify(&sc)
			if _, err := js.CreateStream(ctxT(t, 5*time.Second), sc); err != nil {
				t.Fatalf("create the external stream: %v", err)
			}
			c, err := Open(ctxT(t, 10*time.Second), Config{URL: url, Stream: name, AckWait: 2 * time.Second, FetchWait: 300 * time.Millisecond}, testLog(t))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Open refused a safe stream: %v", err)
				}
				publishN(t, c, 0, 1)
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("Open accepted an external stream that can drop acknowledged envelopes")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %q: %v", w, err)
				}
			}
			st, err := js.Stream(ctxT(t, 5*time.Second), name)
			if err != nil {
				t.Fatal(err)
			}
			have := st.CachedInfo().Config
			if have.MaxAge != sc.MaxAge || have.Discard != sc.Discard || have.Retention != sc.Retention ||
				max(have.MaxMsgsPerSubject, 0) != sc.MaxMsgsPerSubject || have.Storage != sc.Storage {
				t.Fatalf("refused stream was modified: %+v", have)
			}
		})
	}
}
