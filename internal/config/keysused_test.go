package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// Every key config.yml accepts must be read by something that acts on it:
// a key that is parsed, validated and documented but does nothing misleads
// the person who sets it. This test looks for each field of the config
// structs being read (".Field") in the module's non-test sources outside
// this package, or in the files of this package that turn the config into
// something running (the logger, the scrubber). It is a name match, so a
// field whose name is common passes easily; what it catches is a key nobody
// reads at all — as limits.max_replay_uncompressed_size was.
func TestEveryKeyIsRead(t *testing.T) {
	consumers := map[string]bool{"logging.go": true, "scrubber.go": true, "tunnel.go": true}
	var src strings.Builder
	root := filepath.Join("..", "..")
	self := filepath.Join(root, "internal", "config")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		if filepath.Dir(path) == self && !consumers[d.Name()] {
			return nil // this package's declarations, decoding and validation
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		src.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all := src.String()
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, prefix string) {
		names, index := yamlFields(typ)
		for _, name := range names {
			f := typ.Field(index[name])
			key := join(prefix, name)
			if f.Type.Kind() == reflect.Struct && f.Type != durationType && f.Type != rawYAMLType {
				walk(f.Type, key)
				continue
			}
			if !regexp.MustCompile(`\.` + f.Name + `\b`).MatchString(all) {
				t.Errorf("%s (%s.%s) is parsed but nothing reads it: wire it or refuse it by name", key, typ.Name(), f.Name)
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
}
