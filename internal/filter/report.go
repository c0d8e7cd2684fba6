package filter

import (
	"encoding/json"
	"fmt"
	"time"
)

// Outcome is a quantity of one data category filtered for one reason: an
// entry of a client report's `filtered_events` (relay-protocol.md §10).
type Outcome struct {
	Reason   Reason `json:"reason"`
	Category string `json:"category"`
	Quantity uint64 `json:"quantity"`
}

// ClientReport returns the payload of a `client_report` item carrying
// outcomes as `filtered_events`, summed by (reason, category) in order of
// first appearance, with `timestamp` in Unix seconds — what an external
// Relay sends upstream for what it filtered (`emit_outcomes:
// as_client_reports`).
func ClientReport(at time.Time, outcomes []Outcome) ([]byte, error) {
	merged := make([]Outcome, 0, len(outcomes))
	for _, o := range outcomes {
		found := false
		for i := range merged {
			if merged[i].Reason == o.Reason && merged[i].Category == o.Category {
				merged[i].Quantity += o.Quantity
				found = true
				break
			}
		}
		if !found {
			merged = append(merged, o)
		}
	}
	b, err := json.Marshal(struct {
		Timestamp      int64     `json:"timestamp"`
		FilteredEvents []Outcome `json:"filtered_events"`
	}{at.Unix(), merged})
	if err != nil {
		return nil, fmt.Errorf("filter: client report: %w", err)
	}
	return b, nil
}
