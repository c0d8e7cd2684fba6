package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"zero value uses defaults", Config{}, ""},
		{"negative concurrency", Config{Concurrency: -1}, "concurrency must be positive"},
		{"negative drain batch", Config{DrainBatch: -3}, "drain batch must be positive"},
		{"negative grace", Config{OutageGracePeriod: -time.Second}, "outage grace period must be positive"},
		{"retry delay above max", Config{RetryDelay: 2 * time.Minute, MaxRetryInterval: time.Minute}, "exceeds max retry interval"},
		{"negative max envelope delay", Config{MaxEnvelopeDelay: -time.Hour}, "max envelope delay must be positive"},
		{"ack wait too short", Config{AckWait: time.Millisecond}, "ack wait must be at least"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Concurrency: 3}.withDefaults()
	if c.DrainConcurrency != 1 || c.FetchBatch != DefaultFetchBatch || c.RetryDelay != time.Second ||
		c.MaxRetryInterval != time.Minute || c.OutageGracePeriod != 10*time.Second || c.AckWait != 30*time.Second ||
		c.MaxEnvelopeDelay != 24*time.Hour {
		t.Fatalf("defaults = %+v", c)
	}
}

// The backoff is exponential from RetryDelay, jittered, and never above
// MaxRetryInterval — jitter included — however long it runs.
func TestBackoffPolicy(t *testing.T) {
	w := &Worker{cfg: Config{RetryDelay: 100 * time.Millisecond, MaxRetryInterval: time.Second}.withDefaults()}
	b := w.newBackoff()
	first := w.nextDelay(b)
	if first < 50*time.Millisecond || first > 150*time.Millisecond {
		t.Fatalf("first delay %s, want RetryDelay ± 50%%", first)
	}
	var sawMax, sawJitter bool
	prev := first
	for range 200 {
		d := w.nextDelay(b)
		if d > time.Second {
			t.Fatalf("delay %s above MaxRetryInterval", d)
		}
		if d == time.Second {
			sawMax = true
		}
		if d != prev {
			sawJitter = true
		}
		prev = d
	}
	if !sawMax || !sawJitter {
		t.Fatalf("backoff never reached the cap (%v) or never jittered (%v)", sawMax, sawJitter)
	}
	if b.NextBackOff() == backoff.Stop {
		t.Fatal("backoff gives up; it must retry forever")
	}
}
