package controller

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

const withCanary = "  canary: {image: app:2, weight: 20}"

// canaryHarness is a converged stack with a healthy canary and enough
// fresh figures for the canary-safety policy to allow a promotion.
func canaryHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, fakeManifest("app:1", 2, withCanary))
	h.mustConverge()
	h.scrape(4)
	return h
}

func (h *harness) promote() error {
	return h.d.promote(context.Background(), "alice", "", func(string) {})
}

func (h *harness) rollback() error {
	return h.d.rollback(context.Background(), "alice", "", func(string) {})
}

// The seed's latch: canary safety allowed a promotion, the infrastructure
// policy then denied the change, and the promotion stayed recorded, so
// status said stable v2 while v1 served 80%, and it was applied later with
// no fresh decision and never journaled. Now the denial records nothing.
func TestPromotionDeniedByInfrastructureDoesNotLatch(t *testing.T) {
	h := canaryHarness(t)
	h.setLoad(busy)
	err := h.promote()
	var denied *reconciler.DeniedError
	if !errors.As(err, &denied) {
		t.Fatalf("promote on a busy host: err = %v, want an infrastructure denial", err)
	}
	if st := h.state(); st.Promoted != nil || st.Pending != nil {
		t.Fatalf("a denied promotion was recorded: %+v", st)
	}
	s := h.status()
	if s.Mode != stack.TrackCanary || s.StableImage != "app:1" || s.CanaryImage != "app:2" || s.CanaryWeight != 20 {
		t.Errorf("status after the denial: mode=%q stable=%q canary=%q@%d; want what runs: canary app:2 at 20%% over app:1",
			s.Mode, s.StableImage, s.CanaryImage, s.CanaryWeight)
	}
	// The host settles and the loop runs: nothing latent is applied.
	h.setLoad(idle)
	h.mustConverge()
	if got := h.running(); got != "stable:app:1×2 canary:app:2×1" {
		t.Errorf("after the host settled: running %s, want the canary still a canary", got)
	}
	ev := h.events()
	if n := count(ev, journal.EventPromoted); n != 0 {
		t.Errorf("promoted journaled %d times for a denied promotion", n)
	}
	// A fresh promotion, fresh decisions, and it takes effect once.
	h.scrape(2)
	if err := h.promote(); err != nil {
		t.Fatalf("promote on an idle host: %v", err)
	}
	if got := h.running(); got != "stable:app:2×2" {
		t.Errorf("after promotion: running %s, want app:2 as stable", got)
	}
	s = h.status()
	if s.Mode != stack.TrackStable || s.StableImage != "app:2" || s.CanaryImage != "" || !s.Converged {
		t.Errorf("status after promotion: mode=%q stable=%q canary=%q converged=%v", s.Mode, s.StableImage, s.CanaryImage, s.Converged)
	}
	ev = h.events()
	if n := count(ev, journal.EventPromoted); n != 1 {
		t.Errorf("promoted journaled %d times, want once: %v", n, ev)
	}
	if n := count(ev, journal.EventModeSwitched); n != 2 {
		t.Errorf("mode_switched journaled %d times, want 2 (to canary, to stable): %v", n, ev)
	}
	if st := h.state(); st.Promoted == nil || st.Promoted.Image != "app:2" || st.Pending != nil {
		t.Errorf("state after promotion: %+v", st)
	}
	// Converging again changes nothing and journals nothing more.
	h.mustConverge()
	if n := count(h.events(), journal.EventPromoted); n != 1 {
		t.Errorf("promoted journaled %d times after a resync", n)
	}
}

// A canary whose scrapes fail cannot be promoted on the figures it had
// before: missing data denies, and the reason names the target.
func TestPromotionDeniedOnMissingData(t *testing.T) {
	h := canaryHarness(t)
	h.app.set(func(a *appMetrics) { a.fail[stack.TrackCanary] = errors.New("context deadline exceeded") })
	h.scrape(1)
	err := h.promote()
	if err == nil || !strings.Contains(err.Error(), "scrape failed") {
		t.Fatalf("promote with a hung canary: %v", err)
	}
	if n := count(h.events(), journal.EventScrapeFailed); n != 1 {
		t.Errorf("scrape_failed journaled %d times, want once", n)
	}
	h.scrape(3)
	if n := count(h.events(), journal.EventScrapeFailed); n != 1 {
		t.Errorf("scrape_failed journaled %d times after more failures, want once", n)
	}
	if s := h.status(); len(s.Tracks) != 2 || s.Tracks[1].Outcome != "missing_data" || !strings.Contains(s.Tracks[1].Reason, "scrape failed") {
		t.Errorf("status tracks: %+v", s.Tracks)
	}
}

// Windows are per revision: a new canary image starts from no figures, so
// it cannot be promoted on the previous canary's.
func TestPromotionNeedsTheRevisionsOwnFigures(t *testing.T) {
	h := canaryHarness(t)
	h.write(fakeManifest("app:1", 2, "  canary: {image: app:3, weight: 20}"))
	h.mustConverge()
	err := h.promote()
	if err == nil {
		t.Fatal("app:3 was promoted on app:2's figures")
	}
	if !strings.Contains(err.Error(), "canary-safety") {
		t.Errorf("err = %v, want a canary-safety denial", err)
	}
	h.scrape(4)
	if err := h.promote(); err != nil {
		t.Fatalf("promote with app:3's own figures: %v", err)
	}
}

// A daemon killed in the middle of a promotion leaves the old state or the
// new one, never a third, and journals the promotion at most once.
func TestPromotionInterruptedSettlesOnRestart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		op       string // die before the nth call of op
		nth      int
		promoted bool // did it take effect before the crash?
	}{
		{"before the new stable starts", fake.OpRun, 1, false},
		{"between the new stable replicas", fake.OpRun, 2, false},
		{"before the reload", fake.OpSignal, 1, false},
		{"after the reload, before the old ones go", fake.OpRemove, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := canaryHarness(t)
			ctx, crash := context.WithCancel(context.Background())
			var calls atomic.Int32 // starts run in parallel
			h.fe.BeforeCall(func(op, target string) {
				if op == tc.op && calls.Add(1) == int32(tc.nth) {
					crash()
				}
			})
			_ = h.d.promote(ctx, "alice", "", func(string) {})
			h.fe.BeforeCall(nil)
			h.d.jr.Close()

			h.d = h.newDaemon()
			h.mustConverge()
			s := h.status()
			want := "stable:app:1×2 canary:app:2×1"
			wantStable := "app:1"
			if tc.promoted {
				want, wantStable = "stable:app:2×2", "app:2"
			}
			if got := h.running(); got != want {
				t.Errorf("after restart: running %s, want %s", got, want)
			}
			if s.StableImage != wantStable || !s.Converged {
				t.Errorf("status: stable %q converged %v, want %q", s.StableImage, s.Converged, wantStable)
			}
			if n := count(h.events(), journal.EventPromoted); (n == 1) != tc.promoted || n > 1 {
				t.Errorf("promoted journaled %d times (took effect: %v)", n, tc.promoted)
			}
			if st := h.state(); st.Pending != nil || (st.Promoted != nil) != tc.promoted {
				t.Errorf("state after settling: %+v", st)
			}
		})
	}
}

// Rollback only withdraws traffic: a busy host does not keep a bad canary
// in place. It takes effect, and is journaled, once.
func TestRollbackIsNotGatedAndJournaledOnce(t *testing.T) {
	h := canaryHarness(t)
	h.setLoad(busy)
	if err := h.rollback(); err != nil {
		t.Fatalf("rollback on a busy host: %v", err)
	}
	if got := h.running(); got != "stable:app:1×2" {
		t.Errorf("after rollback: running %s", got)
	}
	h.mustConverge()
	if n := count(h.events(), journal.EventRolledBack); n != 1 {
		t.Errorf("rolled_back journaled %d times, want once", n)
	}
	if s := h.status(); s.Mode != stack.TrackStable || s.CanaryImage != "" {
		t.Errorf("status after rollback: mode %q canary %q", s.Mode, s.CanaryImage)
	}
}

// down stays down: promote and rollback are refused, resyncs bring nothing
// back, and only deploy ends it.
func TestDownStaysDownUntilDeploy(t *testing.T) {
	h := canaryHarness(t)
	if err := h.d.down(context.Background(), "alice", false, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if all := h.fe.Snapshot(); len(all) != 0 {
		t.Fatalf("after down: %v", fake.Names(all))
	}
	for name, op := range map[string]func() error{"promote": h.promote, "rollback": h.rollback} {
		if err := op(); !errors.Is(err, errDown) {
			t.Errorf("%s after down: %v, want it refused", name, err)
		}
	}
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if all := h.fe.Snapshot(); len(all) != 0 {
		t.Fatalf("a resync after down brought back %v", fake.Names(all))
	}
	if s := h.status(); !s.Down || s.Mode != "" {
		t.Errorf("status while down: down=%v mode=%q", s.Down, s.Mode)
	}
	// A rename is accepted while down.
	h.write(strings.Replace(fakeManifest("app:1", 2, withCanary), "project: demo", "project: demo2", 1))
	if m := h.d.readManifest(); m == nil || m.Project != "demo2" || len(h.d.manifestErrors()) != 0 {
		t.Fatalf("rename after down: %v %v", m, h.d.manifestErrors())
	}
	h.write(fakeManifest("app:1", 2, withCanary))
	if err := h.deploy(); err != nil {
		t.Fatalf("deploy after down: %v", err)
	}
	if got := h.running(); got != "stable:app:1×2 canary:app:2×1" {
		t.Errorf("after deploy: %s", got)
	}
}

// A project cannot be renamed while it is deployed (its containers would be
// orphaned).
func TestRenameRefusedWhileDeployed(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	h.write(strings.Replace(fakeManifest("app:1", 1, ""), "project: demo", "project: demo2", 1))
	if m := h.d.readManifest(); m.Project != "demo" || !strings.Contains(strings.Join(h.d.manifestErrors(), ";"), "swiftctl down") {
		t.Errorf("rename while deployed: project %q, errors %v", m.Project, h.d.manifestErrors())
	}
}

// The same, across a restart: the new daemon has no last good manifest to
// compare with, so the project comes from the applied record. Without it,
// the renamed project would be deployed beside the old one, orphaning it
// (and fighting it for nginx's port).
func TestRenameRefusedAfterRestart(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	h.d.jr.Close()
	h.write(strings.Replace(fakeManifest("app:1", 1, ""), "project: demo", "project: demo2", 1))
	h.d = h.newDaemon()
	if err := h.reconcile(); err != nil {
		t.Logf("reconcile: %v", err)
	}
	if errs := strings.Join(h.d.manifestErrors(), ";"); !strings.Contains(errs, `"demo"`) || !strings.Contains(errs, "swiftctl down") {
		t.Errorf("rename across a restart: manifest errors %q, want the rename refused", errs)
	}
	if all := fake.Names(h.fe.Snapshot()); len(all) != 2 || !strings.HasPrefix(all[0], "demo-") || strings.Contains(strings.Join(all, " "), "demo2") {
		t.Errorf("containers after a refused rename: %v, want demo's app and nginx only", all)
	}
	// Named back, it is the deployed project again.
	h.write(fakeManifest("app:1", 1, ""))
	h.mustConverge()
	if errs := h.d.manifestErrors(); len(errs) != 0 {
		t.Errorf("manifest errors after naming the project back: %v", errs)
	}
}

// A transition a dead daemon left pending (written by hand here, as a
// SIGKILL after the write-ahead leaves it) is settled at the next start from
// what nginx serves: not taken effect, so dropped and journaled once, and
// nothing of it applied.
func TestPendingLeftByADeadDaemonIsSettled(t *testing.T) {
	h := canaryHarness(t)
	m := h.d.manifestNow()
	tr := &Transition{ID: "deadbeef", Kind: kindPromote, Started: time.Now().UTC(), User: "alice",
		Promoted: &Promotion{ManifestStable: "app:1", Image: "app:2"}}
	next, err := h.d.target.Change(context.Background(), m, h.d.state.with(tr))
	if err != nil {
		t.Fatal(err)
	}
	tr.Revision = next.Revision()
	h.d.mu.Lock()
	h.d.state.Pending = tr
	if err := h.d.saveStateLocked(); err != nil {
		t.Fatal(err)
	}
	h.d.mu.Unlock()
	h.d.jr.Close()

	h.d = h.newDaemon()
	h.mustConverge()
	if got := h.running(); got != "stable:app:1×2 canary:app:2×1" {
		t.Errorf("after settling: running %s, want the old state", got)
	}
	if st := h.state(); st.Pending != nil || st.Promoted != nil {
		t.Errorf("state after settling: %+v", st)
	}
	ev := h.events()
	if count(ev, journal.EventTransitionAborted) != 1 || count(ev, journal.EventPromoted) != 0 {
		t.Errorf("journal after settling: %v", ev)
	}
	h.mustConverge()
	if n := count(h.events(), journal.EventTransitionAborted); n != 1 {
		t.Errorf("transition_aborted journaled %d times, want once", n)
	}
}

// A promotion record refines the manifest only until the manifest catches
// up. Once it names the promoted image, the record is spent: a later edit
// back to the old stable image is a deliberate rollback of stable and must
// run that image, not be overridden by the old promotion. Likewise a
// rollback suppresses its canary only until the manifest names another.
func TestSpentDecisionsNeverReapply(t *testing.T) {
	h := canaryHarness(t)
	if err := h.promote(); err != nil {
		t.Fatal(err)
	}
	h.write(fakeManifest("app:2", 2, "")) // the manifest catches up
	h.mustConverge()
	if st := h.state(); st.Promoted != nil {
		t.Errorf("promotion record kept after the manifest caught up: %+v", st.Promoted)
	}
	h.write(fakeManifest("app:1", 2, "")) // back to the old stable image, on purpose
	h.mustConverge()
	if got := h.running(); got != "stable:app:1×2" {
		t.Errorf("after editing stable back to app:1: running %s, want app:1 (the spent promotion reapplied)", got)
	}

	// Rollback: app:3 is dropped and stays dropped while named; once the
	// manifest names another canary the record is spent, and naming app:3
	// again later is a new decision that runs it.
	h.write(fakeManifest("app:1", 2, "  canary: {image: app:3, weight: 20}"))
	h.mustConverge()
	if err := h.rollback(); err != nil {
		t.Fatal(err)
	}
	h.mustConverge()
	if got := h.running(); got != "stable:app:1×2" {
		t.Fatalf("after rollback: running %s", got)
	}
	h.write(fakeManifest("app:1", 2, "  canary: {image: app:2, weight: 20}"))
	h.mustConverge()
	if st := h.state(); st.RolledBack != nil {
		t.Errorf("rollback record kept after the manifest named another canary: %+v", st.RolledBack)
	}
	h.write(fakeManifest("app:1", 2, "  canary: {image: app:3, weight: 20}"))
	h.mustConverge()
	if got := h.running(); got != "stable:app:1×2 canary:app:3×1" {
		t.Errorf("app:3 named again after another canary: running %s, want it run", got)
	}
}
