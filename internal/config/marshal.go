package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// Marshal writes the whole effective configuration as YAML (`relay config show`): every key,
// defaults included, in a form Load reads back to the same values.
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("config: marshal: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: marshal: %w", err)
	}
	return buf.Bytes(), nil
}

// minimalHeader heads a file written by `relay config init`.
const minimalHeader = `# relay configuration, written by "relay config init".
# Every key not written here has its default; "relay config show" prints them all and the
# README's configuration reference explains each.
`

// MarshalMinimal writes only the relay section (mode, upstream, host, port and, when set, the
// TLS keys) under a short header, as Sentry Relay's `config init` does.
func (c *Config) MarshalMinimal() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(minimalHeader)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(struct {
		Relay Relay `yaml:"relay"`
	}{c.Relay}); err != nil {
		return nil, fmt.Errorf("config: marshal: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: marshal: %w", err)
	}
	return buf.Bytes(), nil
}

// SaveMinimal writes MarshalMinimal's output to <dir>/config.yml with mode 0600, creating dir
// with mode 0700 if needed. It never replaces an existing file: that is an error wrapping
// fs.ErrExist.
func (c *Config) SaveMinimal(dir string) error {
	data, err := c.MarshalMinimal()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("config: create %s: %w", dir, unwrapPathError(err))
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("config: %s already exists: %w", path, fs.ErrExist)
		}
		return fmt.Errorf("config: write %s: %w", path, unwrapPathError(err))
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	return nil
}
