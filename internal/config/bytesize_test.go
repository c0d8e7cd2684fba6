package config

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
	}{
		{"0", 0},
		{"4242", 4242},
		{"500B", 500},
		{"1kB", 1000},
		{"1KB", 1024},
		{"1KiB", 1024},
		{"100KiB", 100 * 1024},
		{"1MB", 1000 * 1000},
		{"1MiB", 1 << 20},
		{"200MiB", 200 << 20},
		{"1GB", 1000 * 1000 * 1000},
		{"1GiB", 1 << 30},
		{"2TB", 2 * 1000 * 1000 * 1000 * 1000},
		{"1TiB", 1 << 40},
		{"1.5MiB", 3 << 19},
		{"0.5kB", 500},
		{" 10 MB ", 10 * 1000 * 1000},
		{"1 KiB", 1024},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseByteSize(tt.in)
			if err != nil {
				t.Fatalf("ParseByteSize(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseByteSize(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseByteSizeErrors(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{"", "empty size"},
		{"MB", "is not a size"},
		{"-1", "is not a size"},
		{"1mb", `unknown unit "mb"`},
		{"1Kib", `unknown unit "Kib"`},
		{"1 bytes", `unknown unit "bytes"`},
		{"1..2MB", "bad number"},
		{"99999999999999999999", "too large"},
		{"9999999999TiB", "too large"},
		{"9999999999.5TiB", "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseByteSize(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseByteSize(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"},
		{42, "42B"},
		{1000, "1kB"},
		{1024, "1KiB"},
		{1000 * 1000, "1MB"},
		{1 << 20, "1MiB"},
		{200 << 20, "200MiB"},
		{500 * MB, "500MB"},
		{1 << 30, "1GiB"},
		{1 << 40, "1TiB"},
		{1025, "1025B"},
		{1001 * 1000, "1001kB"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		back, err := ParseByteSize(tt.want)
		if err != nil || back != tt.in {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.want, back, err, tt.in)
		}
	}
}

func TestByteSizeYAML(t *testing.T) {
	var v struct {
		A ByteSize `yaml:"a"`
		B ByteSize `yaml:"b"`
	}
	if err := yaml.Unmarshal([]byte("a: 1024\nb: 1MiB\n"), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 1024 || v.B != MiB {
		t.Fatalf("got %d %d", v.A, v.B)
	}
	out, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "a: 1KiB\nb: 1MiB\n" {
		t.Fatalf("marshal = %q", out)
	}
	if err := yaml.Unmarshal([]byte("a: [1]\n"), &v); err == nil {
		t.Fatal("a list was accepted as a size")
	}
}

func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"1", "1kB", "1.5MiB", " 2 GB", "x", "1e9", "9999999999999TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseByteSize(s)
		if err != nil {
			return
		}
		if b < 0 {
			t.Fatalf("ParseByteSize(%q) = %d, negative", s, b)
		}
		// What String writes, ParseByteSize reads back to the same size.
		back, err := ParseByteSize(b.String())
		if err != nil || back != b {
			t.Fatalf("round trip of %q: %d → %q → %d, %v", s, b, b.String(), back, err)
		}
	})
}
