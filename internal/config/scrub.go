package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Scrub is the `scrub` section: the relay-wide PII scrubbing applied to every project (the only
// scrubbing in proxy mode; project settings win once project configs exist). Both parts are in
// Sentry's shapes so that settings can be copied from a Sentry project. Nothing is scrubbed
// unless configured, as in Relay's proxy mode.
type Scrub struct {
	// DataScrubbing are Sentry's legacy "Security & Privacy" settings.
	DataScrubbing DataScrubbing `yaml:"data_scrubbing"`
	// PIIConfig is Sentry's advanced piiConfig ({"rules": …, "applications": …}), written in
	// YAML or as inline JSON. It is kept as written; the scrub package interprets it.
	PIIConfig RawYAML `yaml:"pii_config,omitempty"`
}

// DataScrubbing mirrors Sentry's datascrubbingSettings, in snake_case.
type DataScrubbing struct {
	ScrubData        bool     `yaml:"scrub_data"`
	ScrubDefaults    bool     `yaml:"scrub_defaults"`
	ScrubIPAddresses bool     `yaml:"scrub_ip_addresses"`
	SensitiveFields  []string `yaml:"sensitive_fields"`
	ExcludeFields    []string `yaml:"exclude_fields"`
}

// SentryJSON returns the settings in Sentry's camelCase datascrubbingSettings JSON shape
// ({"scrubData":…,"scrubDefaults":…,"scrubIpAddresses":…,"sensitiveFields":[…],"excludeFields":[…]}).
func (d DataScrubbing) SentryJSON() ([]byte, error) {
	type sentryShape struct {
		ScrubData        bool     `json:"scrubData"`
		ScrubDefaults    bool     `json:"scrubDefaults"`
		ScrubIPAddresses bool     `json:"scrubIpAddresses"`
		SensitiveFields  []string `json:"sensitiveFields"`
		ExcludeFields    []string `json:"excludeFields"`
	}
	s := sentryShape{d.ScrubData, d.ScrubDefaults, d.ScrubIPAddresses, d.SensitiveFields, d.ExcludeFields}
	if s.SensitiveFields == nil {
		s.SensitiveFields = []string{}
	}
	if s.ExcludeFields == nil {
		s.ExcludeFields = []string{}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("config: scrub.data_scrubbing: %w", err)
	}
	return b, nil
}

// PIIConfigJSON returns scrub.pii_config as JSON (nil when it is absent), with mapping keys in
// the order they were written.
func (s Scrub) PIIConfigJSON() ([]byte, error) {
	if s.PIIConfig.IsZero() {
		return nil, nil
	}
	b, err := s.PIIConfig.JSON()
	if err != nil {
		return nil, fmt.Errorf("config: scrub.pii_config: %w", err)
	}
	return b, nil
}

// RawYAML holds a YAML value as written, for free-form parts of the config.
type RawYAML struct {
	node *yaml.Node
}

// IsZero reports whether no value was given (also lets `omitempty` drop it).
func (r RawYAML) IsZero() bool { return r.node == nil }

// UnmarshalYAML keeps the node.
func (r *RawYAML) UnmarshalYAML(n *yaml.Node) error {
	c := *n
	r.node = &c
	return nil
}

// MarshalYAML writes the node back as it was read.
func (r RawYAML) MarshalYAML() (any, error) {
	if r.node == nil {
		return nil, nil
	}
	return r.node, nil
}

// JSON converts the value to JSON, keeping the order of mapping keys. YAML-only constructs
// that JSON cannot express (non-scalar keys, merge keys, .inf/.nan, binary) are errors.
func (r RawYAML) JSON() ([]byte, error) {
	if r.node == nil {
		return []byte("null"), nil
	}
	w := &jsonWriter{budget: maxJSONNodes}
	if err := w.node(r.node, 0); err != nil {
		return nil, err
	}
	return w.buf.Bytes(), nil
}

const (
	// maxJSONDepth bounds recursion through nested (or alias-cyclic) YAML.
	maxJSONDepth = 200
	// maxJSONNodes bounds the work of expanding aliases: a few lines of YAML aliases can
	// describe an exponentially large value ("billion laughs"). Real PII configs are tiny.
	maxJSONNodes = 1 << 16
)

type jsonWriter struct {
	buf    bytes.Buffer
	budget int
}

func (w *jsonWriter) node(n *yaml.Node, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("line %d: nested too deeply", n.Line)
	}
	if w.budget--; w.budget < 0 {
		return fmt.Errorf("line %d: too large once aliases are expanded", n.Line)
	}
	buf := &w.buf
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			buf.WriteString("null")
			return nil
		}
		return w.node(n.Content[0], depth+1)
	case yaml.AliasNode:
		if n.Alias == nil {
			return fmt.Errorf("line %d: unresolved alias", n.Line)
		}
		return w.node(n.Alias, depth+1)
	case yaml.MappingNode:
		buf.WriteByte('{')
		seen := make(map[string]int, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			for k.Kind == yaml.AliasNode && k.Alias != nil {
				k = k.Alias
			}
			if k.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: a mapping key must be a plain value", k.Line)
			}
			if k.ShortTag() == "!!merge" {
				return fmt.Errorf("line %d: merge keys (<<) are not supported here", k.Line)
			}
			if line, dup := seen[k.Value]; dup {
				return fmt.Errorf("line %d: key %q given twice (first on line %d)", k.Line, k.Value, line)
			}
			seen[k.Value] = k.Line
			if i > 0 {
				buf.WriteByte(',')
			}
			kb, _ := json.Marshal(k.Value) // strings always marshal
			buf.Write(kb)
			buf.WriteByte(':')
			if err := w.node(v, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
		return nil
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, v := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := w.node(v, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	case yaml.ScalarNode:
		return scalarJSON(buf, n)
	}
	return fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

func scalarJSON(buf *bytes.Buffer, n *yaml.Node) error {
	switch n.ShortTag() {
	case "!!null":
		buf.WriteString("null")
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		buf.WriteString(strconv.FormatBool(b))
	case "!!int":
		var i int64
		if err := n.Decode(&i); err != nil {
			// Larger than int64: keep the digits, JSON numbers have no size limit.
			var u uint64
			if err2 := n.Decode(&u); err2 != nil {
				return fmt.Errorf("line %d: %w", n.Line, err)
			}
			buf.WriteString(strconv.FormatUint(u, 10))
			return nil
		}
		buf.WriteString(strconv.FormatInt(i, 10))
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("line %d: %s has no JSON form", n.Line, n.Value)
		}
		buf.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
	case "!!str", "!!timestamp":
		b, _ := json.Marshal(n.Value)
		buf.Write(b)
	default:
		return fmt.Errorf("line %d: value of type %s has no JSON form", n.Line, n.ShortTag())
	}
	return nil
}
