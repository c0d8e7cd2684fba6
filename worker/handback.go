package worker

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/spool"
)

// Publisher puts a message into the stream and returns once JetStream
// acknowledged it (*stream.Conn).
type Publisher interface {
	Publish(ctx context.Context, m *stream.Message, msgID string) error
}

// HandBackStore is the part of the spool a hand-back reads and deletes.
type HandBackStore interface {
	OldestAfter(after uint64, n int) ([]spool.Record, error)
	Delete(ids ...uint64) error
}

var (
	_ Publisher     = (*stream.Conn)(nil)
	_ HandBackStore = (*spool.Spool)(nil)
)

var (
	handedBackTotal     = metrics.NewCounter(`relay_spool_handed_back_total`)
	handBackKeptUndecod = metrics.NewCounter(`relay_spool_hand_back_kept_total{reason="undecodable"}`)
	handBackKeptPublish = metrics.NewCounter(`relay_spool_hand_back_kept_total{reason="publish_failed"}`)
	handBackKeptDelete  = metrics.NewCounter(`relay_spool_hand_back_kept_total{reason="delete_failed"}`)
)

// handBackBatch is how many records a hand-back publishes at once (each
// waits for its own PubAck; the connection carries them together).
const handBackBatch = 128

// HandBackResult counts what a hand-back did.
type HandBackResult struct {
	HandedBack int64 // published, acknowledged by JetStream, deleted from the spool
	// Duplicated counts records JetStream acknowledged whose delete from
	// the spool failed: they are in both, and will be sent twice.
	Duplicated int64
	// Uncertain counts publishes cut short by the end of ctx: JetStream may
	// have stored them without the acknowledgement arriving, so they may be
	// in the stream as well as in the spool (a duplicate, never a loss).
	Uncertain int64
	Kept      int64 // records not handed back, that stay in the spool (undecodable ones)
}

// HandBack moves what store holds back into the stream, oldest first, when a
// worker is being removed for good: every record is published and
// acknowledged by JetStream (PubAck) before it is deleted from the spool, so
// that another worker sends it on and nothing is stranded on this machine.
// It stops at the first publish that fails and when ctx ends (the shutdown
// deadline): what was not handed back stays in the spool and is drained when
// this worker runs again. A crash between a PubAck and the delete leaves the
// record in both (a duplicate upstream, never a loss). Each record is
// published with a Nats-Msg-Id derived from its bytes, so a hand-back
// repeated within JetStream's duplicate window does not store it twice.
// Records that do not decode are kept for the worker, which buries them.
// Must not run while a Worker drains the same store.
func HandBack(ctx context.Context, pub Publisher, store HandBackStore, log *slog.Logger) (HandBackResult, error) {
	var res HandBackResult
	var after uint64
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		recs, err := store.OldestAfter(after, handBackBatch)
		if err != nil {
			return res, fmt.Errorf("read the spool: %w", err)
		}
		if len(recs) == 0 {
			return res, nil
		}
		after = recs[len(recs)-1].ID
		acked := make([]bool, len(recs))
		errs := make([]error, len(recs))
		var wg sync.WaitGroup
		for i, r := range recs {
			var m stream.Message
			if err := m.UnmarshalBinary(r.Data); err != nil {
				res.Kept++
				handBackKeptUndecod.Inc()
				log.Warn("hand-back: a spooled record is not a relay message; it stays in the spool", "record", r.ID, "err", err)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if errs[i] = pub.Publish(ctx, &m, handBackMsgID(r.Data)); errs[i] == nil {
					acked[i] = true
				}
			}()
		}
		wg.Wait()
		ids := make([]uint64, 0, len(recs))
		var pubErr error
		for i, r := range recs {
			if acked[i] {
				ids = append(ids, r.ID)
			} else if errs[i] != nil {
				handBackKeptPublish.Inc()
				if ctx.Err() != nil {
					res.Uncertain++
				}
				pubErr = cmp.Or(pubErr, errs[i])
			}
		}
		if err := store.Delete(ids...); err != nil {
			res.Duplicated += int64(len(ids))
			handBackKeptDelete.Add(len(ids))
			return res, fmt.Errorf("delete %d handed-back records from the spool (they are in the stream too, and will be sent twice): %w", len(ids), err)
		}
		res.HandedBack += int64(len(ids))
		handedBackTotal.Add(len(ids))
		if pubErr != nil {
			return res, fmt.Errorf("publish: %w", pubErr)
		}
	}
}

// handBackMsgID is a record's Nats-Msg-Id: a digest of its bytes, so that
// the same record handed back twice (a repeated hand-back after a crash)
// is stored once, and different records never share an ID.
func handBackMsgID(data []byte) string {
	sum := sha256.Sum256(data)
	return "handback-" + hex.EncodeToString(sum[:16])
}
