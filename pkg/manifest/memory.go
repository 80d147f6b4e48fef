package manifest

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

var memorySize = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)$`)

// memoryUnits follows Docker's convention: every unit is binary, so "1g",
// "1gb" and "1Gi" are all 1073741824 bytes.
var memoryUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "ki": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mi": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gi": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "ti": 1 << 40, "tib": 1 << 40,
}

// ParseMemory converts a memory size such as "256m", "1g", "512Mi", "1.5g"
// or "268435456" (bytes) into bytes. Units are case-insensitive and binary.
// The empty string means no limit and gives 0.
func ParseMemory(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	m := memorySize.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("invalid memory size %q: use a number and a unit, e.g. \"256m\", \"1g\" or \"512Mi\"", s)
	}
	unit, ok := memoryUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("invalid memory size %q: unknown unit %q (use b, k, m, g, t or Ki, Mi, Gi, Ti)", s, m[2])
	}
	if whole, err := strconv.ParseInt(m[1], 10, 64); err == nil {
		if whole > math.MaxInt64/unit {
			return 0, fmt.Errorf("invalid memory size %q: too large", s)
		}
		return whole * unit, nil
	}
	// A fraction ("1.5g") or a number too long for int64.
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil || f*float64(unit) >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid memory size %q: too large", s)
	}
	return int64(f * float64(unit)), nil
}
