package config

// The spool.hand_back values: whether a worker, on a graceful shutdown,
// publishes what its spool holds back to the stream (and deletes each record
// once JetStream acknowledged it), so that another worker sends it on.
const (
	// HandBackAuto (the default) hands back when the stream is an external
	// NATS server (jetstream.url set): there other workers share it, and the
	// machine being stopped may be gone for good. With the embedded server
	// the stream lives in this process, on the same disk as the spool:
	// handing back would only copy the envelopes from one file to another,
	// and no other worker could take them while this one is down.
	HandBackAuto   = "auto"
	HandBackAlways = "always"
	HandBackNever  = "never"
)

// HandBackOnShutdown resolves spool.hand_back for this configuration.
func (c *Config) HandBackOnShutdown() bool {
	switch c.Spool.HandBack {
	case HandBackAlways:
		return true
	case HandBackNever:
		return false
	default:
		return !c.JetStream.Embedded()
	}
}
