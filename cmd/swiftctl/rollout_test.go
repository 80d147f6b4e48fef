package main

import (
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

func TestWriteRollout(t *testing.T) {
	at := time.Date(2026, 5, 6, 12, 0, 15, 0, time.UTC)
	tests := []struct {
		name string
		r    api.Rollout
		want string
	}{
		{"progressing", api.Rollout{Image: "shop:2", Phase: api.PhaseProgressing, Step: 2, Steps: 3, Weight: 25, NextIn: "40s", StepPasses: 1, Failures: 1, FailureLimit: 3, Interval: "15s",
			LastCheck: &api.AnalysisCheck{At: at, Outcome: "fail", Reasons: []string{"Error rate 4.00% exceeds 1% threshold"}}},
			"Step 2/3: 25% of traffic, next in 40s\nFailed checks: 1/3 (every 15s)\nLast check: FAIL at 12:00:15 UTC: Error rate 4.00% exceeds 1% threshold\n"},
		{"needs a pass", api.Rollout{Phase: api.PhaseProgressing, Step: 1, Steps: 3, Weight: 10, NextIn: "0s", FailureLimit: 3, Interval: "15s"},
			"Step 1/3: 10% of traffic, next in 0s (once a check passes)\nFailed checks: 0/3 (every 15s)\n"},
		{"waiting", api.Rollout{Phase: api.PhaseCompleted, Step: 3, Steps: 3, Weight: 50, FailureLimit: 3, Interval: "15s"},
			"Step 3/3: 50% of traffic, all steps passed, waiting for swiftctl promote\nFailed checks: 0/3 (every 15s)\n"},
		{"aborted", api.Rollout{Image: "shop:2", Phase: api.PhaseAborted, Step: 1, Steps: 3, Failures: 3, FailureLimit: 3, Interval: "15s",
			Aborted: &api.Abort{At: at, Reasons: []string{"3 of 3 allowed failed checks reached"}}},
			"Canary shop:2 ABORTED at 12:00:15 UTC by the analysis: 3 of 3 allowed failed checks reached\n  (it stays aborted until the manifest names another canary image)\nFailed checks: 3/3 (every 15s)\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			writeRollout(&b, &tc.r)
			if b.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
}
