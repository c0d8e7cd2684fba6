// Package status serves what an operator looks at first: the status page at
// /relay/status, the same facts as JSON at /relay/status.json (what the
// page's script and `relay status` read), and the client `relay status` and
// `relay healthcheck` use.
//
// The facts are the relay's mode, its registration (managed mode), the
// upstream's state as the worker sees it, the stream's depth, the spool's
// size and oldest record, and throughput: totals since start, rates over the
// last minute and an hour of history (internal/history).
//
// Contract:
//   - A report never holds a secret or a payload: no keys, no credentials,
//     no project ids, no event content; the upstream URL loses any userinfo,
//     query and fragment.
//   - Collecting a report does not block past its context: a stream that
//     does not answer shows as an error in the report, the rest is still
//     served.
//   - Totals are read at request time from the same counters /metrics
//     exposes, so the page and a scrape taken together agree.
//   - The page needs nothing from outside the binary: its script and styles
//     are inline (allowed by a Content-Security-Policy hash, nothing else
//     is), the charts are SVG drawn by that script.
package status

import (
	"context"
	"net/url"
	"time"

	"github.com/relayhq/relay/internal/history"
)

// Report is the JSON of /relay/status.json. Fields only grow: `relay
// status` of one version reads the report of another.
type Report struct {
	Version   string    `json:"version"`
	Time      time.Time `json:"time"`
	StartedAt time.Time `json:"started_at"`
	Mode      string    `json:"mode"`   // managed, static or proxy
	Ingest    bool      `json:"ingest"` // this process accepts envelopes
	Worker    bool      `json:"worker"` // this process forwards and spools

	// Registration is set in managed mode only.
	Registration *Registration `json:"registration,omitempty"`
	Upstream     Upstream      `json:"upstream"`
	Stream       Stream        `json:"stream"`
	// Spool is set when this process runs the worker (which owns the spool).
	Spool *Spool `json:"spool,omitempty"`

	Totals  history.Counts `json:"totals"`
	Rates   Rates          `json:"rates"`
	History History        `json:"history"`
}

// Registration is where a managed relay stands with its upstream.
type Registration struct {
	State  string `json:"state"`            // registering, registered, renewing, denied
	Reason string `json:"reason,omitempty"` // why not registered
}

// Upstream states.
const (
	UpstreamUp      = "up"      // the last send was answered (or none failed yet)
	UpstreamFailing = "failing" // sends fail, for less than the outage grace period
	UpstreamOutage  = "outage"  // sends fail past the grace period: envelopes go to the spool
	UpstreamUnknown = "unknown" // no worker in this process
	// UpstreamWaiting: a managed relay that is not registered sends
	// nothing, so no failure says anything about the upstream yet.
	UpstreamWaiting = "waiting for registration"
)

// Upstream is the upstream's state as this process's worker sees it.
type Upstream struct {
	URL   string `json:"url"`
	State string `json:"state"`
	// Since is when the failures began (failing, outage).
	Since *time.Time `json:"since,omitempty"`
	// Denied: the failures are 401/403/404 for every key.
	Denied bool `json:"denied,omitempty"`
}

// Stream is the JetStream stream's depth.
type Stream struct {
	Name     string `json:"name"`
	Messages uint64 `json:"messages"` // stored, not yet acked by a worker
	Bytes    uint64 `json:"bytes"`
	// Pending: stored and not yet delivered to a worker; AckPending:
	// delivered and not yet acked (being forwarded or spooled).
	Pending    uint64 `json:"pending"`
	AckPending uint64 `json:"ack_pending"`
	Error      string `json:"error,omitempty"` // the stream did not answer; the numbers are 0
}

// Spool is the spool's size and age.
type Spool struct {
	Records     int64 `json:"records"`
	Bytes       int64 `json:"bytes"`      // payload bytes of the records
	DiskBytes   int64 `json:"disk_bytes"` // the spool's files, dead letters included
	DeadLetters int64 `json:"dead_letters"`
	// Oldest is when the oldest record was received by ingest; absent when
	// the spool is empty.
	Oldest           *time.Time `json:"oldest,omitempty"`
	OldestAgeSeconds float64    `json:"oldest_age_seconds"`
	Error            string     `json:"error,omitempty"` // reading the oldest record failed
}

// Rates are per-second rates over the last minute (or less, while the
// relay is younger).
type Rates struct {
	WindowSeconds float64 `json:"window_seconds"`
	Accepted      float64 `json:"accepted"`
	Forwarded     float64 `json:"forwarded"`
	Spooled       float64 `json:"spooled"`
}

// History is the last hour, one point per sampling interval: when it ended
// (Unix milliseconds) and how many envelopes each counter grew by in it.
type History struct {
	IntervalSeconds float64  `json:"interval_seconds"`
	End             []int64  `json:"end"`
	Accepted        []uint64 `json:"accepted"`
	Forwarded       []uint64 `json:"forwarded"`
	Spooled         []uint64 `json:"spooled"`
}

// RateWindow is the window of Report.Rates.
const RateWindow = time.Minute

// The sources a Collector reads, each declared here by what it needs and
// adapted by the app.

// RegistrationSource reports a managed relay's registration.
type RegistrationSource interface {
	Registration() (state, reason string)
}

// UpstreamSource reports the worker's view of the upstream: one of the
// Upstream* states, since when failures last began (zero when up), and
// whether they are denials.
type UpstreamSource interface {
	UpstreamState() (state string, since time.Time, denied bool)
}

// StreamSource reads the stream's depth; it must return by ctx's deadline.
type StreamSource interface {
	StreamDepth(ctx context.Context) (Stream, error)
}

// SpoolSource reads the spool's size and its oldest record's time (zero when
// empty). A non-nil error comes with the sizes filled in.
type SpoolSource interface {
	SpoolState() (Spool, time.Time, error)
}

// Collector assembles Reports.
type Collector struct {
	Version      string
	Mode         string
	Ingest       bool
	Worker       bool
	UpstreamURL  string
	StartedAt    time.Time
	History      *history.Recorder
	Registration RegistrationSource // nil outside managed mode
	Upstream     UpstreamSource     // nil without a worker
	Stream       StreamSource
	Spool        SpoolSource // nil without a worker
	Now          func() time.Time
	// StreamTimeout bounds the stream's answer (default 2 s).
	StreamTimeout time.Duration
}

// Collect builds the report of this moment.
func (c *Collector) Collect(ctx context.Context) Report {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	r := Report{
		Version:   c.Version,
		Time:      now().UTC(),
		StartedAt: c.StartedAt.UTC(),
		Mode:      c.Mode,
		Ingest:    c.Ingest,
		Worker:    c.Worker,
		Upstream:  Upstream{URL: redactURL(c.UpstreamURL), State: UpstreamUnknown},
	}
	if c.Registration != nil {
		st, why := c.Registration.Registration()
		r.Registration = &Registration{State: st, Reason: why}
	}
	if c.Upstream != nil {
		st, since, denied := c.Upstream.UpstreamState()
		r.Upstream.State, r.Upstream.Denied = st, denied
		if !since.IsZero() {
			s := since.UTC()
			r.Upstream.Since = &s
		}
		if reg := r.Registration; st == UpstreamUp && reg != nil && !registered(reg.State) {
			r.Upstream.State = UpstreamWaiting
		}
	}
	if c.Stream != nil {
		timeout := c.StreamTimeout
		if timeout <= 0 {
			timeout = 2 * time.Second
		}
		sctx, cancel := context.WithTimeout(ctx, timeout)
		st, err := c.Stream.StreamDepth(sctx)
		cancel()
		if err != nil {
			st = Stream{Name: st.Name, Error: err.Error()}
		}
		r.Stream = st
	}
	if c.Spool != nil {
		sp, oldest, err := c.Spool.SpoolState()
		if err != nil {
			sp.Error = err.Error()
		}
		if !oldest.IsZero() {
			o := oldest.UTC()
			sp.Oldest = &o
			sp.OldestAgeSeconds = max(0, r.Time.Sub(o).Seconds())
		}
		r.Spool = &sp
	}
	if c.History != nil {
		r.Totals = c.History.Current()
		samples := c.History.Samples()
		// Half an interval of slack: a tick a little late must not leave
		// the rates over 55 s of a 60 s window.
		rt := history.RatesOf(samples, RateWindow+c.History.Every()/2)
		r.Rates = Rates{WindowSeconds: rt.Window.Seconds(), Accepted: rt.Accepted, Forwarded: rt.Forwarded, Spooled: rt.Spooled}
		s := history.SeriesOf(samples, c.History.Every())
		r.History = History{
			IntervalSeconds: s.Every.Seconds(),
			End:             make([]int64, len(s.End)),
			Accepted:        nonNil(s.Accepted),
			Forwarded:       nonNil(s.Forwarded),
			Spooled:         nonNil(s.Spooled),
		}
		for i, e := range s.End {
			r.History.End[i] = e.UnixMilli()
		}
	}
	return r
}

// registered reports whether a registration state lets the relay send.
func registered(state string) bool { return state == "registered" || state == "renewing" }

// nonNil makes an empty series encode as [] rather than null, so the page's
// script needs no null checks.
func nonNil(s []uint64) []uint64 {
	if s == nil {
		return []uint64{}
	}
	return s
}

// redactURL keeps a URL's scheme, host and path: userinfo, query and
// fragment may hold credentials. Something that does not parse is not
// shown at all.
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(not shown: not a URL)"
	}
	u.User, u.RawQuery, u.Fragment, u.RawFragment, u.ForceQuery = nil, "", "", "", false
	return u.String()
}
