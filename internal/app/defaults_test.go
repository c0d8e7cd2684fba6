package app

import (
	"fmt"
	"testing"

	"github.com/relayhq/relay/ingest"
	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/upstream"
	"github.com/relayhq/relay/spool"
	"github.com/relayhq/relay/worker"
)

// The packages keep their own defaults so that each works on its own (tests,
// benchmarks, an embedder); config.Default() holds the relay's. They must
// not drift apart: a package used without the config, or a zero field the
// wiring forgot to pass, would otherwise behave differently from the
// documented default. This test pins every pair.
func TestPackageDefaultsMatchConfigDefaults(t *testing.T) {
	c := config.Default()
	for _, p := range []struct {
		key       string
		cfg, pkg  any
		pkgSymbol string
	}{
		{"worker.concurrency", c.Worker.Concurrency, worker.DefaultConcurrency, "worker.DefaultConcurrency"},
		{"http.retry_delay", c.HTTP.RetryDelay, worker.DefaultRetryDelay, "worker.DefaultRetryDelay"},
		{"http.max_retry_interval", c.HTTP.MaxRetryInterval, worker.DefaultMaxRetryInterval, "worker.DefaultMaxRetryInterval"},
		{"http.outage_grace_period", c.HTTP.OutageGracePeriod, worker.DefaultOutageGracePeriod, "worker.DefaultOutageGracePeriod"},
		{"jetstream.ack_wait", c.JetStream.AckWait, worker.DefaultAckWait, "worker.DefaultAckWait"},
		{"jetstream.ack_wait", c.JetStream.AckWait, stream.DefaultAckWait, "stream.DefaultAckWait"},
		{"jetstream.stream", c.JetStream.Stream, stream.DefaultStream, "stream.DefaultStream"},
		{"jetstream.publish_group_max", c.JetStream.PublishGroupMax, ingest.DefaultGroupMaxMembers, "ingest.DefaultGroupMaxMembers"},
		{"http.timeout", c.HTTP.Timeout, upstream.DefaultTimeout, "upstream.DefaultTimeout"},
		{"http.connection_timeout", c.HTTP.ConnectionTimeout, upstream.DefaultConnectionTimeout, "upstream.DefaultConnectionTimeout"},
		{"spool.max_batch", c.Spool.MaxBatch, spool.DefaultMaxBatch, "spool.DefaultMaxBatch"},
		{"spool.max_dead_count", c.Spool.MaxDeadCount, spool.DefaultMaxBuried, "spool.DefaultMaxBuried"},
		{"spool.max_dead_size", c.Spool.MaxDeadSize.Bytes(), int64(spool.DefaultMaxBuriedBytes), "spool.DefaultMaxBuriedBytes"},
	} {
		if fmt.Sprint(p.cfg) != fmt.Sprint(p.pkg) {
			t.Errorf("%s defaults to %v in config.Default() but %s is %v", p.key, p.cfg, p.pkgSymbol, p.pkg)
		}
	}
}
