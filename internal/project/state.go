package project

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// keyLength is the length of a DSN public key (Relay's ProjectKey: exactly 32
// ASCII characters, not checked to be hex).
const keyLength = 32

// State is one project's state as Relay's project config JSON spells it
// (camelCase). Fields this relay does not interpret are ignored but kept in
// Raw.
type State struct {
	// ProjectID is the project's id; 0 when the JSON has none (the static
	// source then takes the file name's).
	ProjectID      uint64      `json:"projectId"`
	Slug           string      `json:"slug"`
	LastChange     *time.Time  `json:"lastChange"`
	Rev            string      `json:"rev"`
	Disabled       bool        `json:"disabled"`
	PublicKeys     []PublicKey `json:"publicKeys"`
	OrganizationID uint64      `json:"organizationId"`
	Config         Config      `json:"config"`

	// Raw is the whole JSON document the state was parsed from.
	Raw json.RawMessage `json:"-"`
}

// PublicKey is one DSN key of a project.
type PublicKey struct {
	PublicKey string `json:"publicKey"`
	NumericID uint64 `json:"numericId,omitempty"`
	// IsEnabled is Relay's older per-key switch (static files still carry
	// it); absent means enabled.
	IsEnabled *bool `json:"isEnabled,omitempty"`
}

// Enabled reports whether the key accepts data.
func (k PublicKey) Enabled() bool { return k.IsEnabled == nil || *k.IsEnabled }

// Config is a project's `config` object: the parts the relay acts on; the
// rest stays in Raw.
type Config struct {
	// AllowedDomains are the origins browsers may send from (Relay's glob
	// rules, see matchOrigin). Absent or null means ["*"]; an empty list
	// refuses every request that carries an origin.
	AllowedDomains []string `json:"allowedDomains"`
	// PIIConfig is Sentry's advanced scrubbing config, as JSON (nil: none).
	PIIConfig json.RawMessage `json:"piiConfig"`
	// DataScrubbingSettings are Sentry's legacy scrubbing settings, as JSON
	// (nil: none).
	DataScrubbingSettings json.RawMessage `json:"datascrubbingSettings"`
	// FilterSettings are the inbound filters (§9), as JSON.
	FilterSettings json.RawMessage `json:"filterSettings"`
	// Quotas are the project's quotas (Relay's relay_quotas::Quota list), as
	// JSON; see QuotaLimits for the part a relay enforces.
	Quotas json.RawMessage `json:"quotas"`

	// Raw is the config object as it was in the document.
	Raw json.RawMessage `json:"-"`
}

func nullToNil(b json.RawMessage) json.RawMessage {
	if t := bytes.TrimSpace(b); len(t) == 0 || string(t) == "null" {
		return nil
	}
	return b
}

// MaxStateSize bounds one project config document; anything larger is
// refused unread rather than allocated.
const MaxStateSize = 16 << 20

// Parse decodes one project state and checks what Relay checks: the JSON
// shape of every field it knows and the form of every public key. Unknown
// fields are ignored (and kept in Raw).
func Parse(b []byte) (*State, error) {
	if len(b) > MaxStateSize {
		return nil, fmt.Errorf("project state: %d bytes, more than the %d allowed", len(b), MaxStateSize)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("project state: empty document")
	}
	s := &State{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("project state: %w", describeJSONError(err))
	}
	var raw struct {
		Config json.RawMessage `json:"config"`
	}
	_ = json.Unmarshal(b, &raw) // cannot fail: b just decoded into a superset
	c := &s.Config
	c.Raw = nullToNil(raw.Config)
	if c.AllowedDomains == nil { // absent or null; [] stays empty
		c.AllowedDomains = []string{"*"}
	}
	c.PIIConfig = nullToNil(c.PIIConfig)
	c.DataScrubbingSettings = nullToNil(c.DataScrubbingSettings)
	c.FilterSettings = nullToNil(c.FilterSettings)
	c.Quotas = nullToNil(c.Quotas)
	for i, k := range s.PublicKeys {
		if len(k.PublicKey) != keyLength {
			return nil, fmt.Errorf("project state: publicKeys[%d].publicKey: %q is not a %d-character DSN key", i, k.PublicKey, keyLength)
		}
	}
	s.Raw = append(json.RawMessage(nil), b...)
	return s, nil
}

// describeJSONError turns encoding/json's errors into messages that name the
// field path and the offset, without Go type names a user cannot act on.
func describeJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "the document"
		}
		return fmt.Errorf("%s: expected %s, got a JSON %s (offset %d)", field, jsonKind(te.Type.Kind().String()), te.Value, te.Offset)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("not valid JSON at offset %d: %v", se.Offset, err)
	}
	return err
}

func jsonKind(goKind string) string {
	switch goKind {
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "a list"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "ptr":
		return "a value of another type"
	}
	return "a number" // the integer and float kinds
}

// looseKeys extracts the public keys of a document that did not parse as a
// state (a wrong type somewhere else in it), so that the keys it names can
// be refused as "ProjectState" rather than be unknown.
func looseKeys(b []byte) []string {
	var doc struct {
		PublicKeys []struct {
			PublicKey any `json:"publicKey"`
		} `json:"publicKeys"`
	}
	if len(b) > MaxStateSize {
		return nil
	}
	// A type error elsewhere still fills what it can; only bad syntax leaves
	// nothing to read.
	var te *json.UnmarshalTypeError
	if err := json.Unmarshal(b, &doc); err != nil && !errors.As(err, &te) {
		return nil
	}
	var keys []string
	for _, k := range doc.PublicKeys {
		if s, ok := k.PublicKey.(string); ok && len(s) == keyLength {
			keys = append(keys, s)
		}
	}
	return keys
}
