package config

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
)

// override is one Override call: a command-line flag (or a prompt's answer) given over the
// file and the environment.
type override struct{ key, value, source string }

// Reload reads the configuration again as Load did — the same folder, the same environment
// lookup — replays the flags given over it (Override), and validates the result. A running
// relay calls it on SIGHUP: the flags it was started with still win over the file, as they
// did at start. The receiver is not changed; on error the caller keeps it.
func (c *Config) Reload() (*Config, error) {
	lookup := c.lookup
	if lookup == nil { // a Config built by Default, not Load: no environment was read
		lookup = func(string) (string, bool) { return "", false }
	}
	n, err := LoadWithEnv(filepath.Dir(c.file), lookup)
	if err != nil {
		return nil, err
	}
	for _, o := range c.overrides {
		if err := n.Override(o.key, o.value, o.source); err != nil {
			return nil, err
		}
	}
	if err := n.Validate(); err != nil {
		return nil, err
	}
	return n, nil
}

// reloadable are the keys (or, ending in ".", the sections) a running relay applies on
// SIGHUP. Every other key takes effect at the next start.
var reloadable = []string{"logging.level", "scrub."}

// Reloadable reports whether a running relay applies a new value of key on SIGHUP.
func Reloadable(key string) bool {
	for _, r := range reloadable {
		if key == r || (strings.HasSuffix(r, ".") && strings.HasPrefix(key, r)) {
			return true
		}
	}
	return false
}

// ChangedKeys lists the dotted keys whose values differ between a and b, in the order
// `config show` prints them. Lists compare element by element, free-form values (scrub.pii_config)
// by their JSON form.
func ChangedKeys(a, b *Config) []string {
	var out []string
	diffStruct(reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem(), "", &out)
	return out
}

func diffStruct(a, b reflect.Value, prefix string, out *[]string) {
	names, index := yamlFields(a.Type())
	for _, name := range names {
		key := join(prefix, name)
		fa, fb := a.Field(index[name]), b.Field(index[name])
		switch {
		case fa.Type() == rawYAMLType:
			ja, errA := fa.Interface().(RawYAML).JSON()
			jb, errB := fb.Interface().(RawYAML).JSON()
			if string(ja) != string(jb) || fmt.Sprint(errA) != fmt.Sprint(errB) {
				*out = append(*out, key)
			}
		case fa.Kind() == reflect.Struct && fa.Type() != durationType:
			diffStruct(fa, fb, key, out)
		case !reflect.DeepEqual(fa.Interface(), fb.Interface()):
			*out = append(*out, key)
		}
	}
}
