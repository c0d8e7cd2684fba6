package app

import "github.com/VictoriaMetrics/metrics"

// registerSet puts set on /metrics and returns the func that takes it off
// again, for the component that owns the set to call when it closes.
func registerSet(set *metrics.Set) (unregister func()) {
	metrics.RegisterSet(set)
	return func() { metrics.UnregisterSet(set, true) }
}
