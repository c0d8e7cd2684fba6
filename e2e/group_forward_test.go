package e2e

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// kill -9 of the whole relay (default config: groups on) under 64
// concurrent SDKs, twice, restarting on the same store: every event that got
// a 200 reaches the upstream — the worker settles the group messages ingest
// stored, including those it had fetched and not yet acked when killed.
func TestKill9MidGroupedLoadForwardsEveryAck(t *testing.T) {
	up, dir, rc, p := startRestartable(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var l ledger
	var sent atomic.Int64
	var cur atomic.Pointer[relayProc]
	cur.Store(p)
	stop := make(chan struct{})
	wg := loadFor(ctx, func() string { return cur.Load().url() }, 64, &l, stop, &sent)
	for round := range 2 {
		waitAcked(t, &l, 800*(round+1), 90*time.Second)
		cur.Load().kill9()
		cur.Store(startRelay(t, dir, rc))
	}
	waitAcked(t, &l, len(l.ids())+400, 90*time.Second)
	close(stop)
	wg.Wait()
	// The last run's load was stored in groups (the counter restarts with
	// the process).
	if n := groupPublishes(t, cur.Load().url()); n == 0 {
		t.Fatal("no group publish under 64 connections: the test did not exercise groups")
	}

	acked := l.ids()
	waitDelivered(t, up.EventIDs, acked, 120*time.Second)
	t.Logf("acked %d events across two kill -9s under 64 connections; upstream got all of them, %d duplicates",
		len(acked), duplicates(up.EventIDs()))
	if err := cur.Load().term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
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
