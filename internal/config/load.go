package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is a configuration error: every problem found, one per line, each naming where the
// value came from and its key (".relay/config.yml:3: relay.mode: …").
type Error struct {
	Problems []string
}

func (e *Error) Error() string { return strings.Join(e.Problems, "\n") }

// Load reads <dir>/config.yml over the defaults (an absent file means defaults: an ephemeral
// relay driven by flags and environment), then applies the RELAY_* environment variables.
// `${NAME}` in a value is replaced by that environment variable, as in newer Sentry Relay; an
// unset variable is an error. Unknown keys are errors naming the file, line and key.
// dir "" means DefaultDir.
func Load(dir string) (*Config, error) {
	return LoadWithEnv(dir, os.LookupEnv)
}

// LoadWithEnv is Load with the environment given as a lookup function (tests pass a map's).
func LoadWithEnv(dir string, lookup func(string) (string, bool)) (*Config, error) {
	if dir == "" {
		dir = DefaultDir
	}
	c := Default()
	c.setDir(dir)
	c.lookup = lookup
	c.file = filepath.Join(dir, FileName)
	data, err := os.ReadFile(c.file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// No config file: the defaults, as Relay does without a config folder.
	case err != nil:
		return nil, fmt.Errorf("%s: %w", c.file, unwrapPathError(err))
	default:
		c.fileExists = true
		if err := c.decode(data, lookup); err != nil {
			return nil, err
		}
	}
	if err := c.ApplyEnv(lookup); err != nil {
		return nil, err
	}
	return c, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

var yamlLineRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// yamlSyntaxError rewrites "yaml: line 3: …" as "<file>:3: …".
func yamlSyntaxError(file string, err error) error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		rest := msg[len(m[0]):]
		if m[1] != "" {
			return &Error{Problems: []string{fmt.Sprintf("%s:%s: %s", file, m[1], rest)}}
		}
		return &Error{Problems: []string{fmt.Sprintf("%s: %s", file, rest)}}
	}
	return &Error{Problems: []string{fmt.Sprintf("%s: %s", file, msg)}}
}

// decode reads YAML into c over its current values. Only keys present in the file change.
func (c *Config) decode(data []byte, lookup func(string) (string, bool)) error {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file
		}
		return yamlSyntaxError(c.file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return yamlSyntaxError(c.file, err)
		}
		return &Error{Problems: []string{fmt.Sprintf("%s:%d: a second YAML document (---) is not allowed", c.file, extra.Line)}}
	}
	d := &decoder{file: c.file, lookup: lookup, origins: c.originMap()}
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		if !isNull(root) {
			d.decodeStruct(root, reflect.ValueOf(c).Elem(), "")
		}
	}
	if len(d.problems) > 0 {
		return &Error{Problems: d.problems}
	}
	// Relative paths in the file are relative to the config directory, so a config folder can
	// be moved or used from any working directory.
	for _, p := range []struct {
		key string
		v   *string
	}{
		{"spool.path", &c.Spool.Path},
		{"jetstream.store_dir", &c.JetStream.StoreDir},
		{"relay.tls_identity_path", &c.Relay.TLSIdentityPath},
		{"relay.tls_cert_path", &c.Relay.TLSCertPath},
		{"relay.tls_key_path", &c.Relay.TLSKeyPath},
		{"http.ca_file", &c.HTTP.CAFile},
		{"jetstream.credentials_file", &c.JetStream.CredentialsFile},
		{"jetstream.nkey_seed_file", &c.JetStream.NKeySeedFile},
		{"jetstream.tls_ca_file", &c.JetStream.TLSCAFile},
		{"jetstream.tls_cert_file", &c.JetStream.TLSCertFile},
		{"jetstream.tls_key_file", &c.JetStream.TLSKeyFile},
	} {
		if _, fromFile := c.origins[p.key]; fromFile && *p.v != "" && !filepath.IsAbs(*p.v) {
			*p.v = filepath.Join(c.dir, *p.v)
		}
	}
	c.JetStream.Sync = normaliseSync(c.JetStream.Sync)
	return nil
}

// normaliseSync turns Relay-style integer seconds into a Go duration string ("5" → "5s").
func normaliseSync(s string) string {
	if s != "" && isDecimal(s) {
		if d, err := ParseDuration(s); err == nil {
			return d.String()
		}
	}
	return s
}

func (c *Config) originMap() map[string]origin {
	if c.origins == nil {
		c.origins = make(map[string]origin)
	}
	return c.origins
}

func isNull(n *yaml.Node) bool {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// decoder walks the YAML tree against the Config type itself instead of using yaml.v3's
// KnownFields, so that every problem is reported (not only the first) with its dotted key, and
// so that `${ENV}` substitution and Relay's value forms (integer seconds) apply per value.
type decoder struct {
	file     string
	lookup   func(string) (string, bool)
	origins  map[string]origin
	problems []string
}

func (d *decoder) fail(n *yaml.Node, key, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if key == "" {
		d.problems = append(d.problems, fmt.Sprintf("%s:%d: %s", d.file, n.Line, msg))
		return
	}
	d.problems = append(d.problems, fmt.Sprintf("%s:%d: %s: %s", d.file, n.Line, key, msg))
}

var (
	durationType  = reflect.TypeOf(time.Duration(0))
	unmarshalerT  = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	rawYAMLType   = reflect.TypeOf(RawYAML{})
	byteSizeType  = reflect.TypeOf(ByteSize(0))
	stringSliceTy = reflect.TypeOf([]string(nil))
)

// yamlFields maps the yaml names of a struct's fields to their indexes, in declaration order.
func yamlFields(t reflect.Type) (names []string, index map[string]int) {
	index = make(map[string]int)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		names = append(names, name)
		index[name] = i
	}
	return names, index
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, prefix string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	names, index := yamlFields(v.Type())
	if n.Kind != yaml.MappingNode {
		what := "the config"
		if prefix != "" {
			what = prefix
		}
		d.fail(n, prefix, "expected a mapping with the keys of %s (%s), got %s", what, strings.Join(names, ", "), describe(n))
		return
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k, prefix, "a key must be a plain name")
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.fail(k, join(prefix, k.Value), "given twice (first on line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		if k.ShortTag() == "!!merge" {
			d.fail(k, prefix, "merge keys (<<) are not supported")
			continue
		}
		key := join(prefix, k.Value)
		fi, ok := index[k.Value]
		if !ok {
			d.fail(k, key, "unknown key%s (known keys%s: %s)", suggest(k.Value, names), inSection(prefix), strings.Join(names, ", "))
			continue
		}
		d.origins[key] = origin{source: d.file, line: k.Line}
		d.decodeValue(val, v.Field(fi), key)
	}
}

func inSection(prefix string) string {
	if prefix == "" {
		return ""
	}
	return " of " + prefix
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

func (d *decoder) decodeValue(n *yaml.Node, v reflect.Value, key string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	t := v.Type()
	switch {
	case t == rawYAMLType:
		if isNull(n) {
			v.Set(reflect.Zero(t))
			return
		}
		if !d.substTree(n, key, 0) {
			return
		}
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.fail(n, key, "%v", err)
		}
		return
	case t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(unmarshalerT):
		if isNull(n) {
			return // an empty section keeps its defaults
		}
		d.decodeStruct(n, v, key)
		return
	case t == stringSliceTy:
		if isNull(n) {
			v.Set(reflect.Zero(t))
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.fail(n, key, "expected a list, got %s", describe(n))
			return
		}
		var out []string // an empty list stays nil, like an absent one
		for _, item := range n.Content {
			for item.Kind == yaml.AliasNode && item.Alias != nil {
				item = item.Alias
			}
			if item.Kind != yaml.ScalarNode || isNull(item) {
				d.fail(item, key, "expected a list of strings, got %s in it", describe(item))
				return
			}
			s, ok := d.subst(item, key)
			if !ok {
				return
			}
			out = append(out, s)
		}
		v.Set(reflect.ValueOf(out))
		return
	}
	// Everything else is a single value.
	if n.Kind != yaml.ScalarNode {
		d.fail(n, key, "expected a single value, got %s", describe(n))
		return
	}
	if isNull(n) {
		return // `key:` with nothing keeps the default
	}
	s, ok := d.subst(n, key)
	if !ok {
		return
	}
	if err := setScalar(v, s); err != nil {
		d.fail(n, key, "%v", err)
	}
}

// setScalar parses s into v according to v's type. It is shared by the file decoder and by
// Override (environment variables and flags), so both accept exactly the same forms.
func setScalar(v reflect.Value, s string) error {
	t := v.Type()
	switch {
	case t == durationType:
		dur, err := ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(dur))
		return nil
	case t == byteSizeType:
		b, err := ParseByteSize(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(b))
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			return fmt.Errorf("expected true or false, got %q", s)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			var ne *strconv.NumError
			if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
				return fmt.Errorf("%q is out of range", s)
			}
			return fmt.Errorf("expected an integer, got %q", s)
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("expected a number, got %q", s)
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("cannot set a value of type %s", t)
	}
	return nil
}

// subst expands ${NAME} in a scalar; problems are reported against key.
func (d *decoder) subst(n *yaml.Node, key string) (string, bool) {
	if !strings.Contains(n.Value, "$") {
		return n.Value, true
	}
	s, _, err := expandEnv(n.Value, d.lookup)
	if err != nil {
		d.fail(n, key, "%v", err)
		return "", false
	}
	return s, true
}

// substTree expands ${NAME} in every scalar of a free-form subtree, in place. A plain scalar
// that was exactly one variable gets its YAML type re-resolved from the new text (so
// `${LIMIT}` can be a number); anything else becomes a string.
func (d *decoder) substTree(n *yaml.Node, key string, depth int) bool {
	if depth > maxJSONDepth {
		d.fail(n, key, "nested too deeply")
		return false
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return true
		}
		s, whole, err := expandEnv(n.Value, d.lookup)
		if err != nil {
			d.fail(n, key, "%v", err)
			return false
		}
		if s == n.Value {
			return true
		}
		n.Value = s
		if whole && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			n.Tag = ""
		} else {
			n.Tag = "!!str"
		}
		return true
	case yaml.MappingNode, yaml.SequenceNode, yaml.DocumentNode:
		ok := true
		for _, c := range n.Content {
			ok = d.substTree(c, key, depth+1) && ok
		}
		return ok
	}
	return true // aliases point at nodes visited where they are defined
}

// expandEnv replaces ${NAME} with the environment variable NAME; "$${" writes a literal "${".
// whole reports whether s was exactly one variable reference.
func expandEnv(s string, lookup func(string) (string, bool)) (out string, whole bool, err error) {
	var b strings.Builder
	refs := 0
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			b.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			b.WriteByte(s[i])
			i++
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", false, fmt.Errorf("%q has an unterminated ${ (write $${ for a literal ${)", s)
		}
		name := s[i+2 : i+end]
		if strings.HasPrefix(name, "file:") {
			return "", false, fmt.Errorf("${%s}: reading values from files is not supported; use an environment variable", name)
		}
		if !envNameRE.MatchString(name) {
			return "", false, fmt.Errorf("${%s} is not a valid environment variable reference", name)
		}
		val, ok := lookup(name)
		if !ok {
			return "", false, fmt.Errorf("environment variable %s is not set (referenced as ${%s})", name, name)
		}
		b.WriteString(val)
		refs++
		i += end + 1
		if refs == 1 && i == len(s) && strings.HasPrefix(s, "${") {
			whole = true
		}
	}
	return b.String(), whole && refs == 1, nil
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// suggest returns ` (did you mean "x"?)` for the closest known name, or "".
func suggest(got string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if dist := levenshtein(strings.ToLower(got), n); dist < bestDist {
			best, bestDist = n, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// envOverrides are the environment variables Sentry Relay reads for these keys, plus
// RELAY_LOG_FORMAT (newer Relay).
var envOverrides = []struct{ env, key string }{
	{"RELAY_MODE", "relay.mode"},
	{"RELAY_UPSTREAM_URL", "relay.upstream"},
	{"RELAY_HOST", "relay.host"},
	{"RELAY_PORT", "relay.port"},
	{"RELAY_LOG_LEVEL", "logging.level"},
	{"RELAY_LOG_FORMAT", "logging.format"},
}

// EnvVars lists the environment variables ApplyEnv reads and the keys they set.
func EnvVars() map[string]string {
	m := make(map[string]string, len(envOverrides))
	for _, o := range envOverrides {
		m[o.env] = o.key
	}
	return m
}

// ApplyEnv applies the RELAY_* environment variables over the current values. An empty
// variable counts as unset (compose files often pass `RELAY_MODE=${RELAY_MODE}` through).
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) error {
	var problems []string
	for _, o := range envOverrides {
		val, ok := lookup(o.env)
		if !ok || val == "" {
			continue
		}
		if err := c.set(o.key, val, o.env); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return &Error{Problems: problems}
	}
	return nil
}

// Override sets one key (dotted, as in config.yml: "relay.port") from a string, as a flag or an
// environment variable gives it; source names it in messages ("--port", "RELAY_PORT"). Values
// are parsed like config.yml values; Validate checks their meaning.
func (c *Config) Override(key, value, source string) error {
	if err := c.set(key, value, source); err != nil {
		return err
	}
	c.overrides = append(c.overrides, override{key, value, source})
	return nil
}

// set is Override without remembering the call (the environment is read again by Reload).
func (c *Config) set(key, value, source string) error {
	v, err := c.field(key)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	if err := setScalar(v, value); err != nil {
		return fmt.Errorf("%s: %s: %w", source, key, err)
	}
	c.originMap()[key] = origin{source: source}
	if key == "jetstream.sync" {
		c.JetStream.Sync = normaliseSync(c.JetStream.Sync)
	}
	return nil
}

// field finds the settable single-valued field for a dotted key.
func (c *Config) field(key string) (reflect.Value, error) {
	v := reflect.ValueOf(c).Elem()
	parts := strings.Split(key, ".")
	for i, p := range parts {
		if v.Kind() != reflect.Struct || v.Type() == rawYAMLType {
			return reflect.Value{}, fmt.Errorf("%s: not a single value", strings.Join(parts[:i], "."))
		}
		names, index := yamlFields(v.Type())
		fi, ok := index[p]
		if !ok {
			return reflect.Value{}, fmt.Errorf("unknown key %q%s", join(strings.Join(parts[:i], "."), p), suggest(p, names))
		}
		v = v.Field(fi)
	}
	if v.Kind() == reflect.Struct || v.Kind() == reflect.Slice {
		return reflect.Value{}, fmt.Errorf("%s: not a single value", key)
	}
	return v, nil
}
