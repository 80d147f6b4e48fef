package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets/docker"
)

// Scaling up changes what runs: on a busy host it is denied before any
// mutation. (It used to be treated like a heal and never gated.)
func TestScaleUpIsGated(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	h.setLoad(busy)
	h.write(fakeManifest("app:1", 5, ""))
	h.fe.ResetCalls()
	err := h.reconcile()
	var denied *reconciler.DeniedError
	if !errors.As(err, &denied) {
		t.Fatalf("scale 1 → 5 on a busy host: err = %v, want a denial", err)
	}
	if m := h.fe.Mutations(); len(m) != 0 {
		t.Errorf("a denied plan mutated the engine: %v", m)
	}
	if got := h.running(); got != "stable:app:1×1" {
		t.Errorf("running %s, want the 1 replica untouched", got)
	}
	if s := h.status(); s.Converged || len(s.Pending) == 0 || s.Denial == nil {
		t.Errorf("status after the denial: converged=%v pending=%v denial=%v", s.Converged, s.Pending, s.Denial)
	}
	h.setLoad(idle)
	h.mustConverge()
	if got := h.running(); got != "stable:app:1×5" {
		t.Errorf("running %s after the host settled, want 5 replicas", got)
	}
}

// Images are pulled only after the gate allowed the plan: a denied change
// never fills the disk the gate protects.
func TestPullRunsAfterTheGate(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	h.fe.AddImage() // no-op; app:9 is pullable but absent
	h.fe.SetPullable("app:9", true)
	h.setLoad(busy)
	h.write(fakeManifest("app:9", 1, ""))
	h.fe.ResetCalls()
	if err := h.reconcile(); err == nil {
		t.Fatal("image change on a busy host was not denied")
	}
	if pulls := h.fe.CallsTo(fake.OpPullImage); len(pulls) != 0 {
		t.Errorf("pulled before the gate allowed: %v", pulls)
	}
	// diff shows the pull as an operation of the plan.
	ch, err := h.d.target.Change(context.Background(), h.d.manifestNow(), h.state())
	if err != nil {
		t.Fatal(err)
	}
	if plan := strings.Join(ch.Lines(), "\n"); !strings.Contains(plan, "pull-image") {
		t.Errorf("plan lacks the pull:\n%s", plan)
	}
	h.setLoad(idle)
	h.mustConverge()
	if !h.fe.HasImage("app:9") || h.running() != "stable:app:9×1" {
		t.Errorf("after the host settled: image pulled %v, running %s", h.fe.HasImage("app:9"), h.running())
	}
}

// Restoring what was deployed is never gated: on a busy host a removed
// nginx, a removed and a crashed app container all come back.
func TestHealIsNeverGated(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	h.mustConverge()
	h.setLoad(busy)
	apps := fake.Names(h.fe.ByRole(stack.RoleApp))
	if err := h.fe.Remove(context.Background(), "demo-nginx", 0); err != nil {
		t.Fatal(err)
	}
	if err := h.fe.Remove(context.Background(), apps[0], 0); err != nil {
		t.Fatal(err)
	}
	if err := h.fe.Kill(apps[1]); err != nil {
		t.Fatal(err)
	}
	before := len(h.records("decision"))
	if err := h.reconcile(); err != nil {
		t.Fatalf("heal on a busy host: %v", err)
	}
	if got := h.running(); got != "stable:app:1×2" {
		t.Errorf("running %s, want both replicas back", got)
	}
	if h.fe.Loaded("demo-nginx") == nil {
		t.Error("nginx not restored")
	}
	if n := len(h.records("decision")) - before; n != 0 {
		t.Errorf("a heal asked the gate %d time(s)", n)
	}
	if s := h.status(); !s.Converged || s.Mode != stack.TrackStable {
		t.Errorf("after heal: converged=%v mode=%q pending=%v", s.Converged, s.Mode, s.Pending)
	}
}

// Status reports what runs: a canary the manifest declares but the gate
// keeps from starting is not "canary mode".
func TestStatusReportsWhatRunsNotTheManifest(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	h.setLoad(busy)
	h.write(fakeManifest("app:1", 1, "  canary: {image: app:2, weight: 20}"))
	if err := h.reconcile(); err == nil {
		t.Fatal("canary start on a busy host was not denied")
	}
	s := h.status()
	if s.Mode != stack.TrackStable || s.CanaryImage != "" || s.CanaryWeight != 0 || s.StableImage != "app:1" {
		t.Errorf("status mode=%q stable=%q canary=%q@%d, want stable app:1 and no canary", s.Mode, s.StableImage, s.CanaryImage, s.CanaryWeight)
	}
	if s.Converged || !strings.Contains(strings.Join(s.Pending, "\n"), "canary app:2 declared") {
		t.Errorf("status should be converging with the canary start pending: converged=%v pending=%v", s.Converged, s.Pending)
	}
	h.setLoad(idle)
	h.mustConverge()
	s = h.status()
	if s.Mode != stack.TrackCanary || s.CanaryImage != "app:2" || s.CanaryWeight != 20 {
		t.Errorf("once running: mode=%q canary=%q@%d", s.Mode, s.CanaryImage, s.CanaryWeight)
	}
	if n := count(h.events(), "mode_switched"); n != 1 {
		t.Errorf("mode_switched journaled %d times, want once", n)
	}
}

// A reload nginx rejects after the new file was renamed into place is
// reported, retried and never forgotten: the loaded revision, read back
// from nginx, shows the old config still serving.
func TestFailedReloadIsRetriedNotForgotten(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, "  canary: {image: app:2, weight: 20}"))
	h.mustConverge()
	rev20 := h.status().Revision
	h.fe.FailReload(errors.New("bind() to 0.0.0.0:8080 failed"))
	h.write(fakeManifest("app:1", 1, "  canary: {image: app:2, weight: 50}"))
	if err := h.reconcile(); err == nil {
		t.Fatal("reconcile with a failing reload succeeded")
	}
	s := h.status()
	if s.Converged || s.Revision != rev20 || s.CanaryWeight != 20 {
		t.Errorf("after the failed reload: converged=%v revision=%s (was %s) weight=%d, want the old config reported", s.Converged, s.Revision, rev20, s.CanaryWeight)
	}
	if !strings.Contains(strings.Join(s.Pending, "\n"), "reload-nginx") {
		t.Errorf("pending lacks the reload: %v", s.Pending)
	}
	if err := h.reconcile(); err == nil {
		t.Fatal("the retry succeeded though nginx still rejects reloads")
	}
	h.fe.FailReload(nil)
	h.mustConverge()
	if s := h.status(); s.CanaryWeight != 50 || s.Revision == rev20 {
		t.Errorf("after the fault cleared: weight %d revision %s", s.CanaryWeight, s.Revision)
	}
}

// A daemon that dies between renaming the new nginx.conf into place and
// reloading nginx: the next daemon reads the loaded revision from nginx,
// sees it is old and reloads.
func TestCrashBetweenRenameAndReload(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, "  canary: {image: app:2, weight: 20}"))
	h.mustConverge()
	ctx, crash := context.WithCancel(context.Background())
	h.fe.BeforeCall(func(op, target string) {
		if op == fake.OpSignal { // nginx -t passed, the file is in place; the reload is next
			crash()
		}
	})
	h.write(fakeManifest("app:1", 1, "  canary: {image: app:2, weight: 50}"))
	if err := h.d.reconcileOnce(ctx); err == nil {
		t.Fatal("the crashed reconcile succeeded")
	}
	h.fe.BeforeCall(nil)
	h.d.jr.Close()

	h.d = h.newDaemon()
	if s := h.status(); s.CanaryWeight != 20 || s.Converged {
		t.Errorf("restarted daemon reports weight %d converged=%v; nginx still serves 20", s.CanaryWeight, s.Converged)
	}
	h.mustConverge()
	if s := h.status(); s.CanaryWeight != 50 {
		t.Errorf("after resuming: weight %d, want 50", s.CanaryWeight)
	}
}

// An nginx image change keeps the old nginx serving until the new image
// has checked the config; a bad image leaves the old front door up.
func TestNginxImageChangeChecksBeforeStoppingTheOld(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	h.fe.AddImage("nginx:bad")
	h.fe.ExitOnStart("nginx:bad")
	h.write(strings.Replace(fakeManifest("app:1", 1, ""), "image: nginx:latest", "image: nginx:bad", 1))
	if err := h.reconcile(); err == nil {
		t.Fatal("nginx image change to a bad image succeeded")
	}
	c, ok := h.fe.Get("demo-nginx")
	if !ok || !c.Running() || c.Image != "nginx:latest" || h.fe.Loaded("demo-nginx") == nil {
		t.Fatalf("old nginx not serving after the failed check: %+v", c)
	}
	h.fe.AddImage("nginx:next")
	h.write(strings.Replace(fakeManifest("app:1", 1, ""), "image: nginx:latest", "image: nginx:next", 1))
	h.mustConverge()
	if c, _ := h.fe.Get("demo-nginx"); c.Image != "nginx:next" {
		t.Errorf("nginx image %s, want nginx:next", c.Image)
	}
}

// A hung engine is reported in status within the call timeout; the loop
// does not wedge.
func TestHungEngineIsReported(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	h.d.eng = withTimeouts(h.fe, Timeouts{Call: 100 * time.Millisecond})
	h.d.rec.Engine = h.d.eng
	h.d.target = docker.New(h.d.dockerDeps()) // the target's own calls timed too
	h.fe.Hang(fake.OpListContainers)
	start := time.Now()
	err := h.reconcile()
	if err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("reconcile against a hung engine: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("reconcile took %s against a 100ms call timeout", took)
	}
	if s := h.status(); !strings.Contains(s.EngineError, "did not answer") {
		t.Errorf("status engine error %q", s.EngineError)
	}
	h.fe.Clear()
	h.mustConverge()
	if s := h.status(); s.EngineError != "" {
		t.Errorf("engine error not cleared: %q", s.EngineError)
	}
}

// While a change is denied, what was applied is still restored: a canary
// waiting for a busy host to settle does not keep a crashed replica or a
// removed nginx down.
func TestHealWhileAChangeIsDenied(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	h.mustConverge()
	h.setLoad(busy)
	h.write(fakeManifest("app:1", 2, withCanary))
	apps := fake.Names(h.fe.ByRole(stack.RoleApp))
	if err := h.fe.Remove(context.Background(), "demo-nginx", 0); err != nil {
		t.Fatal(err)
	}
	if err := h.fe.Kill(apps[0]); err != nil {
		t.Fatal(err)
	}
	var denied *reconciler.DeniedError
	if err := h.reconcile(); !errors.As(err, &denied) {
		t.Fatalf("canary on a busy host: %v, want a denial", err)
	}
	if got := h.running(); got != "stable:app:1×2" {
		t.Errorf("running %s while the canary is denied, want both stable replicas restored", got)
	}
	if h.fe.Loaded("demo-nginx") == nil {
		t.Error("nginx not restored while the canary is denied")
	}
	if s := h.status(); s.Mode != stack.TrackStable || s.CanaryImage != "" || s.Converged {
		t.Errorf("status: mode %q canary %q converged %v", s.Mode, s.CanaryImage, s.Converged)
	}
	// The restore recorded nothing new: the canary is still a gated change.
	h.fe.ResetCalls()
	if err := h.reconcile(); !errors.As(err, &denied) {
		t.Fatalf("second reconcile: %v, want the canary still denied", err)
	}
	h.setLoad(idle)
	h.mustConverge()
	if got := h.running(); got != "stable:app:1×2 canary:app:2×1" {
		t.Errorf("after the host settled: %s", got)
	}
}

// The same while an image change is denied: the restored replica is the
// applied one (app:1), not the denied change's. Planned against the new
// manifest alone, the crashed app:1 replica is "no longer wanted" and its
// app:2 successor is gated, so the stack stayed a replica short for as
// long as the host was busy.
func TestHealRestoresTheAppliedImageWhileAnImageChangeIsDenied(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	h.mustConverge()
	h.setLoad(busy)
	h.write(fakeManifest("app:2", 2, ""))
	apps := fake.Names(h.fe.ByRole(stack.RoleApp))
	if err := h.fe.Kill(apps[0]); err != nil {
		t.Fatal(err)
	}
	var denied *reconciler.DeniedError
	if err := h.reconcile(); !errors.As(err, &denied) {
		t.Fatalf("image change on a busy host: %v, want a denial", err)
	}
	if got := h.running(); got != "stable:app:1×2" {
		t.Errorf("running %s while the image change is denied, want both app:1 replicas restored", got)
	}
	h.setLoad(idle)
	h.mustConverge()
	if got := h.running(); got != "stable:app:2×2" {
		t.Errorf("after the host settled: %s", got)
	}
}

// Retries failing at the same operation are one failure: the first is
// journaled at once, the rest counted into one summary when the failure
// ends, though each retry's message differs (nginx's message carries its
// timestamp and pid).
func TestRepeatedFailuresAreCoalesced(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, "  canary: {image: app:2, weight: 20}"))
	h.mustConverge()
	h.write(fakeManifest("app:1", 1, "  canary: {image: app:2, weight: 50}"))
	for i := range 5 {
		h.fe.FailReload(fmt.Errorf("2026/12/02 00:41:%02d [emerg] %d#%d: bind() failed", i, 10+i, 10+i))
		if err := h.reconcile(); err == nil {
			t.Fatal("reconcile with a failing reload succeeded")
		}
	}
	failed := func() []journal.Record {
		var out []journal.Record
		for _, r := range h.records(journal.TypeEvent) {
			if r.Event == journal.EventDeployFailed {
				out = append(out, r)
			}
		}
		return out
	}
	if got := failed(); len(got) != 1 || !slices.Equal(got[0].Codes, []string{"reload-nginx demo-nginx"}) {
		t.Fatalf("deploy_failed records during 5 failing retries: %+v, want 1 naming the operation", got)
	}
	h.fe.FailReload(nil)
	h.mustConverge()
	got := failed()
	if len(got) != 2 || got[1].Count != 5 || !strings.Contains(got[1].Message, "00:41:04") {
		t.Errorf("after the failure ended: %+v, want the first record and a summary of 5 ending with the last message", got)
	}
}

// An nginx that crashed while a change is denied is restored too: the
// heal removes the dead container before starting its replacement under
// the same name and port (the start alone failed on the name).
func TestCrashedNginxIsHealedWhileAChangeIsDenied(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	h.mustConverge()
	h.setLoad(busy)
	h.write(fakeManifest("app:1", 2, withCanary))
	if err := h.fe.Kill("demo-nginx"); err != nil {
		t.Fatal(err)
	}
	var denied *reconciler.DeniedError
	if err := h.reconcile(); !errors.As(err, &denied) {
		t.Fatalf("canary on a busy host: %v, want a denial", err)
	}
	if h.fe.Loaded("demo-nginx") == nil {
		t.Errorf("nginx not restored while the canary is denied: %v", fake.Names(h.fe.Snapshot()))
	}
}
