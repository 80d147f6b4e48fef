package audit

import (
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// A stepped canary's steps, checks and abort are in the Timeline; the
// failed checks and the abort are Violations too, with their reasons.
func TestRolloutInReport(t *testing.T) {
	recs := []journal.Record{
		event(0, journal.EventCanaryStep, "Step 1/3: 10% of traffic on canary shop:2.0", ""),
		event(15, journal.EventCheckPassed, "canary check passed (step 1/3 at 10%)", ""),
		event(30, journal.EventCanaryStep, "Step 2/3: 25% of traffic on canary shop:2.0", ""),
		withReasons(event(45, journal.EventCheckFailed, "canary check failed 1/2 (step 2/3 at 25%): Error rate 4.00% exceeds 1% threshold", ""),
			"Error rate 4.00% exceeds 1% threshold"),
		withReasons(event(60, journal.EventCheckFailed, "canary check failed 2/2 (step 2/3 at 25%): Error rate 5.00% exceeds 1% threshold", ""),
			"Error rate 5.00% exceeds 1% threshold"),
		withReasons(event(61, journal.EventAborted, "canary shop:2.0 aborted: 2 of 2 allowed failed checks reached; Error rate 5.00% exceeds 1% threshold; all traffic on stable", ""),
			"2 of 2 allowed failed checks reached", "Error rate 5.00% exceeds 1% threshold"),
	}
	got := string(Render(writeJournal(t, recs, nil)))
	checkGolden(t, "rollout_abort.md", []byte(got))
	timeline := got[strings.Index(got, "## Timeline"):strings.Index(got, "## Violations")]
	violations := got[strings.Index(got, "## Violations"):]
	for _, want := range []string{"Canary step", "Canary check passed", "Canary check failed", "Canary aborted"} {
		if !strings.Contains(timeline, want) {
			t.Errorf("timeline lacks %q:\n%s", want, timeline)
		}
	}
	if n := strings.Count(violations, "Canary check failed"); n != 2 {
		t.Errorf("violations list %d failed checks, want 2:\n%s", n, violations)
	}
	if !strings.Contains(violations, "Canary aborted") || !strings.Contains(violations, "2 of 2 allowed failed checks") {
		t.Errorf("violations lack the abort and its reasons:\n%s", violations)
	}
	for _, row := range []string{"| Canary steps | 2 |", "| Failed canary checks | 2 |", "| Canaries aborted | 1 |"} {
		if !strings.Contains(got, row) {
			t.Errorf("summary lacks %q", row)
		}
	}
}
