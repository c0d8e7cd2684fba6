package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"5", 5 * time.Second},
		{"60", time.Minute},
		{" 30 ", 30 * time.Second},
		{"0.5", 500 * time.Millisecond},
		{"1s", time.Second},
		{"250ms", 250 * time.Millisecond},
		{"1m30s", 90 * time.Second},
		{"2h", 2 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseDurationErrors(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{"", "empty"},
		{"-1", "negative"},
		{"-1s", "negative"},
		{"5 minutes", "not a duration"},
		{"1e3", "not a duration"},
		{"inf", "not a duration"},
		{"NaN", "not a duration"},
		{".", "not a duration"},
		{"1.2.3", "not a duration"},
		{"99999999999999999999", "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseDuration(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseDuration(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
			}
		})
	}
}
