// Package systemd holds the systemd unit of swiftdeployd and the test of
// its hardening.
package systemd

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// docBound reads the exposure bound and score docs/security.md states:
// "rates it **1.7 OK**" and "fails above **4.0**".
func docBound(t *testing.T) (score, bound float64) {
	t.Helper()
	b, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	find := func(re string) float64 {
		m := regexp.MustCompile(re).FindSubmatch(b)
		if m == nil {
			t.Fatalf("docs/security.md lacks %s", re)
		}
		f, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	return find(`rates the unit \*\*([0-9.]+) OK\*\*`), find(`fails above \*\*([0-9.]+)\*\*`)
}

// TestUnitHardening rates deploy/systemd/swiftdeployd.service with
// `systemd-analyze security --offline=yes` (Debian's systemd package) and
// fails above the exposure bound docs/security.md documents, or when the
// score there is not the one measured.
func TestUnitHardening(t *testing.T) {
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze not found (Debian package systemd; .ci/run installs it)")
		}
		t.Skip("systemd-analyze not found (apt-get install systemd)")
	}
	out, err := exec.Command(bin, "security", "--offline=yes", "--no-pager", "swiftdeployd.service").CombinedOutput()
	if err != nil {
		// It exits non-zero only above --threshold (default 100) or on an
		// error in the unit.
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for swiftdeployd\.service: ([0-9.]+) (\S+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure level in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	docScore, bound := docBound(t)
	t.Logf("exposure %.1f %s (bound %.1f)", score, m[2], bound)
	if score > bound {
		t.Errorf("exposure %.1f %s is above the documented bound %.1f:\n%s", score, m[2], bound, failing(out))
	}
	if score != docScore {
		t.Errorf("docs/security.md says %.1f, systemd-analyze says %.1f: update the doc (and the unit's comment)", docScore, score)
	}
	for _, want := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"ReadWritePaths=/srv/swiftdeploy", "CapabilityBoundingSet=\n", "SystemCallFilter=@system-service"} {
		unit, _ := os.ReadFile("swiftdeployd.service")
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %q", strings.TrimSpace(want))
		}
	}
}

// failing keeps the lines of the report that cost exposure.
func failing(out []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "✗") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
