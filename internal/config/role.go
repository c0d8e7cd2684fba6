package config

import (
	"fmt"
	"strings"
)

// The roles one relay process can take (`relay run --role`). A role is a shorthand for the
// ingest.enabled and worker.enabled keys: "ingest" serves the SDK endpoints and stores what
// it accepts, "worker" forwards what the stream holds, "all" (the single-binary default)
// does both. Several ingest and worker processes share one stream on a NATS cluster.
const (
	RoleAll    = "all"
	RoleIngest = "ingest"
	RoleWorker = "worker"
)

// Roles lists the accepted --role values in the order help texts show them.
var Roles = []string{RoleIngest, RoleWorker, RoleAll}

// SetRole sets ingest.enabled and worker.enabled from a role name; source names it in
// messages ("--role"). It wins over config.yml and the environment, as a flag should.
func (c *Config) SetRole(role, source string) error {
	var ingest, worker bool
	switch role {
	case RoleAll:
		ingest, worker = true, true
	case RoleIngest:
		ingest = true
	case RoleWorker:
		worker = true
	default:
		return fmt.Errorf("%s: %q is not one of %s", source, role, strings.Join(Roles, ", "))
	}
	c.Ingest.Enabled, c.Worker.Enabled = ingest, worker
	o := c.originMap()
	o["ingest.enabled"] = origin{source: source}
	o["worker.enabled"] = origin{source: source}
	return nil
}

// Role names what this process runs, from ingest.enabled and worker.enabled: one of the
// Roles, or "none" when both are off (Validate refuses that).
func (c *Config) Role() string {
	switch {
	case c.Ingest.Enabled && c.Worker.Enabled:
		return RoleAll
	case c.Ingest.Enabled:
		return RoleIngest
	case c.Worker.Enabled:
		return RoleWorker
	}
	return "none"
}
