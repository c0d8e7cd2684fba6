package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/filter"
	"github.com/relayhq/relay/internal/stream"
	"github.com/relayhq/relay/internal/testfixture"
)

// settingsFor is a registry of one project: key → filterSettings.
func settingsFor(key, settings string) FilterSettingsFunc {
	return func(k string) (json.RawMessage, bool) {
		if k != key {
			return nil, false
		}
		return json.RawMessage(settings), true
	}
}

// fixtureItem returns the raw header line and payload of the first item of
// type typ in a recorded SDK envelope.
func fixtureItem(t *testing.T, name, typ string) (hdr, payload string) {
	t.Helper()
	_, items := splitEnvelope(t, testfixture.SDKFile(t, name))
	for _, it := range items {
		if it.header["type"] == typ {
			return it.headerLine, string(it.payload)
		}
	}
	t.Fatalf("%s: no %s item", name, typ)
	return "", ""
}

// report is a decoded client report as the stage writes it.
type report struct {
	Timestamp      int64            `json:"timestamp"`
	FilteredEvents []filter.Outcome `json:"filtered_events"`
}

func TestFilterStage(t *testing.T) {
	received := time.Unix(1795370604, 0).UTC()
	evHdr, browserEvent := fixtureItem(t, "browser-event-exception.envelope", "event") // request.url on localhost
	txHdr, goTx := fixtureItem(t, "go-transaction-with-client-report.envelope", "transaction")
	crHdr, goReport := fixtureItem(t, "go-transaction-with-client-report.envelope", "client_report")
	attHdr, attPayload := fixtureItem(t, "browser-attachment.envelope", "attachment")
	sessHdr, sessPayload := fixtureItem(t, "browser-session.envelope", "session")
	_, nodeEvent := fixtureItem(t, "node-event-exception.envelope", "event")
	var goTxName struct {
		Transaction string `json:"transaction"`
	}
	if err := json.Unmarshal([]byte(goTx), &goTxName); err != nil || goTxName.Transaction == "" {
		t.Fatalf("go transaction fixture: %v", err)
	}
	localhost := `{"localhost":{"isEnabled":true}}`

	type kept struct{ header, payload string } // an item expected byte for byte
	cases := []struct {
		name     string
		settings string // "" = project unknown
		in       []byte
		ff       string // ForwardedFor of the message
		same     bool   // envelope forwarded exactly as received
		kept     []kept // items before the client report, byte for byte
		want     []filter.Outcome
	}{
		{name: "project unknown", in: env(envHeader, evHdr, browserEvent), same: true},
		{name: "no filters", settings: `{}`, in: env(envHeader, evHdr, browserEvent), same: true},
		{name: "generic without filters", settings: `{"generic":{"version":1,"filters":[]}}`, in: env(envHeader, evHdr, browserEvent), same: true},
		{name: "invalid settings pass unfiltered", settings: `{"localhost":{"isEnabled":"yes"}}`, in: env(envHeader, evHdr, browserEvent), same: true},
		{name: "nothing matches", settings: localhost, in: env(envHeader, `{"type":"event"}`, nodeEvent, sessHdr, sessPayload), same: true},
		{name: "unreadable event is forwarded", settings: localhost, in: env(envHeader, `{"type":"event"}`, `not json at all`), same: true},
		{
			name: "whole envelope filtered: the report replaces it", settings: localhost,
			in:   env(envHeader, evHdr, browserEvent),
			want: []filter.Outcome{{Reason: filter.ReasonLocalhost, Category: "error", Quantity: 1}},
		},
		{
			name: "attachments go with their event", settings: localhost,
			in: env(envHeader, evHdr, browserEvent, attHdr, attPayload),
			want: []filter.Outcome{
				{Reason: filter.ReasonLocalhost, Category: "error", Quantity: 1},
				{Reason: filter.ReasonLocalhost, Category: "attachment", Quantity: uint64(len(attPayload))},
				{Reason: filter.ReasonLocalhost, Category: "attachment_item", Quantity: 1},
			},
		},
		{
			name: "other items stay byte for byte", settings: localhost,
			in: env(envHeader, sessHdr, sessPayload, evHdr, browserEvent, `{"type":"client_report"}`, clientReport, withLen("unknown_thing", binaryPayload, `"x":[1, 2]`), binaryPayload),
			// Payloads byte for byte; a header that had no length gets one
			// (Relay's framing), every other header stays as received.
			kept: []kept{{withLen("session", sessPayload, ""), sessPayload}, {`{"type":"client_report","length":` + fmt.Sprint(len(clientReport)) + `}`, clientReport}, {withLen("unknown_thing", binaryPayload, `"x":[1, 2]`), binaryPayload}},
			want: []filter.Outcome{{Reason: filter.ReasonLocalhost, Category: "error", Quantity: 1}},
		},
		{
			name:     "transaction by name, the SDK's own client report kept",
			settings: `{"ignoreTransactions":{"isEnabled":true,"patterns":["` + goTxName.Transaction + `"]}}`,
			in:       env(envHeader, txHdr, goTx, crHdr, goReport),
			kept:     []kept{{crHdr, goReport}},
			want: []filter.Outcome{
				{Reason: filter.ReasonFilteredTx, Category: "transaction", Quantity: 1},
				{Reason: filter.ReasonFilteredTx, Category: "transaction_indexed", Quantity: 1},
			},
		},
		{
			name: "client ip is the first forwarded-for entry", settings: `{"clientIps":{"blacklistedIps":["203.0.113.0/24"]}}`,
			in: env(envHeader, `{"type":"event"}`, nodeEvent), ff: "203.0.113.9, 192.0.2.1",
			want: []filter.Outcome{{Reason: filter.ReasonIPAddress, Category: "error", Quantity: 1}},
		},
		{
			name: "the peer is not the client behind a proxy", settings: `{"clientIps":{"blacklistedIps":["192.0.2.1"]}}`,
			in: env(envHeader, `{"type":"event"}`, nodeEvent), ff: "203.0.113.9, 192.0.2.1", same: true,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var lookup FilterSettingsFunc = func(string) (json.RawMessage, bool) { return nil, false }
			if c.settings != "" {
				lookup = settingsFor(keyA, c.settings)
			}
			st := NewFilterStage(lookup, testLogger(t))
			in := bytes.Clone(c.in)
			m := &stream.Message{ProjectID: testProject, PublicKey: keyA, RemoteAddr: "192.0.2.1", ForwardedFor: c.ff, ReceivedAt: received, Envelope: in}
			if m.ForwardedFor == "" {
				m.ForwardedFor = m.RemoteAddr
			}
			v, err := st.Process(context.Background(), m)
			if err != nil || v.Dropped() {
				t.Fatalf("Process: verdict %+v, err %v", v, err)
			}
			if c.same {
				if !bytes.Equal(m.Envelope, c.in) {
					t.Fatalf("envelope changed:\n%s", m.Envelope)
				}
				return
			}
			if _, err := envelope.Parse(m.Envelope); err != nil {
				t.Fatalf("the rewritten envelope does not parse: %v\n%s", err, m.Envelope)
			}
			head, items := splitEnvelope(t, m.Envelope)
			if head != envHeader {
				t.Errorf("envelope header %s, want it unchanged", head)
			}
			if len(items) != len(c.kept)+1 {
				t.Fatalf("%d items, want %d kept + the report:\n%s", len(items), len(c.kept), m.Envelope)
			}
			for i, k := range c.kept {
				if items[i].headerLine != k.header || string(items[i].payload) != k.payload {
					t.Errorf("item %d: %s / %q, want byte for byte %s / %q", i, items[i].headerLine, items[i].payload, k.header, k.payload)
				}
			}
			last := items[len(items)-1]
			if last.header["type"] != "client_report" {
				t.Fatalf("last item is %v, want the client report", last.header["type"])
			}
			var r report
			if err := json.Unmarshal(last.payload, &r); err != nil {
				t.Fatalf("client report: %v: %s", err, last.payload)
			}
			if r.Timestamp != received.Unix() {
				t.Errorf("report timestamp %d, want the reception time %d", r.Timestamp, received.Unix())
			}
			if fmt.Sprint(r.FilteredEvents) != fmt.Sprint(c.want) {
				t.Errorf("filtered_events %v, want %v", r.FilteredEvents, c.want)
			}
		})
	}
}

// A filtered item is counted by reason and type where it is removed.
func TestFilterStageCounts(t *testing.T) {
	_, nodeEvent := fixtureItem(t, "node-event-exception.envelope", "event")
	st := NewFilterStage(settingsFor(keyA, `{"releases":{"releases":["relay-clients@*"]}}`), nil)
	items := filterDropCounter(filter.ReasonReleaseVersion, "event")
	only := filterReportOnlyTotal
	before, beforeOnly := items.Get(), only.Get()
	for range 3 {
		m := &stream.Message{PublicKey: keyA, Envelope: env(envHeader, `{"type":"event"}`, nodeEvent)}
		if _, err := st.Process(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if got := items.Get() - before; got != 3 {
		t.Errorf(`relay_worker_filtered_items_total{reason="release-version",type="event"} grew by %d, want 3`, got)
	}
	if got := only.Get() - beforeOnly; got != 3 {
		t.Errorf("report-only envelopes grew by %d, want 3", got)
	}
}

// A project's settings are compiled once, not per envelope, and a changed
// document takes effect at once.
func TestFilterStageCompilesOnce(t *testing.T) {
	_, nodeEvent := fixtureItem(t, "node-event-exception.envelope", "event")
	settings := `{"releases":{"releases":["nothing-matches"]}}`
	st := NewFilterStage(FilterSettingsFunc(func(string) (json.RawMessage, bool) {
		return json.RawMessage(settings), true // a fresh slice every call, as a registry would hand out
	}), nil)
	process := func() *stream.Message {
		m := &stream.Message{PublicKey: keyA, Envelope: env(envHeader, `{"type":"event"}`, nodeEvent)}
		if _, err := st.Process(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	for range 50 {
		process()
	}
	first, _, _ := st.cache.Get([]byte(settings))
	process()
	again, fresh, _ := st.cache.Get([]byte(settings))
	if fresh || first != again {
		t.Fatal("the settings were compiled again")
	}
	settings = `{"releases":{"releases":["relay-clients@*"]}}`
	if m := process(); !strings.Contains(string(m.Envelope), `"client_report"`) {
		t.Fatalf("changed settings not applied:\n%s", m.Envelope)
	}
}

// Durability: an envelope whose every item was filtered is not dropped but
// carried on as its client report through the durable path. With the
// upstream down, the reports go to the spool; the worker is stopped and the
// spool reopened (a restart); once the upstream is back every report arrives
// exactly once, for the envelope's own event id and key, and no filtered
// event reaches the upstream.
func TestFilterStageReportSurvivesOutageAndRestart(t *testing.T) {
	spoolPath := t.TempDir() + "/spool.db"
	h := newHarness(t, harnessOpts{spoolPath: spoolPath})
	stage := func() Stage {
		// envelopeFor's events say "worker test": filtered for key A only.
		return NewFilterStage(settingsFor(keyA, `{"errorMessages":{"patterns":["worker *"]}}`), h.log)
	}
	h.up.Down()
	r := h.start(fastCfg(Config{Concurrency: 2, DrainConcurrency: 1}), stage())
	filtered := h.publish(6, keyA)
	passed := h.publish(2, keyB)
	eventually(t, 15*time.Second, "every envelope in the spool", func() bool { return h.spool.Stats().Records == 8 })
	r.stop(t)
	h.closeSpool()

	h.openSpool()
	if n := h.spool.Stats().Records; n != 8 {
		t.Fatalf("reopened spool holds %d records, want 8", n)
	}
	upAgain(t, h)
	h.start(fastCfg(Config{Concurrency: 2, DrainConcurrency: 1}), stage())
	eventually(t, 15*time.Second, "the spool drained", func() bool { return h.spool.Stats().Records == 0 })
	h.checkLedger(append(filtered, passed...), 0)

	var reported uint64
	for _, rcv := range h.up.Received() {
		types := make([]string, len(rcv.Items))
		for i, it := range rcv.Items {
			types[i] = it.Type
		}
		switch h.key(rcv.EventID) {
		case keyA:
			if len(types) != 1 || types[0] != "client_report" {
				t.Errorf("%s: items %v, want the client report alone", rcv.EventID, types)
				continue
			}
			var rep report
			if err := json.Unmarshal(rcv.Items[0].Payload, &rep); err != nil {
				t.Fatalf("client report: %v", err)
			}
			for _, o := range rep.FilteredEvents {
				if o.Reason != filter.ReasonErrorMessage || o.Category != "error" {
					t.Errorf("outcome %+v, want error-message/error", o)
				}
				reported += o.Quantity
			}
		case keyB:
			if len(types) != 1 || types[0] != "event" {
				t.Errorf("%s (unfiltered key): items %v, want the event", rcv.EventID, types)
			}
		}
	}
	if reported != uint64(len(filtered)) {
		t.Errorf("client reports account for %d filtered events, want %d", reported, len(filtered))
	}
}
