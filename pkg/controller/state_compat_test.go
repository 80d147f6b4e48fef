package controller

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/analysis"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/state-*.json from the test's values")

// goldenStateFile is a state.json written by the daemon before the
// analysis walk's progress (Rollout, StepMove) moved out of this
// package: a stepped canary at its second step, a step transition in
// flight, and the decisions beside it. A daemon upgraded mid-rollout
// reads this file at start.
const goldenStateFile = "testdata/state-before-analysis-split.json"

func goldenState() State {
	at := time.Date(2026, 12, 7, 9, 30, 0, 0, time.UTC)
	return State{
		Promoted:   &Promotion{ManifestStable: "app:1", Image: "app:0", At: at, User: "alice"},
		RolledBack: &Rollback{CanaryImage: "app:9", At: at, User: "bob", Aborted: true, Reasons: []string{"2 of 2 allowed failed checks reached", "Error rate exceeds 1% threshold"}},
		Restored:   &Restore{Service: "web", Rev: 3, FromRev: 5, Image: "app:0", ReleaseImage: "app:0", ImageID: "sha256:aa", Digest: "sha256:bb", ManifestStable: "app:1", SpecHash: "cc", At: at, User: "carol"},
		Pending: &Transition{ID: "0123456789ab", Kind: kindStep, Started: at, User: "alice", Revision: "rev-2",
			Step: &analysis.StepMove{Image: "app:2", Step: 2, Steps: 3, Weight: 50}},
		Rollout: &analysis.Rollout{
			CanaryImage: "app:2", Revision: "rev-1", Step: 1,
			StepStarted: at.Add(-2 * time.Second), LastCheck: at.Add(-time.Second),
			Checks: 4, StepPasses: 1, Failures: 1, Paused: true, PausedAt: at, Completed: true,
			Last: &api.AnalysisCheck{At: at.Add(-time.Second), Outcome: "fail", Reasons: []string{"Error rate exceeds 1% threshold"},
				Figures: map[string]any{"requests": 120.0, "error_rate": 0.02, "relative": map[string]any{"verdict": "fail", "z": 2.1}}},
		},
		Traffic: &stack.Traffic{Mode: stack.TrafficPause, Max: 30 * time.Second},
	}
}

// A state.json from before the analysis split loads field for field,
// and is written back byte for byte: the JSON names did not change.
func TestStateFileFromBeforeAnalysisSplit(t *testing.T) {
	if *updateGolden {
		b, err := json.MarshalIndent(goldenState(), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenStateFile, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(goldenStateFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, stateFile), golden, 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := loadState(dir)
	if err != nil {
		t.Fatalf("load a state.json from before: %v", err)
	}
	if want := goldenState(); !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded state differs:\n got %+v\nwant %+v\nrollout got %+v\n       want %+v", got, want, got.Rollout, want.Rollout)
	}
	again, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, golden) {
		t.Errorf("state.json written back differs from the file before:\n%s\nwant\n%s", again, golden)
	}
}
