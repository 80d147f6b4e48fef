package manifest

import (
	"strings"
	"testing"
)

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"", 0, ""},
		{"1048576", 1 << 20, ""},
		{"512b", 512, ""},
		{"256m", 256 << 20, ""},
		{"256M", 256 << 20, ""},
		{"256mb", 256 << 20, ""},
		{"512Mi", 512 << 20, ""},
		{"1g", 1 << 30, ""},
		{"1Gi", 1 << 30, ""},
		{"1GiB", 1 << 30, ""},
		{"64k", 64 << 10, ""},
		{"2t", 2 << 40, ""},
		{"1.5g", 3 << 29, ""},
		{"0.5Mi", 512 << 10, ""},
		{" 6m ", 6 << 20, ""},
		{"100 m", 100 << 20, ""},
		{"lots", 0, `invalid memory size "lots"`},
		{"-1g", 0, `invalid memory size "-1g"`},
		{"12q", 0, `unknown unit "q"`},
		{"1e9", 0, "use a number and a unit"},
		{"1.g", 0, "use a number and a unit"},
		{"9999999999t", 0, "too large"},
		{strings.Repeat("9", 30), 0, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMemory(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseMemory(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseMemory(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}
