package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCacheDefaults(t *testing.T) {
	c := mustLoad(t, "")
	want := Cache{
		FileInterval:       10 * time.Second,
		ProjectExpiry:      5 * time.Minute,
		ProjectGracePeriod: 2 * time.Minute,
		MissExpiry:         time.Minute,
		BatchInterval:      100 * time.Millisecond,
		BatchSize:          500,
	}
	if c.Cache != want {
		t.Errorf("cache = %+v, want %+v", c.Cache, want)
	}
	if c.Relay.OverrideProjectIDs {
		t.Error("relay.override_project_ids defaults to true, want false (Relay's default)")
	}
	if got, want := c.ProjectsDir(), filepath.Join(c.Dir(), "projects"); got != want {
		t.Errorf("ProjectsDir = %s, want %s", got, want)
	}
}

func TestCacheLoad(t *testing.T) {
	c := mustLoad(t, "relay:\n  override_project_ids: true\ncache:\n  file_interval: 2s\n  project_expiry: 60\n  project_grace_period: 0\n  miss_expiry: 30s\n  batch_interval: 50ms\n  batch_size: 10\n")
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := Cache{FileInterval: 2 * time.Second, ProjectExpiry: time.Minute, MissExpiry: 30 * time.Second,
		BatchInterval: 50 * time.Millisecond, BatchSize: 10}
	if c.Cache != want {
		t.Errorf("cache = %+v, want %+v", c.Cache, want)
	}
	if !c.Relay.OverrideProjectIDs {
		t.Error("relay.override_project_ids: true was not read")
	}
}

func TestCacheValidate(t *testing.T) {
	c := mustLoad(t, "cache:\n  file_interval: 0s\n  project_expiry: 0s\n  miss_expiry: 0s\n  batch_interval: 0s\n  batch_size: 0\n")
	err := c.Validate()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("Validate = %v, want *Error", err)
	}
	got := strings.ReplaceAll(err.Error(), c.File(), "F")
	want := []string{
		"F:2: cache.file_interval: must be longer than zero",
		"F:3: cache.project_expiry: must be longer than zero",
		"F:4: cache.miss_expiry: must be longer than zero",
		"F:5: cache.batch_interval: must be longer than zero",
		"F:6: cache.batch_size: 0 must be at least 1",
	}
	if got != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}
