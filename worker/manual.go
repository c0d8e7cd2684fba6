package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/relayhq/relay/internal/stream"
)

// DrainProgress counts what a manual drain did with the spool's records.
type DrainProgress struct {
	Sent   int64 // accepted by the upstream (2xx), then deleted
	Buried int64 // rejected for good (or expired, or undecodable): in the dead letters, then deleted
}

// ErrDrainStopped is wrapped by DrainSpool's error when the upstream stopped
// taking envelopes (an outage: failures or denials for longer than
// OutageGracePeriod) or the dead letters refused one; what was not sent stays
// in the spool.
var ErrDrainStopped = errors.New("drain stopped")

// DrainSpool sends what store holds to the upstream now, oldest first, and
// returns once it is empty: `relay spool drain`, run while no relay holds
// the spool. It is the drainer's own path — forward decides each record's
// fate, drainSpoolPass deletes a record only after a 2xx or its burial — so a
// manual drain classifies the upstream's answers exactly as a running
// worker does: 429 holds the key (the drain waits and comes back for its
// records), a final 4xx buries, failures are retried with backoff until they
// last longer than OutageGracePeriod, which stops the drain with
// ErrDrainStopped. progress, when not nil, is called after every delete
// commit.
// The spool's records already passed the worker's stages; none run again.
func DrainSpool(ctx context.Context, cfg Config, send Sender, store Store, log *slog.Logger, progress func(DrainProgress)) (DrainProgress, error) {
	w, err := New(cfg, noSource{}, send, store, log)
	if err != nil {
		return DrainProgress{}, err
	}
	var done DrainProgress
	onDeleted := func(sent, buried int) {
		done.Sent += int64(sent)
		done.Buried += int64(buried)
		if progress != nil {
			progress(done)
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		pass, err := w.drainSpoolPass(ctx, onDeleted)
		switch {
		case err != nil:
			return done, err
		case pass.seen == 0:
			return done, nil // empty
		case pass.stopped:
			switch {
			case ctx.Err() != nil:
				return done, ctx.Err()
			case w.outage.Denied():
				return done, fmt.Errorf("%w: the upstream refuses the relay (HTTP %d) for longer than the outage grace period (%s)",
					ErrDrainStopped, w.denied.statusOf(""), w.cfg.OutageGracePeriod)
			case w.outage.Active():
				return done, fmt.Errorf("%w: the upstream did not answer for longer than the outage grace period (%s)",
					ErrDrainStopped, w.cfg.OutageGracePeriod)
			case store.DeadFull():
				return done, fmt.Errorf("%w: the dead letters are full; look at them with `relay spool dead list`", ErrDrainStopped)
			}
			// A record could not be settled for another reason (a spool
			// error was logged): start over at the head after a pause.
			sleep(ctx, w.cfg.RetryDelay, nil)
		case pass.progress == 0:
			// Every record left is held by a rate limit or a denial: start
			// over when the first hold expires.
			w.log.Info("every record left is held by a rate limit or a denial; waiting", "for", pass.retryIn.Round(time.Millisecond))
			sleep(ctx, max(pass.retryIn, w.cfg.RetryDelay), nil)
		}
	}
}

// noSource is the Source of a Worker that only drains the spool: it never
// runs consumers, so Fetch is never called.
type noSource struct{}

func (noSource) Fetch(context.Context, int) ([]*stream.Delivery, error) {
	return nil, errors.New("worker: a spool-only worker has no stream")
}
