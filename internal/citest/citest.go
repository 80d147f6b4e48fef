// Package citest decides what a test does when a component it needs (a
// Docker Engine, root to mount a tmpfs, a Linux /proc) is missing: under
// CI=true the component is required and the test fails; elsewhere it skips,
// so a developer's laptop without it still runs the rest.
package citest

import (
	"os"
	"testing"
)

// Required reports whether missing components fail tests (CI=true).
func Required() bool { return os.Getenv("CI") == "true" }

// Unavailable fails t under CI=true and skips it otherwise, with the
// message saying which component is missing.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf(format+" (CI=true: this test must run here)", args...)
	}
	t.Skipf(format+" (set CI=true to fail instead)", args...)
}
