package config

import (
	"fmt"

	"github.com/relayhq/relay/scrub"
)

// ScrubConfig returns the relay-wide scrubbing (the scrub section) in the scrub package's
// terms, with limits.max_replay_uncompressed_size bounding the replay recordings it
// decompresses. Legacy settings that scrub nothing (scrub_data, scrub_ip_addresses and
// sensitive_fields all off) are left out, as Sentry does.
func (c *Config) ScrubConfig() (scrub.Config, error) {
	sc := scrub.Config{MaxRecordingSize: c.Limits.MaxReplayUncompressedSize.Bytes()}
	if ds := c.Scrub.DataScrubbing; ds.ScrubData || ds.ScrubIPAddresses || len(ds.SensitiveFields) > 0 {
		sc.DataScrubbing = &scrub.DataScrubbing{
			ScrubData:        ds.ScrubData,
			ScrubDefaults:    ds.ScrubDefaults,
			ScrubIPAddresses: ds.ScrubIPAddresses,
			SensitiveFields:  ds.SensitiveFields,
			ExcludeFields:    ds.ExcludeFields,
		}
	}
	pii, err := c.Scrub.PIIConfigJSON()
	if err != nil {
		return sc, err
	}
	sc.PIIConfig = pii
	return sc, nil
}

// CompileScrubber compiles the relay-wide scrubber. Validate compiles it too, so a rule that
// does not compile is reported with the line of scrub.pii_config before anything starts, and
// a SIGHUP reload refuses it while the old rules stay in force.
func (c *Config) CompileScrubber() (*scrub.Scrubber, error) {
	sc, err := c.ScrubConfig()
	if err != nil {
		return nil, err
	}
	s, err := scrub.Compile(sc)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", c.scrubKey(), err)
	}
	return s, nil
}

// scrubKey is the key a scrub compile error belongs to: the advanced rules when there are
// any (the legacy settings have no form that fails to compile), else the legacy ones.
func (c *Config) scrubKey() string {
	if !c.Scrub.PIIConfig.IsZero() {
		return "scrub.pii_config"
	}
	return "scrub.data_scrubbing"
}

// ScrubLint lists what in scrub.pii_config is accepted but does nothing (scrub.Lint: a regex
// that does not compile, a rule that does not exist), each as "<where>: scrub.pii_config: …".
// Validate does not refuse these — Sentry Relay accepts them — but `relay config validate`
// reports them.
func (c *Config) ScrubLint() []string {
	pii, err := c.Scrub.PIIConfigJSON()
	if err != nil {
		return nil // Validate reports it
	}
	lints, err := scrub.Lint(pii)
	if err != nil {
		return nil // Validate reports it
	}
	v := &validator{c: c}
	for _, l := range lints {
		v.add("scrub.pii_config", "%s", l)
	}
	return v.problems
}
