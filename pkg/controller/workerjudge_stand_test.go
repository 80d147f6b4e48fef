package controller

import (
	"context"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
)

// canaryWorker is workerManifest with web running image web (a canary
// of app:3 at 10% when canary).
func canaryWorker(web, jobs string, canary bool) string {
	m := strings.Replace(workerManifest(jobs), "    image: app:1\n    port: 3000\n", "    image: "+web+"\n    port: 3000\n", 1)
	if canary {
		m = strings.Replace(m, "    port: 3000\n", "    port: 3000\n    canary: {image: app:3, weight: 10}\n", 1)
	}
	return m
}

// workerRecords counts the journal's events about the jobs service's
// containers (created, restarted, removed) and deploy_failed.
func (h *harness) workerRecords() (containers, failed int) {
	for _, r := range h.records(journal.TypeEvent) {
		if c, _ := r.Details["container"].(string); strings.Contains(c, "-jobs-") {
			containers++
		}
		if r.Event == journal.EventDeployFailed {
			failed++
		}
	}
	return containers, failed
}

// rejectedUnderCanary: web's canary runs, then an edit of the worker
// alone is judged failing and rejected.
func rejectedUnderCanary(t *testing.T) (*harness, string) {
	h := newHarness(t, canaryWorker("app:1", "app:1", true))
	if err := h.deploy(); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	old := h.oneWorker("app:1").ID
	h.app.set(func(a *appMetrics) { a.svcErrRate["jobs/stable"] = 0.2 })
	h.write(canaryWorker("app:1", "app:2", true))
	if err := h.deploy(); err == nil || !strings.Contains(err.Error(), "judge-worker jobs") {
		t.Fatalf("deploy of a failing worker: %v, want its rejection", err)
	}
	return h, old
}

// A worker revision that stands rejected never locks the rest of the
// stack out: web's canary is rolled back (or promoted), a resync
// converges, the worker's old container keeps running untouched, nothing
// new is journaled of the worker, and status still shows the rejection.
func TestRejectedWorkerLeavesCanaryRollbackAndPromote(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(h *harness) error
		want string // web's containers after
	}{
		{"rollback", func(h *harness) error {
			return h.d.Rollback(context.Background(), "alice", api.RollbackRequest{}, func(string) {})
		}, "app:1"},
		{"promote", func(h *harness) error {
			h.scrape(3) // the canary's figures, for the promotion's judgement
			return h.d.Promote(context.Background(), "alice", api.PromoteRequest{}, func(string) {})
		}, "app:3"},
		{"abort", func(h *harness) error {
			return h.d.Abort(context.Background(), "alice", api.AbortRequest{Reason: "slow"}, func(string) {})
		}, "app:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, old := rejectedUnderCanary(t)
			wc, wf := h.workerRecords()
			if err := tc.do(h); err != nil {
				t.Fatalf("%s while the worker stands rejected: %v", tc.name, err)
			}
			if err := h.reconcile(); err != nil {
				t.Fatalf("resync after the %s: %v", tc.name, err)
			}
			if got := h.serviceImages("web"); got != tc.want+"×1" {
				t.Errorf("web runs %s after the %s, want %s×1", got, tc.name, tc.want)
			}
			if w := h.oneWorker("app:1"); w.ID != old {
				t.Errorf("old worker replaced: %s, want %s", w.ID, old)
			}
			if c, f := h.workerRecords(); c != wc || f != wf {
				t.Errorf("journaled of the worker: %d container events (was %d), %d deploy_failed (was %d)", c, wc, f, wf)
			}
			st := h.status()
			if st.Denial == nil || st.Denial.Policy != policy.CanarySafety || !strings.Contains(strings.Join(st.Denial.Reasons, "; "), "worker jobs") {
				t.Errorf("status no longer shows the rejection: %+v", st.Denial)
			}
			if !st.Converged {
				t.Errorf("not converged: pending %v", st.Pending)
			}
		})
	}
}

// A mixed edit (web and the worker) whose worker fails its judgement
// leaves no web container started and unserved: the worker is judged
// before web's new containers start. The next resync rolls web on its
// own, the worker left as it runs.
func TestMixedRollWithRejectedWorkerStrandsNothing(t *testing.T) {
	h := newHarness(t, canaryWorker("app:1", "app:1", false))
	if err := h.deploy(); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	old := h.oneWorker("app:1").ID
	h.app.set(func(a *appMetrics) { a.svcErrRate["jobs/stable"] = 0.2 })
	h.write(canaryWorker("app:3", "app:2", false))
	if err := h.deploy(); err == nil || !strings.Contains(err.Error(), "judge-worker jobs") {
		t.Fatalf("mixed deploy with a failing worker: %v, want its rejection", err)
	}
	if got := h.serviceImages("web"); got != "app:1×1" {
		t.Errorf("web runs %s after the rejection, want app:1×1 only (no new web container started and left unserved)", got)
	}
	if err := h.reconcile(); err != nil {
		t.Fatalf("resync: %v", err)
	}
	if got := h.serviceImages("web"); got != "app:3×1" {
		t.Errorf("web runs %s after the resync, want app:3×1", got)
	}
	if w := h.oneWorker("app:1"); w.ID != old {
		t.Errorf("old worker replaced")
	}
}

// A rejection lasts while its manifest stays in force, not for ever:
// A → B (rejected) → A (applied) → B again is judged again, and passes on
// good figures.
func TestWorkerRejectionLiftedByAnotherManifest(t *testing.T) {
	a, b := workerManifest("app:1"), workerManifest("app:2")
	h := newHarness(t, a)
	if err := h.deploy(); err != nil {
		t.Fatalf("deploy A: %v", err)
	}
	h.app.set(func(a *appMetrics) { a.svcErrRate["jobs/stable"] = 0.2 })
	h.write(b)
	if err := h.deploy(); err == nil {
		t.Fatal("deploy B with a failing worker succeeded")
	}
	h.write(a)
	if err := h.deploy(); err != nil {
		t.Fatalf("deploy A again: %v", err)
	}
	h.app.set(func(a *appMetrics) { delete(a.svcErrRate, "jobs/stable") })
	h.write(b)
	if err := h.deploy(); err != nil {
		t.Fatalf("deploy B again with good figures: %v", err)
	}
	h.oneWorker("app:2")
	if st := h.status(); st.Denial != nil {
		t.Errorf("status still shows a denial: %+v", st.Denial)
	}
}

// What took effect while a worker stands rejected is journaled: web's new
// image went live on the resync, so manifest_applied records it (with
// web's release, and the worker named as held, its rejected revision no
// release), once; rollback web --to previous then means web's app:1.
// Going back to the manifest of before is journaled again.
func TestPartialApplyWithARejectedWorkerIsJournaled(t *testing.T) {
	before := canaryWorker("app:1", "app:1", false)
	h := newHarness(t, before)
	if err := h.deploy(); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	h.app.set(func(a *appMetrics) { a.svcErrRate["jobs/stable"] = 0.2 })
	h.write(canaryWorker("app:3", "app:2", false))
	if err := h.deploy(); err == nil {
		t.Fatal("mixed deploy with a failing worker succeeded")
	}
	applied := func() []journal.Record {
		var out []journal.Record
		for _, r := range h.records(journal.TypeEvent) {
			if r.Event == journal.EventManifestApplied {
				out = append(out, r)
			}
		}
		return out
	}
	n := len(applied())
	for range 2 {
		if err := h.reconcile(); err != nil {
			t.Fatalf("resync: %v", err)
		}
	}
	if got := h.serviceImages("web"); got != "app:3×1" {
		t.Fatalf("web runs %s after the resync, want app:3×1", got)
	}
	recs := applied()
	if len(recs) != n+1 {
		t.Fatalf("%d manifest_applied records after web's app:3 went live, want %d (journaled once)", len(recs), n+1)
	}
	last := recs[len(recs)-1]
	if held := heldOf(last.Details); len(held) != 1 || held[0] != "jobs" {
		t.Errorf("held = %v, want [jobs]: %v", held, last.Details)
	}
	if web := h.releasesOfService("web"); len(web.Releases) == 0 || web.Releases[0].Image != "app:3" {
		t.Errorf("web's releases %+v, want app:3 current", web.Releases)
	}
	for _, r := range h.releasesOfService("jobs").Releases {
		if r.Image == "app:2" {
			t.Errorf("jobs' rejected app:2 recorded as a release: %+v", r)
		}
	}
	h.app.set(func(a *appMetrics) { delete(a.svcErrRate, "jobs/stable") })
	h.write(before)
	if err := h.deploy(); err != nil {
		t.Fatalf("back to the manifest of before: %v", err)
	}
	if got := len(applied()); got != n+2 {
		t.Errorf("%d manifest_applied records after going back, want %d", got, n+2)
	}
}
