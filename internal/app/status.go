package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/relayhq/relay/ingest"
	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/history"
	"github.com/relayhq/relay/internal/registration"
	"github.com/relayhq/relay/internal/status"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/spool"
	"github.com/relayhq/relay/worker"
)

// statusEvery is how often the status page's history is sampled: an hour
// of it is 721 samples of three counters.
const statusEvery = 5 * time.Second

// throughput reads the counters the status page charts, the same ones
// /metrics exposes: relay_ingest_accepted_envelopes_total,
// relay_worker_forwarded_total + relay_worker_drained_total and
// relay_worker_spooled_total. In a process without ingest (or without a
// worker) the other half stays 0.
var throughput = history.SourceFunc(func() history.Counts {
	fwd, spooled := worker.Totals()
	return history.Counts{Accepted: ingest.AcceptedTotal(), Forwarded: fwd, Spooled: spooled}
})

// startStatus builds the status page's handler and starts the history
// sampler on wg, stopped by ctx. w, sp and reg are nil where this process
// has no worker or no registration.
func startStatus(ctx context.Context, wg *sync.WaitGroup, cfg *config.Config, st *stream.Conn, sp *spool.Spool,
	w *worker.Worker, reg *registration.Monitor, log *slog.Logger) *status.Handler {
	rec := history.New(throughput, history.Options{Every: statusEvery, Keep: time.Hour})
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = rec.Run(ctx) // returns ctx's error, on shutdown only
	}()
	c := &status.Collector{
		Version:     Version,
		Mode:        string(cfg.Relay.Mode),
		Ingest:      cfg.Ingest.Enabled,
		Worker:      cfg.Worker.Enabled,
		UpstreamURL: cfg.Relay.Upstream,
		StartedAt:   time.Now(),
		History:     rec,
		Stream:      streamDepth{st},
	}
	if reg != nil {
		c.Registration = reg
	}
	if w != nil {
		c.Upstream = w
	}
	if sp != nil {
		c.Spool = spoolState{sp}
	}
	return status.NewHandler(c, log.With("component", "status"))
}

var (
	_ status.RegistrationSource = (*registration.Monitor)(nil)
	_ status.UpstreamSource     = (*worker.Worker)(nil)
	_ status.StreamSource       = streamDepth{}
	_ status.SpoolSource        = spoolState{}
)

// streamDepth adapts the stream to the status report.
type streamDepth struct{ st *stream.Conn }

func (s streamDepth) StreamDepth(ctx context.Context) (status.Stream, error) {
	d, err := s.st.Depth(ctx, consumerName)
	return status.Stream{Name: s.st.StreamName(), Messages: d.Messages, Bytes: d.Bytes,
		Pending: d.Pending, AckPending: d.AckPending}, err
}

// spoolState adapts the spool to the status report. The oldest record's
// time is when ingest received it (stream.Message.ReceivedAt): how long the
// oldest envelope has been waiting for the upstream.
type spoolState struct{ sp *spool.Spool }

func (s spoolState) SpoolState() (status.Spool, time.Time, error) {
	st := s.sp.Stats()
	out := status.Spool{Records: st.Records, Bytes: st.Bytes, DiskBytes: st.DiskBytes, DeadLetters: st.Buried}
	if st.Records == 0 {
		return out, time.Time{}, nil
	}
	recs, err := s.sp.Oldest(1)
	if err != nil {
		return out, time.Time{}, fmt.Errorf("spool: reading the oldest record: %w", err)
	}
	if len(recs) == 0 { // drained since Stats
		return out, time.Time{}, nil
	}
	var m stream.Message
	if err := m.UnmarshalBinary(recs[0].Data); err != nil {
		return out, time.Time{}, fmt.Errorf("spool: oldest record %d: %w", recs[0].ID, err)
	}
	return out, m.ReceivedAt, nil
}
