package worker

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
	"github.com/relayhq/relay/spool"
)

// The outage lines are what an operator acts on: one WARN when the upstream
// goes into outage (where, why, how much is waiting), one INFO when it
// answers again (how long it was out, how much there is to drain), and one
// INFO when the drainer has emptied the spool (how many it sent). Nothing
// per envelope, so a long outage does not bury them.

// upstreamNamer is a Sender that can say where it sends.
type upstreamNamer interface{ BaseURL() string }

// backlogSource is a Source that can say how many messages wait for it.
type backlogSource interface {
	Backlog(ctx context.Context) (uint64, error)
}

// spoolSizer is a Store that can say how much it holds.
type spoolSizer interface{ Stats() spool.Stats }

var (
	_ upstreamNamer = (*upstream.Client)(nil)
	_ backlogSource = (*stream.Consumer)(nil)
	_ spoolSizer    = (*spool.Spool)(nil)
)

// backlogTimeout bounds the one consumer info request of the outage line; it
// runs on the send path of the envelope whose failure began the outage.
const backlogTimeout = time.Second

// drainRun counts what the drainer sent since the spool was last empty.
type drainRun struct {
	sent  atomic.Int64
	first atomic.Int64 // unix nanos of the first send of the run; 0 = none yet
}

func (d *drainRun) note(now time.Time) {
	if d.sent.Add(1) == 1 {
		d.first.Store(now.UnixNano())
	}
}

func (w *Worker) upstreamURL() string {
	if n, ok := w.send.(upstreamNamer); ok {
		return n.BaseURL()
	}
	return ""
}

func (w *Worker) spooledRecords() int64 {
	if s, ok := w.store.(spoolSizer); ok {
		return s.Stats().Records
	}
	return -1
}

// logOutageStart is the outage detector's onStart.
func (w *Worker) logOutageStart(status int, detail string, denied bool) {
	attrs := []any{"upstream", w.upstreamURL(), "status", status}
	if detail != "" {
		attrs = append(attrs, "err", detail)
	}
	attrs = append(attrs, "denied", denied, "grace", w.cfg.OutageGracePeriod, "spooled", w.spooledRecords())
	if b, ok := w.src.(backlogSource); ok {
		ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
		n, berr := b.Backlog(ctx)
		cancel()
		if berr == nil {
			attrs = append(attrs, "in_stream", n)
		}
	}
	w.log.Warn("upstream outage: envelopes go to the spool until it answers again", attrs...)
}

// logOutageEnd is the outage detector's onEnd.
func (w *Worker) logOutageEnd(lasted time.Duration) {
	w.log.Info("upstream back: outage over, draining the spool", "upstream", w.upstreamURL(),
		"outage_for", lasted.Round(time.Millisecond), "to_drain", w.spooledRecords())
}

// logDrained is called by the drainer when it finds the spool empty.
func (w *Worker) logDrained() {
	n := w.drained.sent.Swap(0)
	if n == 0 {
		return
	}
	took := w.now().Sub(time.Unix(0, w.drained.first.Swap(0)))
	w.log.Info("spool drained", "upstream", w.upstreamURL(), "drained", n, "took", took.Round(time.Millisecond))
}

// errText is err's text for a log line about an envelope of publicKey, with
// the key replaced by its KeyRef (an upstream's error detail may quote it);
// "" for no error.
func errText(err error, publicKey string) string {
	if err == nil {
		return ""
	}
	return envelope.RedactKey(err.Error(), publicKey)
}
