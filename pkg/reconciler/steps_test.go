package reconciler

import (
	"slices"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// A rollout step changes the canary's weight and nothing else: the plan
// from one step to the next reloads nginx and replaces no container.
func TestStepChangesOnlyTheWeight(t *testing.T) {
	m := manifest.Defaults()
	m.Project, m.Network.Name = "demo", "demo-net"
	m.Services.Image, m.Services.Port, m.Services.Replicas = "app:1", 3000, 2
	m.Nginx.Image, m.Nginx.Port = "nginx:latest", 8080
	m.Services.Canary = &manifest.Canary{Image: "app:2", Replicas: 1,
		Steps:    []manifest.Step{{Weight: 10, Pause: manifest.Duration(time.Minute)}, {Weight: 25, Pause: manifest.Duration(time.Minute)}},
		Analysis: &manifest.Analysis{Interval: manifest.Duration(15 * time.Second), FailureLimit: 3}}
	step1 := stack.FromManifest(&m, stack.Options{})
	step2 := stack.FromManifest(&m, stack.Options{CanaryWeight: 25})
	if step1.CanaryWeight != 10 || step2.CanaryWeight != 25 {
		t.Fatalf("weights: step 1 %d, step 2 %d; want 10 and 25", step1.CanaryWeight, step2.CanaryWeight)
	}
	names := func(s stack.Stack) []string {
		var out []string
		for _, a := range s.Apps() {
			out = append(out, a.Name+"/"+a.Hash)
		}
		return out
	}
	if !slices.Equal(names(step1), names(step2)) || step1.Nginx.Hash != step2.Nginx.Hash {
		t.Fatalf("a weight change changed a container: %v vs %v", names(step1), names(step2))
	}
	plan := Compute(desiredOf(step2, "r2"), serving(step1, "r1"))
	var kinds []OpKind
	for _, op := range plan.Ops {
		kinds = append(kinds, op.Kind)
	}
	if !slices.Equal(kinds, []OpKind{OpReloadNginx}) {
		t.Errorf("plan from step 1 to step 2 = %v, want only %s\n%s", kinds, OpReloadNginx, plan)
	}
	if !plan.Gated() {
		t.Errorf("more traffic to the canary must pass the gate:\n%s", plan)
	}
	// Back to all-stable (an abort) withdraws traffic: never gated.
	back := stack.FromManifest(&m, stack.Options{NoCanary: true})
	if p := Compute(desiredOf(back, "r0"), serving(step2, "r2")); p.Gated() {
		t.Errorf("withdrawing the canary was gated:\n%s", p)
	}
}
