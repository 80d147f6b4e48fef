package controller

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/releases"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// Rollback to an earlier release of a service other than the primary on
// the Kubernetes target: a worker's Deployment, an accessory's
// StatefulSet and another web service's Deployment. No route sends
// traffic to a worker or an accessory, so the rollback commits on what
// the target says that service serves (ServingOf: its workload rolled
// out with the restored image), not on the route alone.

// kubeThree: web (the primary, routed), www (another web service, routed
// by its own host), a worker and db, an accessory with a claim.
func kubeThree(web, www, worker, db string) string {
	return `project: demo
services:
  web:
    image: ` + web + `
    port: 3000
    route: {host: demo.example.com}
    depends_on: [db]
  www:
    image: ` + www + `
    port: 3000
    route: {host: www.example.com}
  worker:
    image: ` + worker + `
  db:
    kind: accessory
    image: ` + db + `
    port: 5432
    volumes: [{source: pgdata, target: /data}]
nginx: {image: nginx:latest, port: 8080}
network: {name: demo-net}
`
}

// kubeThreeReleases deploys every service app:1 (db app:3), then app:2:
// two releases of each.
func kubeThreeReleases(t *testing.T) (*harness, *fakeKube) {
	t.Helper()
	h, fk := kubeHarness(t, kubeThree("app:1", "app:1", "app:1", "app:3"))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	h.write(kubeThree("app:2", "app:2", "app:2", "app:2"))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	want := "db[2*:app:2 1:app:3] web[2*:app:2 1:app:1] worker[2*:app:2 1:app:1] www[2*:app:2 1:app:1]"
	if got := h.serviceRevs(); got != want {
		t.Fatalf("releases %s, want %s", got, want)
	}
	fk.mu.Lock()
	fk.ops = nil
	fk.mu.Unlock()
	return h, fk
}

// workloadImage is the template image of the Deployment or StatefulSet
// named name.
func (f *fakeKube) workloadImage(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.objs["StatefulSet/"+name]; ok {
		var s appsv1.StatefulSet
		_ = json.Unmarshal(b, &s)
		return kubetarget.StatefulSetImage(s)
	}
	var d appsv1.Deployment
	_ = json.Unmarshal(f.objs["Deployment/"+name], &d)
	return kubetarget.ImageOf(d)
}

// rollOut finishes the rollout of a slow Deployment or StatefulSet: every
// replica at its template, available and ready.
func (f *fakeKube) rollOut(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.slow, name)
	if b, ok := f.objs["StatefulSet/"+name]; ok {
		var s appsv1.StatefulSet
		_ = json.Unmarshal(b, &s)
		s.Status.UpdatedReplicas, s.Status.CurrentRevision = s.Status.Replicas, s.Status.UpdateRevision
		f.objs["StatefulSet/"+name], _ = json.Marshal(s)
		return
	}
	var d appsv1.Deployment
	_ = json.Unmarshal(f.objs["Deployment/"+name], &d)
	want := *d.Spec.Replicas
	d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.AvailableReplicas, d.Status.ReadyReplicas = want, want, want, want
	f.objs["Deployment/"+name], _ = json.Marshal(d)
}

func (f *fakeKube) opsNow() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ops)
}

// rolledBackRecords are the rolled_back records journaled.
func (h *harness) rolledBackRecords() []journal.Record {
	var out []journal.Record
	for _, r := range h.records(journal.TypeEvent) {
		if r.Event == journal.EventRolledBack {
			out = append(out, r)
		}
	}
	return out
}

// rollback worker|db|www --to previous on Kubernetes: while the
// service's workload rolls out the restored image, nothing is journaled
// and the rollback is only written ahead; once every replica runs it,
// it is committed and journaled once (rolled_back from 2 to 1); only that
// workload was applied (web's, the others' and the route untouched); it
// stays through a reconcile and a restarted daemon.
func TestKubeRollbackOfAServiceCommitsWhenItsWorkloadRolledOut(t *testing.T) {
	for _, tc := range []struct{ service, workload, kind, image string }{
		{"worker", "demo-worker", "Deployment", "app:1"},
		{"db", "demo-db", "StatefulSet", "app:3"},
		{"www", "demo-www", "Deployment", "app:1"},
	} {
		t.Run(tc.service, func(t *testing.T) {
			h, fk := kubeThreeReleases(t)
			fk.mu.Lock()
			fk.slow[tc.workload] = true
			fk.mu.Unlock()
			done := make(chan error, 1)
			go func() { done <- h.rollbackService(tc.service, api.RollbackPrevious) }()
			deadline := time.Now().Add(5 * time.Second)
			for fk.workloadImage(tc.workload) != tc.image {
				if time.Now().After(deadline) {
					t.Fatalf("the rollback never applied %s to %s", tc.image, tc.workload)
				}
				time.Sleep(5 * time.Millisecond)
			}
			// Rolling out: written ahead, not committed, for as long as it
			// takes (the apply looks every 5 ms).
			for range 10 {
				time.Sleep(10 * time.Millisecond)
				st := h.state()
				if n := len(h.rolledBackRecords()); n != 0 || st.Restores[tc.service] != nil {
					t.Fatalf("committed while %s rolls out: %d rolled_back, restores %+v", tc.workload, n, st.Restores)
				}
				if st.Pending == nil || st.Pending.ServiceRestored == nil || st.Pending.ServiceRestored.Service != tc.service {
					t.Fatalf("while %s rolls out: pending %+v, want the rollback written ahead", tc.workload, st.Pending)
				}
			}
			select {
			case err := <-done:
				t.Fatalf("the rollback ended (%v) before %s rolled out", err, tc.workload)
			default:
			}
			fk.rollOut(tc.workload)
			if err := <-done; err != nil {
				t.Fatalf("rollback %s: %v", tc.service, err)
			}
			rolled := h.rolledBackRecords()
			if len(rolled) != 1 || rolled[0].Details["service"] != tc.service || releases.IntOf(rolled[0].Details["from_rev"]) != 2 || releases.IntOf(rolled[0].Details["to_rev"]) != 1 {
				t.Fatalf("rolled_back records %+v, want one of %s from 2 to 1", rolled, tc.service)
			}
			if got, want := strings.Join(fk.opsNow(), ","), "apply "+tc.kind+"/"+tc.workload; got != want {
				t.Fatalf("ops %s, want %s alone", got, want)
			}
			st := h.state()
			if st.Pending != nil || st.Restored != nil || st.Restores[tc.service] == nil || st.Restores[tc.service].Rev != 1 {
				t.Fatalf("state: pending %+v restored %+v restores %+v", st.Pending, st.Restored, st.Restores)
			}
			if got := revs(h.releasesOfService(tc.service)); got != "2:app:2 1*:"+tc.image {
				t.Errorf("%s's releases %q", tc.service, got)
			}
			// A reconcile and a restarted daemon keep it, applying nothing.
			h.mustConverge()
			h.d.jr.Close()
			h.d = h.newDaemon()
			restartKube(h, fk)
			h.mustConverge()
			if got := strings.Join(fk.opsNow(), ","); got != "apply "+tc.kind+"/"+tc.workload || fk.workloadImage(tc.workload) != tc.image {
				t.Fatalf("after a restart: ops %s, %s runs %s", got, tc.workload, fk.workloadImage(tc.workload))
			}
			if n := len(h.rolledBackRecords()); n != 1 {
				t.Fatalf("%d rolled_back records after a restart, want 1", n)
			}
		})
	}
}

// A rollback whose new pods never become available is not committed, as
// the primary's is not: rollback_failed once, no rolled_back, nothing
// recorded, and the next reconcile converges back to the manifest's
// image. The same for the primary web and for the worker.
func TestKubeRollbackThatNeverRollsOut(t *testing.T) {
	for _, tc := range []struct{ service, workload string }{
		{"web", "demo-web"}, // the primary: the route's own predicate
		{"worker", "demo-worker"},
	} {
		t.Run(tc.service, func(t *testing.T) {
			h, fk := kubeThreeReleases(t)
			fk.mu.Lock()
			fk.stall[tc.workload] = true
			fk.mu.Unlock()
			err := h.rollbackService(tc.service, api.RollbackPrevious)
			if err == nil || !strings.Contains(err.Error(), "did not take effect") {
				t.Fatalf("rollback %s: %v, want it not to take effect", tc.service, err)
			}
			ev := h.events()
			if count(ev, journal.EventRolledBack) != 0 || count(ev, journal.EventRollbackFailed) != 1 {
				t.Fatalf("events %v: want one rollback_failed, no rolled_back", ev)
			}
			if st := h.state(); st.Pending != nil || st.Restored != nil || len(st.Restores) != 0 {
				t.Fatalf("state: pending %+v restored %+v restores %+v", st.Pending, st.Restored, st.Restores)
			}
			if got := revs(h.releasesOfService(tc.service)); got != "2*:app:2 1:app:1" {
				t.Errorf("%s's releases %q", tc.service, got)
			}
			fk.mu.Lock()
			delete(fk.stall, tc.workload)
			fk.mu.Unlock()
			h.mustConverge()
			if got := fk.workloadImage(tc.workload); got != "app:2" {
				t.Fatalf("%s runs %s after the failed rollback, want app:2 back", tc.workload, got)
			}
		})
	}
}

// crashingTarget stands for a daemon killed in the middle of a
// transaction's apply: once the rollback is written ahead (its gate
// allowed), or once its operations ran (applied), Apply panics, so that
// nothing after it (commit, abort) runs; what is on disk and in the
// cluster is then the crash's.
type crashingTarget struct {
	targets.Target
	apply bool
}

var errKilled = errors.New("killed")

func (c *crashingTarget) Apply(ctx context.Context, ch targets.Change, h targets.Hooks) ([]string, error) {
	if c.apply {
		_, _ = c.Target.Apply(ctx, ch, targets.Hooks{Gate: h.Gate, Progress: h.Progress})
	} else if dec := h.Gate(ctx); !dec.Allowed {
		return nil, &reconciler.DeniedError{Reasons: dec.Reasons}
	}
	panic(errKilled)
}

// A daemon killed between a service rollback's write-ahead and its
// commit: the restarted daemon settles it from what the cluster runs:
// committed (journaled once) when the service's workload has rolled out
// the restored image; dropped (transition_aborted, the manifest's image
// back) when nothing was applied or the workload has not rolled out.
func TestKubeInterruptedServiceRollbackSettlesFromTheCluster(t *testing.T) {
	for _, tc := range []struct {
		name, service, workload, image string
		apply, slow, took              bool
	}{
		{"worker written ahead", "worker", "demo-worker", "app:1", false, false, false},
		{"worker applied, rolling out", "worker", "demo-worker", "app:1", true, true, false},
		{"worker applied, rolled out", "worker", "demo-worker", "app:1", true, false, true},
		{"db written ahead", "db", "demo-db", "app:3", false, false, false},
		{"db applied, rolling out", "db", "demo-db", "app:3", true, true, false},
		{"db applied, rolled out", "db", "demo-db", "app:3", true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, fk := kubeThreeReleases(t)
			fk.mu.Lock()
			fk.slow[tc.workload] = tc.slow
			fk.mu.Unlock()
			h.d.target = &crashingTarget{Target: h.d.kt, apply: tc.apply}
			st := killedRollback(t, h, tc.service)
			if applied := fk.workloadImage(tc.workload) == tc.image; applied != tc.apply {
				t.Fatalf("after the crash %s runs %s", tc.workload, fk.workloadImage(tc.workload))
			}
			// The restarted daemon.
			h.d.jr.Close()
			h.d = h.newDaemon()
			restartKube(h, fk)
			fk.mu.Lock()
			delete(fk.slow, tc.workload) // from here on the cluster rolls out what it is given
			fk.mu.Unlock()
			if err := h.reconcile(); err != nil {
				t.Fatal(err)
			}
			ev := h.events()
			st = h.state()
			if tc.took {
				if count(ev, journal.EventRolledBack) != 1 || count(ev, journal.EventTransitionAborted) != 0 {
					t.Fatalf("events %v: want the rollback committed once", ev)
				}
				if st.Pending != nil || st.Restores[tc.service] == nil || fk.workloadImage(tc.workload) != tc.image {
					t.Fatalf("state: pending %+v restores %+v; %s runs %s", st.Pending, st.Restores, tc.workload, fk.workloadImage(tc.workload))
				}
				return
			}
			if count(ev, journal.EventRolledBack) != 0 || count(ev, journal.EventTransitionAborted) != 1 {
				t.Fatalf("events %v: want the interrupted rollback dropped once, never rolled_back", ev)
			}
			if st.Pending != nil || len(st.Restores) != 0 || fk.workloadImage(tc.workload) != "app:2" {
				t.Fatalf("state: pending %+v restores %+v; %s runs %s, want app:2 back", st.Pending, st.Restores, tc.workload, fk.workloadImage(tc.workload))
			}
		})
	}
}

// killedRollback runs `rollback SERVICE --to previous` on a daemon whose
// target is killed in its apply (crashingTarget), and returns the state
// it left: the rollback must be written ahead.
func killedRollback(t *testing.T, h *harness, service string) State {
	t.Helper()
	func() {
		defer func() {
			// nil: the test failed (t.Fatalf's Goexit), not killed.
			if r := recover(); r != nil && r != errKilled {
				panic(r)
			}
		}()
		err := h.rollbackService(service, api.RollbackPrevious)
		t.Fatalf("rollback %s returned %v: want it killed in its apply", service, err)
	}()
	st := h.state()
	if st.Pending == nil || st.Pending.ServiceRestored == nil || st.Pending.ServiceRestored.Service != service {
		t.Fatalf("after the crash: pending %+v, want the rollback written ahead", st.Pending)
	}
	return st
}
