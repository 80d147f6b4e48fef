package controller

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets/kubernetes"
)

const kubeCanary = "  canary: {image: app:2, weight: 20}"

func TestKubeDeployConverges(t *testing.T) {
	h, fk := kubeHarness(t, fakeManifest("app:1", 2, kubeCanary))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	if got := fk.weights("demo"); got["demo-stable"] != 80 || got["demo-canary"] != 20 {
		t.Fatalf("route weights %v, want stable 80 canary 20", got)
	}
	if ev := h.events(); count(ev, journal.EventDeploySucceeded) != 1 {
		t.Fatalf("events %v: want one deploy_succeeded", ev)
	}
}

// A promotion whose route already serves the new stable is committed;
// deleting the canary failing after that is a cleanup failure, never
// promote_failed, and the promotion is not undone.
func TestKubePromotionCommitsWhenTheRouteServes(t *testing.T) {
	h, fk := kubeHarness(t, fakeManifest("app:1", 2, kubeCanary))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	fk.failDelete["Deployment/demo-canary"] = errBoom
	if err := promoteTxn(h); err != nil {
		t.Fatalf("promote: %v", err)
	}
	ev := h.events()
	if count(ev, journal.EventPromoted) != 1 || count(ev, journal.EventPromoteFailed) != 0 {
		t.Fatalf("events %v: want promoted once, no promote_failed", ev)
	}
	if p := h.state().Promoted; p == nil || p.Image != "app:2" {
		t.Fatalf("state %+v: want app:2 promoted", h.state())
	}
	// The next reconcile finishes the cleanup; the promotion stays.
	delete(fk.failDelete, "Deployment/demo-canary")
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if fk.has("Deployment/demo-canary") || fk.image("demo-stable") != "app:2" {
		t.Fatalf("after cleanup: canary left %v, stable image %s", fk.has("Deployment/demo-canary"), fk.image("demo-stable"))
	}
	if w := fk.weights("demo"); w["demo-stable"] != 100 {
		t.Fatalf("route %v: want stable 100", w)
	}
}

// A daemon that died after the route switched, before the canary was
// deleted, settles the promotion as taken effect at restart.
func TestKubeInterruptedPromotionSettlesFromTheRoute(t *testing.T) {
	h, fk := kubeHarness(t, fakeManifest("app:1", 2, kubeCanary))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	// The promotion's last op fails as a crash would leave it: route
	// switched, canary still there, the transition pending.
	fk.failDelete["Deployment/demo-canary"] = errBoom
	h.d.mu.Lock()
	h.d.state.Pending = &Transition{ID: "t1", Kind: kindPromote, Started: time.Now().UTC(),
		Promoted: &Promotion{ManifestStable: "app:1", Image: "app:2", At: time.Now().UTC()}}
	next := h.d.state.with(h.d.state.Pending)
	h.d.mu.Unlock()
	ch, err := h.d.target.Change(context.Background(), h.d.readManifest(), next)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.d.target.Apply(context.Background(), ch, targets.Hooks{Gate: func(ctx context.Context) reconcilerDecision { return allow() }, Wait: true}); err == nil {
		t.Fatal("apply: want the canary's deletion to fail")
	}
	if err := h.d.resolvePending(context.Background(), h.d.readManifest()); err != nil {
		t.Fatal(err)
	}
	ev := h.events()
	if count(ev, journal.EventPromoted) != 1 || count(ev, journal.EventTransitionAborted) != 0 {
		t.Fatalf("events %v: want the interrupted promotion committed once", ev)
	}
}

// After a promotion that did not roll out, restoring what was serving is
// never gated: a cluster the policy denies changes on still gets its
// canary back to its size. The stable Deployment was never touched: the
// promotion's first stage scales the canary, and it never became
// available.
func TestKubeRestoringIsNotGated(t *testing.T) {
	h, fk := kubeHarness(t, fakeManifest("app:1", 2, kubeCanary))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	fk.stall["demo-canary"] = true
	err := promoteTxn(h)
	if err == nil || !strings.Contains(err.Error(), "did not take effect") {
		t.Fatalf("promote: %v, want it not to take effect", err)
	}
	if fk.image("demo-stable") != "app:1" || fk.replicas("demo-canary") != 2 {
		t.Fatalf("stable image %s canary replicas %d: want the stable untouched, the stalled canary scaled to 2", fk.image("demo-stable"), fk.replicas("demo-canary"))
	}
	delete(fk.stall, "demo-canary")
	fk.nodeDown = true // the cluster policy now denies every gated change
	if err := h.reconcile(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if fk.image("demo-stable") != "app:1" || fk.replicas("demo-canary") != 1 {
		t.Fatalf("stable %s canary replicas %d after the restore, want app:1 and 1 (restoring must not be gated)", fk.image("demo-stable"), fk.replicas("demo-canary"))
	}
	if ev := h.events(); count(ev, journal.EventPromoteFailed) != 1 {
		t.Fatalf("events %v: want one promote_failed", ev)
	}
}

// Raising the canary's weight sends it more traffic: gated, as on Docker.
func TestKubeRaisingCanaryWeightIsGated(t *testing.T) {
	h, fk := kubeHarness(t, fakeManifest("app:1", 2, kubeCanary))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	fk.nodeDown = true
	h.write(fakeManifest("app:1", 2, "  canary: {image: app:2, weight: 50}"))
	err := h.deploy()
	if err == nil || !strings.Contains(err.Error(), "DENIED") && !strings.Contains(strings.ToLower(err.Error()), "denied") && !strings.Contains(err.Error(), "Ready") {
		t.Logf("deploy: %v", err)
	}
	if w := fk.weights("demo"); w["demo-canary"] != 20 {
		t.Fatalf("route %v: raising the canary's weight went through a denying policy", w)
	}
	// Lowering it is not gated.
	h.write(fakeManifest("app:1", 2, "  canary: {image: app:2, weight: 10}"))
	if err := h.deploy(); err != nil {
		t.Fatalf("lowering the weight: %v", err)
	}
	if w := fk.weights("demo"); w["demo-canary"] != 10 {
		t.Fatalf("route %v: want canary 10", w)
	}
}

// drift_reverted is journaled for a revert that ran, not for one after
// the op that failed.
func TestKubeDriftRevertedOnlyForOpsThatRan(t *testing.T) {
	h, fk := kubeHarness(t, fakeManifest("app:1", 2, kubeCanary))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	fk.drift("demo-canary", "evil:1")
	fk.drift("demo-stable", "evil:1")
	fk.failApply["Deployment/demo-canary"] = errBoom
	fk.failApply["Deployment/demo-stable"] = errBoom
	_ = h.reconcile()
	if n := count(h.events(), kubernetes.EventDriftReverted); n != 0 {
		t.Fatalf("%d drift_reverted journaled for reverts that never ran", n)
	}
	delete(fk.failApply, "Deployment/demo-stable")
	_ = h.reconcile()
	delete(fk.failApply, "Deployment/demo-canary")
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if n := count(h.events(), kubernetes.EventDriftReverted); n != 2 {
		t.Fatalf("%d drift_reverted, want 2 (one per revert that ran)", n)
	}
}

// A deploy whose rollout passes its progress deadline is journaled
// deploy_failed once.
func TestKubeDeployFailedJournaledOnce(t *testing.T) {
	h, fk := kubeHarness(t, fakeManifest("app:1", 2, kubeCanary))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	fk.stall["demo-stable"] = true
	h.write(fakeManifest("app:3", 2, kubeCanary))
	if err := h.deploy(); err == nil {
		t.Fatal("deploy: want the stalled rollout to fail it")
	}
	_ = h.reconcile() // the loop's retry sees the same failed rollout
	if n := count(h.events(), journal.EventDeployFailed); n != 1 {
		t.Fatalf("events %v: deploy_failed %d times, want once", h.events(), n)
	}
}

// A deploy waits for its rollout without holding the run lock: abort and
// rollback do not wait for it.
func TestKubeDeployDoesNotHoldTheRunLock(t *testing.T) {
	h, fk := kubeHarness(t, fakeManifest("app:1", 2, kubeCanary))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	fk.slow["demo-stable"] = true
	h.write(fakeManifest("app:3", 2, kubeCanary))
	done := make(chan error, 1)
	go func() { done <- h.deploy() }()
	deadline := time.Now().Add(5 * time.Second)
	for fk.image("demo-stable") != "app:3" {
		if time.Now().After(deadline) {
			t.Fatal("the deploy never applied app:3")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The wait takes the lock only for each look; it is free between.
	free := false
	for range 200 {
		if h.d.runMu.TryLock() {
			h.d.runMu.Unlock()
			free = true
			break
		}
		time.Sleep(time.Millisecond)
	}
	if !free {
		t.Fatal("the deploy holds the run lock while it waits for its rollout: abort and rollback would wait")
	}
	select {
	case <-done:
		t.Fatal("the deploy finished before its rollout did")
	default:
	}
	delete(fk.slow, "demo-stable")
	fk.mu.Lock()
	delete(fk.objs, "Deployment/demo-stable") // recreated as rolled out by the next apply
	fk.mu.Unlock()
	if err := <-done; err != nil {
		t.Fatalf("deploy: %v", err)
	}
}

// down forgets the rollout it was awaiting: no outcome is journaled for
// what it removed.
func TestKubeDownClearsRolloutTracking(t *testing.T) {
	h, fk := kubeHarness(t, fakeManifest("app:1", 2, kubeCanary))
	fk.slow["demo-stable"] = true
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if h.d.rollout == nil {
		t.Fatal("the applied change is not awaited")
	}
	if err := h.d.down(context.Background(), "alice", false, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if h.d.rollout != nil {
		t.Fatal("down left the rollout tracked")
	}
}

// The manifest-directory guard holds on Kubernetes: nothing is applied
// while the manifest's directory is gone.
func TestKubeNothingChangesWhileTheManifestDirIsGone(t *testing.T) {
	h, fk := kubeHarness(t, fakeManifest("app:1", 2, kubeCanary))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	fk.mu.Lock()
	delete(fk.objs, "Deployment/demo-canary") // something to restore
	fk.ops = nil
	fk.mu.Unlock()
	if err := os.RemoveAll(h.dir); err != nil {
		t.Fatal(err)
	}
	if err := h.reconcile(); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("reconcile: %v, want the missing directory refused", err)
	}
	if err := h.d.rollbackWith(context.Background(), "", "", nil, func(string) {}); err == nil {
		t.Fatal("rollback went ahead without the manifest directory")
	}
	if len(fk.ops) != 0 {
		t.Fatalf("ops ran while the manifest directory was gone: %v", fk.ops)
	}
}

// status and diff reuse the plan while nothing changed: no dry run per
// object per call.
func TestKubeStatusAndDiffDoNotDryRunEachCall(t *testing.T) {
	h, fk := kubeHarness(t, fakeManifest("app:1", 2, kubeCanary))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	_ = h.d.Status(context.Background())
	fk.mu.Lock()
	before := fk.dryRuns
	fk.mu.Unlock()
	for range 5 {
		_ = h.d.Status(context.Background())
		if _, err := h.d.target.Change(context.Background(), h.d.readManifest(), h.state()); err != nil {
			t.Fatal(err)
		}
	}
	fk.mu.Lock()
	after := fk.dryRuns
	fk.mu.Unlock()
	if after != before {
		t.Fatalf("%d dry runs for 5 status and 5 diff calls on an unchanged namespace, want 0", after-before)
	}
}

// promoteTxn runs the promotion transaction of the serving canary (canary
// safety, which reads Prometheus, is not what these tests are about).
func promoteTxn(h *harness) error {
	h.d.runMu.Lock()
	defer h.d.runMu.Unlock()
	m := h.d.readManifest()
	t := &Transition{ID: newID(), Kind: kindPromote, Started: time.Now().UTC(), User: "alice",
		Promoted: &Promotion{ManifestStable: m.Services.Image, Image: m.Services.Canary.Image, At: time.Now().UTC()}}
	return h.d.transact(context.Background(), m, t, func(string) {})
}

// On Kubernetes, through the shared analysis walk and judged on
// Prometheus's figures, a healthy stepped canary walks 10 → 25 → 50 and
// promotes itself; a failing one is aborted by itself.
func TestKubeStepsWalkToPromotion(t *testing.T) {
	m, _ := withProm(t, fakeManifest("app:1", 2, steppedCanary("app:2", 2, true)))
	h, fk := kubeHarness(t, m)
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	h.analyze(time.Now())
	if r := h.rollout(); r == nil || r.StepStarted.IsZero() || r.Step != 0 {
		t.Fatalf("the first step did not start: %+v; events %v", r, h.events())
	}
	for i, want := range []int{25, 50} {
		if w := fk.weights("demo")["demo-canary"]; w != []int{10, 25}[i] {
			t.Fatalf("step %d: canary weight %d", i+1, w)
		}
		h.analyze(h.after(time.Second))
		h.analyze(h.after(2 * time.Second))
		if w := fk.weights("demo")["demo-canary"]; w != want {
			t.Fatalf("step %d: canary weight %d, want %d; events %v", i+2, w, want, h.events())
		}
		if s := h.status(); s.Rollout == nil || s.Rollout.Weight != want {
			t.Fatalf("status rollout %+v", s.Rollout)
		}
	}
	h.analyze(h.after(time.Second))
	h.analyze(h.after(2 * time.Second))
	if fk.image("demo-stable") != "app:2" || fk.has("Deployment/demo-canary") || fk.weights("demo")["demo-stable"] != 100 {
		t.Fatalf("after the last step: stable %s, canary left %v, route %v; events %v", fk.image("demo-stable"), fk.has("Deployment/demo-canary"), fk.weights("demo"), h.events())
	}
	ev := h.events()
	if count(ev, journal.EventCanaryStep) != 3 || count(ev, journal.EventPromoted) != 1 {
		t.Fatalf("events %v: want 3 canary steps and one promotion", ev)
	}
}

func TestKubeFailingCanaryAbortsItself(t *testing.T) {
	m, prom := withProm(t, fakeManifest("app:1", 2, steppedCanary("app:2", 2, true)))
	h, fk := kubeHarness(t, m)
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	h.analyze(time.Now())
	prom.set(0.5) // half the canary's requests fail
	for i := 1; i <= 3 && fk.has("Deployment/demo-canary"); i++ {
		h.analyze(h.after(time.Duration(i) * time.Second))
	}
	if fk.has("Deployment/demo-canary") || fk.weights("demo")["demo-stable"] != 100 {
		t.Fatalf("failing canary not aborted: route %v; events %v", fk.weights("demo"), h.events())
	}
	ev := h.events()
	if count(ev, journal.EventAborted) != 1 || count(ev, journal.EventPromoted) != 0 {
		t.Fatalf("events %v: want one abort, no promotion", ev)
	}
	if fk.image("demo-stable") != "app:1" {
		t.Fatalf("stable image %s, want app:1", fk.image("demo-stable"))
	}
}

// The relative verdict on Kubernetes: a canary failing 3% of requests
// while stable fails none is aborted, though 3% is under the absolute
// limit; without policy.relative the same canary walks on.
func TestKubeRelativeVerdictFailsCanary(t *testing.T) {
	for _, relative := range []bool{true, false} {
		extra := "  max_error_rate: 0.05\n"
		if relative {
			extra += "  relative: {confidence: 0.95, min_requests: 100}\n"
		}
		m, prom := withProm(t, fakeManifest("app:1", 2, steppedCanary("app:2", 1, true))+extra)
		h, fk := kubeHarness(t, m)
		if err := h.deploy(); err != nil {
			t.Fatal(err)
		}
		h.analyze(time.Now())
		prom.set(0.03)
		h.analyze(h.after(time.Second))
		aborted := count(h.events(), journal.EventAborted) == 1
		if aborted != relative || fk.has("Deployment/demo-canary") == relative {
			t.Fatalf("relative=%v: aborted=%v canary left=%v; events %v", relative, aborted, fk.has("Deployment/demo-canary"), h.events())
		}
	}
}
