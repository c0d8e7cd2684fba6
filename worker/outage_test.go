package worker

import (
	"testing"
	"time"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestOutageDetector(t *testing.T) {
	const grace = 10 * time.Second
	type step struct {
		at     time.Duration // since t0
		answer bool          // Answered() instead of Failure()
		want   bool          // Active() afterwards
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"one failure is no outage", []step{{0, false, false}}},
		{"failures within the grace period are no outage", []step{{0, false, false}, {5 * time.Second, false, false}, {10 * time.Second, false, false}}},
		{"failures for longer than the grace period are", []step{{0, false, false}, {5 * time.Second, false, false}, {10*time.Second + 1, false, true}}},
		{"an answer in between restarts the clock", []step{{0, false, false}, {6 * time.Second, true, false}, {7 * time.Second, false, false}, {16 * time.Second, false, false}, {17*time.Second + 1, false, true}}},
		{"an answer ends the outage", []step{{0, false, false}, {11 * time.Second, false, true}, {12 * time.Second, true, false}, {13 * time.Second, false, false}}},
		{"a long silence then one failure is no outage", []step{{0, true, false}, {time.Hour, false, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := t0
			o := newOutageDetector(grace, func() time.Time { return now })
			for i, s := range tt.steps {
				now = t0.Add(s.at)
				started, ended := o.Started(), o.Ended()
				was := o.Active()
				if s.answer {
					o.Answered()
				} else if got := o.Failure(0, ""); got != s.want {
					t.Fatalf("step %d: Failure() = %v, want %v", i, got, s.want)
				}
				if o.Active() != s.want {
					t.Fatalf("step %d: Active() = %v, want %v", i, o.Active(), s.want)
				}
				// The channels a waiter held are closed exactly on the transition.
				if !was && s.want && !closed(started) {
					t.Fatalf("step %d: Started() channel not closed when the outage began", i)
				}
				if was && !s.want && !closed(ended) {
					t.Fatalf("step %d: Ended() channel not closed when the outage ended", i)
				}
				if closed(o.Started()) != s.want || closed(o.Ended()) == s.want {
					t.Fatalf("step %d: channels out of step with Active()=%v", i, s.want)
				}
			}
		})
	}
}

// An outage made of denials is one: the drainer must probe it with an
// envelope. The kind follows the last failure.
func TestOutageDetectorDenied(t *testing.T) {
	now := t0
	o := newOutageDetector(time.Second, func() time.Time { return now })
	o.Denial(403, "")
	if o.Denied() {
		t.Fatal("Denied() before the grace period passed")
	}
	now = now.Add(2 * time.Second)
	if !o.Denial(403, "") || !o.Denied() {
		t.Fatal("denials for longer than the grace period are no denied outage")
	}
	o.Failure(0, "")
	if !o.Active() || o.Denied() {
		t.Fatal("a connection failure after the denials: still an outage, no longer a denied one")
	}
	o.Answered()
	if o.Active() || o.Denied() {
		t.Fatal("an answer did not end the outage")
	}
}
