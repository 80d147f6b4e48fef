package controller

import (
	"errors"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// workerManifest is a web service and a worker exposing its own metrics,
// judged over a 2s window scraped every second.
func workerManifest(image string) string {
	return `project: demo
services:
  web:
    image: app:1
    port: 3000
  jobs:
    image: ` + image + `
    metrics: {port: 9100, path: /metrics}
nginx:
  image: nginx:latest
  port: 8080
network:
  name: demo-net
metrics:
  scrape_interval: 1s
  window: 2s
policy:
  min_requests: 10
`
}

// workers returns the jobs service's containers (running or not).
func (h *harness) workers() []fake.ContainerInfo {
	return h.fe.Filter(func(c fake.ContainerInfo) bool { return c.Role == stack.RoleApp && c.Service == "jobs" })
}

// oneWorker is the single jobs container, which must run image.
func (h *harness) oneWorker(image string) fake.ContainerInfo {
	h.t.Helper()
	ws := h.workers()
	if len(ws) != 1 || !ws[0].Running() || ws[0].Image != image {
		h.t.Fatalf("jobs containers %+v, want one running %s", ws, image)
	}
	return ws[0]
}

// TestWorkerJudgedOnItsMetricsRolledBack: a worker's new revision whose
// own figures fail the canary-safety policy is rolled back within the
// roll: its container removed, the old one (same ID) still running, the
// failure journaled once (deploy_failed naming the judge and the
// reasons, with the policy's decision) and shown in status; a resync
// leaves the worker as it runs while the manifest is the same.
func TestWorkerJudgedOnItsMetricsRolledBack(t *testing.T) {
	h := newHarness(t, workerManifest("app:1"))
	if err := h.deploy(); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	old := h.oneWorker("app:1")
	h.app.set(func(a *appMetrics) { a.svcErrRate["jobs/stable"] = 0.2 })

	h.write(workerManifest("app:2"))
	err := h.deploy()
	if err == nil || !strings.Contains(err.Error(), "judge-worker jobs") || !strings.Contains(err.Error(), "Error rate exceeds") {
		t.Fatalf("deploy of a failing worker: %v, want judge-worker jobs failing on its error rate", err)
	}
	if w := h.oneWorker("app:1"); w.ID != old.ID {
		t.Errorf("old worker replaced: %s, want %s still running", w.ID, old.ID)
	}
	ev := h.events()
	if n := count(ev, journal.EventDeployFailed); n != 1 {
		t.Errorf("deploy_failed journaled %d times, want once: %v", n, ev)
	}
	failed := h.records(journal.TypeEvent)
	for _, r := range failed {
		if r.Event == journal.EventDeployFailed && !strings.Contains(r.Message, "Error rate exceeds 1% threshold") {
			t.Errorf("deploy_failed without the reason: %q", r.Message)
		}
	}
	denied := false
	for _, r := range h.records(journal.TypeDecision) {
		if r.PolicyName == policy.CanarySafety && r.Allowed != nil && !*r.Allowed && r.Input["mode"] == "worker" {
			denied = true
		}
	}
	if !denied {
		t.Errorf("no canary_safety decision denying the worker journaled")
	}
	st := h.status()
	if st.Denial == nil || st.Denial.Policy != policy.CanarySafety || !strings.Contains(strings.Join(st.Denial.Reasons, "; "), "Error rate exceeds") {
		t.Errorf("status denial %+v, want canary_safety's reasons", st.Denial)
	}

	// The resync: the manifest is the same, the judgement stands: the
	// worker is left as it runs (the rest of the stack converges), and
	// status still shows the rejection.
	created := count(ev, journal.EventContainerCreated)
	reloads := count(ev, journal.EventNginxReloaded)
	if err := h.reconcile(); err != nil {
		t.Fatalf("resync after a failed judgement: %v, want the worker left as it runs", err)
	}
	if st := h.status(); st.Denial == nil || st.Denial.Policy != policy.CanarySafety {
		t.Errorf("status after the resync lost the rejection: %+v", st.Denial)
	}
	// A deploy of it again fails with the standing rejection (journaled
	// once already), though the rest of the stack converges.
	if err := h.deploy(); err == nil || !strings.Contains(err.Error(), "judge-worker jobs") || !strings.Contains(err.Error(), "Error rate exceeds") {
		t.Errorf("deploy of the rejected manifest again: %v, want its standing rejection", err)
	}
	ev = h.events()
	// nginx's configuration lists every stable container: rendered
	// from the stack that leaves the worker as it runs, it is the one
	// nginx serves already (no reload naming the rejected container).
	if n := count(ev, journal.EventNginxReloaded); n != reloads {
		t.Errorf("resync reloaded nginx (%d nginx_reloaded, was %d): its configuration names the rejected worker", n, reloads)
	}
	if n := count(ev, journal.EventContainerCreated); n != created {
		t.Errorf("resync started the rejected worker again (%d container_created, was %d)", n, created)
	}
	if n := count(ev, journal.EventDeployFailed); n != 1 {
		t.Errorf("deploy_failed journaled %d times after the resync, want once", n)
	}
	if w := h.oneWorker("app:1"); w.ID != old.ID {
		t.Errorf("old worker replaced by the resync")
	}

	// A manifest change lifts it: a good revision goes through.
	h.app.set(func(a *appMetrics) { delete(a.svcErrRate, "jobs/stable") })
	h.write(workerManifest("app:3"))
	if err := h.deploy(); err != nil {
		t.Fatalf("deploy of a good worker after a rejected one: %v", err)
	}
	h.oneWorker("app:3")
	if st := h.status(); st.Denial != nil {
		t.Errorf("status still shows the denial: %+v", st.Denial)
	}
}

// TestWorkerJudgedOnItsMetricsPasses: good figures let the new revision
// through (judged: an allowing decision), and the old container goes.
func TestWorkerJudgedOnItsMetricsPasses(t *testing.T) {
	h := newHarness(t, workerManifest("app:1"))
	if err := h.deploy(); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	old := h.oneWorker("app:1")
	h.write(workerManifest("app:2"))
	if err := h.deploy(); err != nil {
		t.Fatalf("deploy of a good worker: %v", err)
	}
	if w := h.oneWorker("app:2"); w.ID == old.ID {
		t.Errorf("worker not replaced")
	}
	allowed := false
	for _, r := range h.records(journal.TypeDecision) {
		if r.PolicyName == policy.CanarySafety && r.Allowed != nil && *r.Allowed && r.Input["mode"] == "worker" {
			allowed = true
		}
	}
	if !allowed {
		t.Errorf("no canary_safety decision allowing the worker journaled: it was not judged")
	}
}

// TestWorkerWithoutFiguresRolledBack: a new revision whose metrics
// cannot be scraped is not let through: missing data is not good data.
func TestWorkerWithoutFiguresRolledBack(t *testing.T) {
	h := newHarness(t, workerManifest("app:1"))
	if err := h.deploy(); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	old := h.oneWorker("app:1")
	h.app.set(func(a *appMetrics) { a.fail[stack.TrackStable] = errors.New("connection refused") })
	h.write(workerManifest("app:2"))
	err := h.deploy()
	if err == nil || !strings.Contains(err.Error(), "judge-worker jobs") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("deploy of a worker without figures: %v, want judge-worker jobs failing, naming the scrape error", err)
	}
	if w := h.oneWorker("app:1"); w.ID != old.ID {
		t.Errorf("old worker replaced")
	}
}

// TestWorkerWithoutMetricsJudgedByRunning: a worker without the block
// rolls as before: no scrape, no decision.
func TestWorkerWithoutMetricsJudgedByRunning(t *testing.T) {
	plain := func(image string) string {
		return strings.Replace(workerManifest(image), "    metrics: {port: 9100, path: /metrics}\n", "", 1)
	}
	h := newHarness(t, plain("app:1"))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	h.app.set(func(a *appMetrics) { a.svcErrRate["jobs/stable"] = 1 })
	h.write(plain("app:2"))
	if err := h.deploy(); err != nil {
		t.Fatalf("deploy of a worker without metrics: %v", err)
	}
	h.oneWorker("app:2")
	for _, r := range h.records(journal.TypeDecision) {
		if r.PolicyName == policy.CanarySafety {
			t.Errorf("a worker without metrics was judged: %+v", r)
		}
	}
}
