package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{"", time.Time{}, false},
		{"10m", now.Add(-10 * time.Minute), false},
		{"1h30m", now.Add(-90 * time.Minute), false},
		{"2026-12-07T05:22:33Z", time.Date(2026, 12, 7, 5, 22, 33, 0, time.UTC), false},
		{"2026-12-07T05:22:33.5+01:00", time.Date(2026, 12, 7, 4, 22, 33, 5e8, time.UTC), false},
		{"-5m", time.Time{}, true},
		{"0s", time.Time{}, true},
		{"yesterday", time.Time{}, true},
	} {
		got, err := parseSince(tc.in, now)
		if (err != nil) != tc.bad || !got.Equal(tc.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v (error: %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestPrintLogLine(t *testing.T) {
	l := api.LogLine{Time: time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC), Container: "shop-stable-ab12cd34-1", Line: "listening"}
	for _, tc := range []struct {
		ts   bool
		want string
	}{
		{false, "shop-stable-ab12cd34-1 | listening\n"},
		{true, "shop-stable-ab12cd34-1 | 2026-12-07T05:00:00Z listening\n"},
	} {
		var b bytes.Buffer
		if err := printLogLine(&b, l, tc.ts); err != nil || b.String() != tc.want {
			t.Errorf("timestamps=%v: %q, want %q", tc.ts, b.String(), tc.want)
		}
	}
}

// Bad flags are usage errors (exit 2) before the daemon is asked.
func TestLogsFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"logs", "--track", "blue"},
		{"logs", "--since", "yesterday"},
		{"logs", "--tail", "-2"},
		{"logs", "a", "b"},
	} {
		var out, errb bytes.Buffer
		err := run(t.Context(), append([]string{"--socket", "/nonexistent/sd.sock"}, args...), &out, &errb)
		if code := exitCode(&errb, err); code != exitUsage {
			t.Errorf("%v: exit %d, want %d; stderr %s", args, code, exitUsage, errb.String())
		}
	}
}
