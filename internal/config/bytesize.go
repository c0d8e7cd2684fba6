package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ByteSize is a size in bytes. In config.yml it is written as Sentry Relay writes sizes: a plain
// integer (bytes) or a number followed by a unit. As in Relay, a lower-case "k" is decimal and an
// upper-case "K" is binary ("1kB" = 1000, "1KB" = "1KiB" = 1024); the larger decimal units are
// "MB", "GB", "TB" and the binary ones "MiB", "GiB", "TiB". Units are case-sensitive on purpose:
// "mb" is not accepted rather than guessed.
type ByteSize int64

// Common sizes.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	TiB ByteSize = 1 << 40
	KB  ByteSize = 1000
	MB  ByteSize = 1000 * KB
	GB  ByteSize = 1000 * MB
	TB  ByteSize = 1000 * GB
)

// byteUnits lists the accepted unit spellings. Order matters only for String, which picks the
// first unit (largest first, binary before decimal) that divides the value exactly.
var byteUnits = []struct {
	name string
	size ByteSize
}{
	{"TiB", TiB}, {"TB", TB},
	{"GiB", GiB}, {"GB", GB},
	{"MiB", MiB}, {"MB", MB},
	{"KiB", KiB}, {"kB", KB},
	{"B", 1},
}

// unitAliases are spellings accepted when parsing but never produced by String.
var unitAliases = map[string]ByteSize{
	"KB": KiB, // Relay (human_size) reads an upper-case K as kibi
}

// ParseByteSize parses "4242", "500B", "1kB", "1KB", "1KiB", "1.5MiB", "1 GB" and the like.
// Fractions are allowed and rounded down to whole bytes; negative sizes are not.
func ParseByteSize(s string) (ByteSize, error) {
	str := strings.TrimSpace(s)
	if str == "" {
		return 0, fmt.Errorf("empty size")
	}
	i := 0
	for i < len(str) && (str[i] >= '0' && str[i] <= '9' || str[i] == '.') {
		i++
	}
	num, unit := str[:i], strings.TrimSpace(str[i:])
	if num == "" {
		return 0, fmt.Errorf("%q is not a size (expected a number of bytes or a number with a unit such as 500B, 1kB, 1KiB, 10MB, 1MiB, 1GiB)", s)
	}
	mult := ByteSize(0)
	if unit == "" {
		mult = 1
	} else if m, ok := unitAliases[unit]; ok {
		mult = m
	} else {
		for _, u := range byteUnits {
			if u.name == unit {
				mult = u.size
				break
			}
		}
	}
	if mult == 0 {
		return 0, fmt.Errorf("%q has an unknown unit %q (use B, kB, KB, KiB, MB, MiB, GB, GiB, TB or TiB)", s, unit)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64/int64(mult) {
			return 0, fmt.Errorf("%q is too large", s)
		}
		return ByteSize(n) * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: bad number %q", s, num)
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return ByteSize(v), nil
}

// Bytes returns the size as a plain int64.
func (b ByteSize) Bytes() int64 { return int64(b) }

// String writes the size with the largest unit that represents it exactly, as Relay's
// ByteSize::infer does ("200MiB", "1kB", "4242B"), so that `config show` round-trips.
func (b ByteSize) String() string {
	if b == 0 {
		return "0B"
	}
	if b < 0 {
		return strconv.FormatInt(int64(b), 10) + "B"
	}
	for _, u := range byteUnits {
		if b%u.size == 0 {
			return strconv.FormatInt(int64(b/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B" // unreachable: "B" divides everything
}

// MarshalYAML writes the size as a string with a unit.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// UnmarshalYAML accepts an integer (bytes) or a string with a unit.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a size such as 500B, 1kB, 1KiB, 10MB or 1MiB")
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// UnmarshalText lets a ByteSize be read from flags and environment variables.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}
