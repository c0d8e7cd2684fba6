package config

import (
	"path/filepath"
	"time"
)

// Cache is the `cache` section: how long project configs are kept and how often they are
// looked for. The keys and defaults are Sentry Relay's (relay-config Cache).
type Cache struct {
	// FileInterval is how often <config dir>/projects/*.json is re-read, so a project file
	// added, changed or removed while the relay runs takes effect without a restart.
	FileInterval time.Duration `yaml:"file_interval"`
	// ProjectExpiry is how long a project config fetched from the upstream stays valid.
	ProjectExpiry time.Duration `yaml:"project_expiry"`
	// ProjectGracePeriod is how long an expired project config is still used while it is
	// fetched again.
	ProjectGracePeriod time.Duration `yaml:"project_grace_period"`
	// MissExpiry is how long "the upstream does not know this key" is remembered.
	MissExpiry time.Duration `yaml:"miss_expiry"`
	// BatchInterval is how long project config requests are collected into one upstream
	// request.
	BatchInterval time.Duration `yaml:"batch_interval"`
	// BatchSize is the most keys one upstream project config request asks for.
	BatchSize int `yaml:"batch_size"`
}

// defaultCache returns Relay's cache defaults (protocol doc §5.1; project_grace_period is the
// newest Relay's 120 s, its docs still say 0).
func defaultCache() Cache {
	return Cache{
		FileInterval:       10 * time.Second,
		ProjectExpiry:      300 * time.Second,
		ProjectGracePeriod: 120 * time.Second,
		MissExpiry:         60 * time.Second,
		BatchInterval:      100 * time.Millisecond,
		BatchSize:          500,
	}
}

// validateCache checks the cache section. A grace period of zero is valid (Relay's old
// default: an expired config is not used at all); the loader refuses negative durations.
func (v *validator) validateCache(c *Cache) {
	v.positive("cache.file_interval", c.FileInterval)
	v.positive("cache.project_expiry", c.ProjectExpiry)
	v.positive("cache.miss_expiry", c.MissExpiry)
	v.positive("cache.batch_interval", c.BatchInterval)
	v.count("cache.batch_size", c.BatchSize)
}

// ProjectsDir is where static project configs live: <config dir>/projects, one
// <project id>.json per project (Relay's local project source).
func (c *Config) ProjectsDir() string { return filepath.Join(c.dir, "projects") }
