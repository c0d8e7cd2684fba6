package e2e

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// kill -9 of the whole relay (default config: groups on) under 64
// concurrent SDKs, twice, restarting on the same store: every event that got
// a 200 reaches the upstream — the worker settles the group messages ingest
// stored, including those it had fetched and not yet acked when killed.
func TestKill9MidGroupedLoadForwardsEveryAck(t *testing.T) {
	kill9MidLoad(t, kill9Load{conns: 64, perRound: 800, tail: 400, roundWait: 90 * time.Second,
		deliverWait: 120 * time.Second, timeout: 4 * time.Minute}, func(p *relayProc) {
		// The last run's load was stored in groups (the counter restarts
		// with the process).
		if n := groupPublishes(t, p.url()); n == 0 {
			t.Fatal("no group publish under 64 connections: the test did not exercise groups")
		}
	})
}

var groupPublishesRe = regexp.MustCompile(`(?m)^relay_ingest_publishes_total\{type="group"\} (\d+)`)

// groupPublishes reads relay_ingest_publishes_total{type="group"} from the
// relay's /metrics.
func groupPublishes(t *testing.T, base string) int {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := groupPublishesRe.FindSubmatch(b)
	if m == nil {
		t.Fatal("relay_ingest_publishes_total{type=\"group\"} not in /metrics")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}
