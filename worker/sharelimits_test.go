package worker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
	"github.com/relayhq/relay/internal/upstream"
)

// recordingSharer records what it is given and fails every Record when err
// is set.
type recordingSharer struct {
	mu    sync.Mutex
	keys  []string
	limit []string // Format of each recorded set, at the time it was recorded
	err   error
}

func (s *recordingSharer) Record(_ context.Context, key string, rl upstream.RateLimits) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, key)
	s.limit = append(s.limit, rl.Format(time.Now()))
	return s.err
}

func (s *recordingSharer) calls() ([]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.keys...), append([]string(nil), s.limit...)
}

// A 429 is shared with the other relay processes — the limits the worker
// holds itself — and a sharer that fails changes nothing for delivery: the
// envelope is still held until Retry-After and then delivered.
func TestRateLimitShared(t *testing.T) {
	for _, fail := range []bool{false, true} {
		name := "shared"
		if fail {
			name = "sharer fails"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			sh := &recordingSharer{}
			if fail {
				sh.err = errors.New("bucket down")
			}
			h.sharer = sh
			h.up.SetMode(fakesentry.RateLimited("1", "60:transaction:key, 1:error:organization:quota", 1))
			ids := h.publish(1, keyA)
			h.start(fastCfg(Config{Concurrency: 1, FetchBatch: 1}))
			eventually(t, 10*time.Second, "delivered after the limit", func() bool { return len(h.acceptedIDs()) == 1 })
			h.checkLedger(ids, 0)
			keys, limits := sh.calls()
			if len(keys) != 1 || keys[0] != keyA {
				t.Fatalf("shared for keys %v, want [%s]", keys, keyA)
			}
			if limits[0] != "60:transaction:key, 1:error:organization:quota" {
				t.Fatalf("shared %q", limits[0])
			}
		})
	}
}
