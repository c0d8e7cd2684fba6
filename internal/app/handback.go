package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/spool"
	"github.com/relayhq/relay/worker"
)

// handBackMargin is kept from the shutdown deadline for what comes after the
// hand-back: closing the spool and the stream.
const handBackMargin = time.Second

// handBackSpool hands what the spool holds back to the stream on a graceful
// shutdown (spool.hand_back), after the worker stopped and before the spool
// is closed, within the shutdown deadline: each record is deleted only after
// JetStream acknowledged it (worker.HandBack). What is left stays in the
// spool and is drained when this worker runs again.
func handBackSpool(deadline time.Time, st *stream.Conn, sp *spool.Spool, log *slog.Logger) {
	n := sp.Stats().Records
	if n == 0 {
		return
	}
	until := deadline.Add(-min(handBackMargin, time.Until(deadline)/4))
	ctx, cancel := context.WithDeadline(context.Background(), until)
	defer cancel()
	log.Info("handing the spool back to the stream, so that other workers send it on", "records", n)
	start := time.Now()
	res, err := worker.HandBack(ctx, st, sp, log.With("component", "hand-back"))
	left := sp.Stats().Records
	if err != nil {
		log.Warn("hand-back stopped; what is left stays in the spool and is sent when this worker runs again",
			"handed_back", res.HandedBack, "duplicated", res.Duplicated, "maybe_duplicated", res.Uncertain, "left", left, "err", err)
		return
	}
	log.Info("spool handed back to the stream", "handed_back", res.HandedBack, "left", left,
		"took", time.Since(start).Round(time.Millisecond))
}
