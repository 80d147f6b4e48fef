package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/releases"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// namedManifest: web (the primary, routed), a worker and db, an
// accessory web depends on, each with its own image.
func namedManifest(web, worker, db string) string {
	return `project: demo
services:
  web:
    image: ` + web + `
    port: 3000
    replicas: 2
    depends_on: [db]
  worker:
    image: ` + worker + `
  db:
    kind: accessory
    image: ` + db + `
nginx: {image: nginx:latest, port: 8080}
network: {name: demo-net}
`
}

// namedReleases deploys web and worker app:1 then app:2, db app:3 then
// app:2: two releases of each service.
func namedReleases(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, namedManifest("app:1", "app:1", "app:3"))
	h.deployBy("alice")
	h.write(namedManifest("app:2", "app:2", "app:2"))
	h.deployBy("alice")
	return h
}

func (h *harness) releasesOfService(service string) api.Releases {
	h.t.Helper()
	rs, err := h.d.releasesOf(context.Background(), service)
	if err != nil {
		h.t.Fatal(err)
	}
	return rs
}

// serviceRevs renders every service's releases as "db[2*:app:2 1:app:3]
// web[...] worker[...]".
func (h *harness) serviceRevs() string {
	h.t.Helper()
	all, err := h.d.Releases(context.Background(), "")
	if err != nil {
		h.t.Fatal(err)
	}
	var parts []string
	for _, rs := range all.Services {
		parts = append(parts, rs.Service+"["+revs(rs)+"]")
	}
	return strings.Join(parts, " ")
}

// serviceIDs is the IDs of service's running app containers, sorted.
func (h *harness) serviceIDs(service string) []string {
	var ids []string
	for _, c := range h.fe.ByRole(stack.RoleApp) {
		if c.Service == service && c.Running() {
			ids = append(ids, c.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// serviceImages is "image×n" of service's running stable containers.
func (h *harness) serviceImages(service string) string {
	n := map[string]int{}
	for _, c := range h.fe.ByRole(stack.RoleApp) {
		if c.Service == service && c.Running() {
			n[c.Image]++
		}
	}
	var parts []string
	for img, k := range n {
		parts = append(parts, fmt.Sprintf("%s×%d", img, k))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func (h *harness) rollbackService(service, to string) error {
	return h.d.rollbackTo(context.Background(), "bob", service, to, func(string) {})
}

// In the named form each service has releases of its own, keyed by its
// name: a deploy that changes several services' stable specs records one
// release per changed service, all in its one manifest_applied record
// (details.releases; details.release when one changed), and the book
// rebuilt from the journal alone is the same.
func TestNamedReleasesPerService(t *testing.T) {
	h := namedReleases(t)
	want := "db[2*:app:2 1:app:3] web[2*:app:2 1:app:1] worker[2*:app:2 1:app:1]"
	if got := h.serviceRevs(); got != want {
		t.Fatalf("releases %s, want %s", got, want)
	}
	for _, svc := range []string{"web", "worker", "db"} {
		for _, r := range h.releasesOfService(svc).Releases {
			if r.Service != svc || r.User != "alice" || r.SpecHash == "" || !strings.HasPrefix(r.ImageID, "sha256:") || r.Local == nil || !*r.Local {
				t.Errorf("%s release %d: %+v", svc, r.Rev, r)
			}
			if got := h.fe.ImageID(releases.KeepRef("demo", svc, r.Rev)); got != r.ImageID {
				t.Errorf("%s release %d is not kept under its own name: %q", svc, r.Rev, got)
			}
		}
	}
	// Only worker changes: one release, in the single-release shape.
	h.write(namedManifest("app:2", "app:3", "app:2"))
	h.deployBy("alice")
	want = "db[2*:app:2 1:app:3] web[2*:app:2 1:app:1] worker[3*:app:3 2:app:2 1:app:1]"
	if got := h.serviceRevs(); got != want {
		t.Fatalf("after a worker edit: %s, want %s", got, want)
	}
	var applied []journal.Record
	for _, r := range h.records(journal.TypeEvent) {
		if r.Event == journal.EventManifestApplied {
			applied = append(applied, r)
		}
		if r.Event != journal.EventManifestApplied && (r.Details["release"] != nil || r.Details["releases"] != nil) {
			t.Errorf("a release in a %s record", r.Event)
		}
	}
	var carried []string
	for _, r := range applied {
		var svcs []string
		for _, rel := range releases.InRecord(r) {
			svcs = append(svcs, fmt.Sprintf("%s:%d", rel.Service, rel.Rev))
		}
		carried = append(carried, strings.Join(svcs, ","))
	}
	if got, want := strings.Join(carried, " | "), "db:1,web:1,worker:1 | db:2,web:2,worker:2 | worker:3"; got != want {
		t.Errorf("manifest_applied records carry %q, want %q", got, want)
	}
	if last := applied[len(applied)-1]; last.Details["release"] == nil || last.Details["releases"] != nil {
		t.Errorf("one release rides as details.release: %v", last.Details)
	}

	// releases.json gone: rebuilt from the journal alone, the same.
	h.d.jr.Close()
	if err := os.Remove(filepath.Join(h.dir, ".swiftdeploy", releases.File)); err != nil {
		t.Fatal(err)
	}
	h.d = h.newDaemon()
	if got := h.serviceRevs(); got != want {
		t.Fatalf("rebuilt from the journal: %s, want %s", got, want)
	}
	// SERVICE: just that one; an unknown one names the services.
	if got := revs(h.releasesOfServiceAPI(t, "worker")); got != "3*:app:3 2:app:2 1:app:1" {
		t.Errorf("releases worker: %q", got)
	}
	_, err := h.d.Releases(context.Background(), "queue")
	if err == nil || !strings.Contains(err.Error(), `no service "queue" in the manifest: its services are [db web worker]`) {
		t.Errorf("releases queue: %v", err)
	}
	if err := h.rollbackService("queue", api.RollbackPrevious); err == nil || !strings.Contains(err.Error(), "its services are [db web worker]") {
		t.Errorf("rollback queue --to previous: %v", err)
	}
	// rollback without --to is about the canary, which only web runs.
	if err := h.d.Rollback(context.Background(), "bob", api.RollbackRequest{Service: "worker"}, func(string) {}); err == nil || !strings.Contains(err.Error(), "swiftctl rollback worker --to") {
		t.Errorf("rollback worker (no --to): %v", err)
	}
}

func (h *harness) releasesOfServiceAPI(t *testing.T, service string) api.Releases {
	t.Helper()
	rs, err := h.d.Releases(context.Background(), service)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// rollback worker --to previous brings worker's release 1 back and
// nothing else: web's and db's containers are the very same (IDs), one
// rolled_back names worker, and it stays while services.worker.image is
// what it was made over; web's edits leave it alone, worker's spend it.
func TestNamedRollbackOfOneService(t *testing.T) {
	h := namedReleases(t)
	web, db := h.serviceIDs("web"), h.serviceIDs("db")
	before := len(h.events())
	if err := h.rollbackService("worker", api.RollbackPrevious); err != nil {
		t.Fatal(err)
	}
	if got := h.serviceImages("worker"); got != "app:1×1" {
		t.Fatalf("worker runs %s, want app:1×1", got)
	}
	if !slices.Equal(h.serviceIDs("web"), web) || !slices.Equal(h.serviceIDs("db"), db) {
		t.Fatalf("web's or db's containers changed: web %v (was %v), db %v (was %v)", h.serviceIDs("web"), web, h.serviceIDs("db"), db)
	}
	recs := h.records(journal.TypeEvent)[before:]
	var rolled []journal.Record
	for _, r := range recs {
		if r.Event == journal.EventRolledBack {
			rolled = append(rolled, r)
		}
		if r.Details["release"] != nil || r.Details["releases"] != nil {
			t.Errorf("a rollback made a new release: %s %v", r.Event, r.Details)
		}
	}
	if len(rolled) != 1 || rolled[0].Details["service"] != "worker" || releases.IntOf(rolled[0].Details["from_rev"]) != 2 || releases.IntOf(rolled[0].Details["to_rev"]) != 1 {
		t.Fatalf("rolled_back records %+v, want one of worker from 2 to 1", rolled)
	}
	want := "db[2*:app:2 1:app:3] web[2*:app:2 1:app:1] worker[2:app:2 1*:app:1]"
	if got := h.serviceRevs(); got != want {
		t.Fatalf("releases %s, want %s", got, want)
	}
	st := h.state()
	if st.Restored != nil || st.Pending != nil || st.Restores["worker"] == nil || st.Restores["worker"].Rev != 1 || st.Restores["worker"].ManifestStable != "app:2" {
		t.Fatalf("state %+v, restores %+v", st, st.Restores)
	}
	// Reconciles and a restart keep it.
	h.mustConverge()
	h.d.jr.Close()
	h.d = h.newDaemon()
	h.mustConverge()
	if got := h.serviceImages("worker"); got != "app:1×1" || !slices.Equal(h.serviceIDs("web"), web) {
		t.Fatalf("after a restart: worker runs %s, web %v (was %v)", got, h.serviceIDs("web"), web)
	}
	// An edit of web's image is a release of web; worker's rollback stands.
	h.fe.AddImage("app:5")
	h.write(namedManifest("app:5", "app:2", "app:2"))
	h.mustConverge()
	if got := h.serviceImages("worker"); got != "app:1×1" {
		t.Fatalf("web's edit undid worker's rollback: worker runs %s", got)
	}
	want = "db[2*:app:2 1:app:3] web[3*:app:5 2:app:2 1:app:1] worker[2:app:2 1*:app:1]"
	if got := h.serviceRevs(); got != want {
		t.Fatalf("after web's edit: %s, want %s", got, want)
	}
	// An edit of services.worker.image spends it: a new release of worker.
	h.write(namedManifest("app:5", "app:3", "app:2"))
	h.mustConverge()
	if got := h.serviceImages("worker"); got != "app:3×1" {
		t.Fatalf("worker runs %s after its edit, want app:3×1", got)
	}
	if got := revs(h.releasesOfService("worker")); got != "3*:app:3 2:app:2 1:app:1" {
		t.Errorf("worker's releases %q", got)
	}
	if st := h.state(); len(st.Restores) != 0 {
		t.Errorf("worker's rollback is not spent: %+v", st.Restores)
	}
}

// An accessory's rollback replaces its container stop-first, as any
// change of it does (two databases on one volume must not run at once),
// and leaves web's and worker's containers alone.
func TestNamedRollbackOfAnAccessory(t *testing.T) {
	h := namedReleases(t)
	web, worker := h.serviceIDs("web"), h.serviceIDs("worker")
	oldDB := h.serviceIDs("db")
	h.fe.ResetCalls()
	if err := h.rollbackService("db", "1"); err != nil {
		t.Fatal(err)
	}
	if got := h.serviceImages("db"); got != "app:3×1" {
		t.Fatalf("db runs %s, want app:3×1", got)
	}
	if !slices.Equal(h.serviceIDs("web"), web) || !slices.Equal(h.serviceIDs("worker"), worker) {
		t.Fatalf("web's or worker's containers changed")
	}
	removed, started := -1, -1
	for i, c := range h.fe.Calls() {
		if c.Op == fake.OpRemove && len(oldDB) == 1 && c.Target == oldDB[0] && removed < 0 {
			removed = i
		}
		if c.Op == fake.OpRun && strings.Contains(c.Target, "demo-db-") && started < 0 {
			started = i
		}
	}
	if removed < 0 || started < 0 || removed > started {
		t.Errorf("db's old container removed at call %d, the new one run at %d: want stop-first; calls %v", removed, started, h.fe.Ops())
	}
	if got := revs(h.releasesOfService("db")); got != "2:app:2 1*:app:3" {
		t.Errorf("db's releases %q", got)
	}
}

// A daemon that dies between the write-ahead of worker's rollback and
// its commit finds it not in force (transition_aborted, never
// rolled_back; worker back on release 2); one that dies after the commit
// (the old worker not yet removed) finds it in force, journaled once.
// (Nginx's revision shows a worker's change: its status block names every
// stable container, each name carrying its spec's hash.)
func TestNamedRollbackInterrupted(t *testing.T) {
	tests := []struct {
		name    string
		op      reconciler.OpKind
		rolled  int
		aborted int
		worker  string
		rels    string
	}{
		{name: "before the commit", op: reconciler.OpReloadNginx, rolled: 0, aborted: 1, worker: "app:2×1", rels: "2*:app:2 1:app:1"},
		{name: "after the commit", op: reconciler.OpRemoveApp, rolled: 1, aborted: 0, worker: "app:1×1", rels: "2:app:2 1*:app:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := namedReleases(t)
			web := h.serviceIDs("web")
			before := len(h.events())
			thaw := h.freezeAt("before", tc.op, func() error { return h.rollbackService("worker", api.RollbackPrevious) })
			if st := h.state(); tc.rolled == 0 && (st.Pending == nil || st.Pending.Kind != kindRestore || st.Pending.ServiceRestored == nil) {
				t.Fatalf("no write-ahead before the commit: %+v", st)
			}
			h.d.jr.Close()
			h.d = h.newDaemon()
			h.mustConverge()
			recs := h.records(journal.TypeEvent)[before:]
			if n := countRecs(recs, journal.EventRolledBack); n != tc.rolled {
				t.Errorf("rolled_back journaled %d times, want %d: %v", n, tc.rolled, names(recs))
			}
			if n := countRecs(recs, journal.EventTransitionAborted); n != tc.aborted {
				t.Errorf("transition_aborted journaled %d times, want %d: %v", n, tc.aborted, names(recs))
			}
			if got := h.serviceImages("worker"); got != tc.worker {
				t.Errorf("worker runs %s, want %s", got, tc.worker)
			}
			if got := revs(h.releasesOfService("worker")); got != tc.rels {
				t.Errorf("worker's releases %q, want %q", got, tc.rels)
			}
			if !slices.Equal(h.serviceIDs("web"), web) {
				t.Errorf("web's containers changed")
			}
			if st := h.state(); st.Pending != nil {
				t.Errorf("still pending: %+v", st.Pending)
			}
			_ = thaw()
		})
	}
}

// A worker whose release fails its start does not take effect: the apply
// fails, the rollback is journaled as failed, never as rolled_back
// (nginx's unchanged revision must not pass for it taking effect), and
// worker converges back to release 2.
func TestNamedRollbackFailingStartNotCommitted(t *testing.T) {
	h := namedReleases(t)
	before := len(h.events())
	h.fe.FailNext(fake.OpRun, fmt.Errorf("no space left on device"))
	if err := h.rollbackService("worker", api.RollbackPrevious); err == nil {
		t.Fatal("rollback with a start failing: no error")
	}
	h.mustConverge()
	recs := h.records(journal.TypeEvent)[before:]
	if countRecs(recs, journal.EventRolledBack) != 0 || countRecs(recs, journal.EventRollbackFailed) != 1 {
		t.Fatalf("events %v: want one rollback_failed, no rolled_back", names(recs))
	}
	if got := h.serviceImages("worker"); got != "app:2×1" {
		t.Errorf("worker runs %s", got)
	}
	if got := revs(h.releasesOfService("worker")); got != "2*:app:2 1:app:1" {
		t.Errorf("worker's releases %q", got)
	}
	if st := h.state(); st.Pending != nil || len(st.Restores) != 0 {
		t.Errorf("state %+v", st)
	}
}

// On Kubernetes every service's releases are recorded, and every
// service rolls back to one: the worker (its Deployment) and the primary
// (kubernetes_rollback_test.go has the accessory, another web service,
// and the commit and crash windows).
func TestKubeNamedReleases(t *testing.T) {
	h, _ := kubeHarness(t, namedKubeManifest("app:1"))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	h.write(strings.Replace(namedKubeManifest("app:2"), "  worker:\n    image: app:1", "  worker:\n    image: app:2", 1))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	if got, want := h.serviceRevs(), "db[1*:app:3] web[2*:app:2 1:app:1] worker[2*:app:2 1:app:1]"; got != want {
		t.Fatalf("releases %s, want %s", got, want)
	}
	if err := h.rollbackService("worker", api.RollbackPrevious); err != nil {
		t.Fatalf("rollback worker: %v", err)
	}
	if got := revs(h.releasesOfService("worker")); got != "2:app:2 1*:app:1" {
		t.Errorf("worker's releases %q", got)
	}
	if err := h.rollbackService("web", api.RollbackPrevious); err != nil {
		t.Fatalf("rollback web (the primary): %v", err)
	}
	if got := revs(h.releasesOfService("web")); got != "2:app:2 1*:app:1" {
		t.Errorf("web's releases %q", got)
	}
}

// Releases recorded under the project's name (the seed form's single
// service, or the named form's primary before every service had releases
// of their own) are the primary's once the manifest has the named form:
// listed as web's, continued by web's next release, rolled back to, kept
// under web's names (the old names let go), and the same when the book
// is rebuilt from the journal alone.
func TestReleasesUnderTheProjectBecomeThePrimarys(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	h.deployBy("alice")
	h.write(fakeManifest("app:2", 2, ""))
	h.deployBy("alice")
	if got := revs(h.releases()); got != "2*:app:2 1:app:1" {
		t.Fatalf("seed form: %q", got)
	}
	h.write(namedManifest("app:2", "app:1", "app:3"))
	h.deployBy("alice")
	h.mustConverge() // the next reconcile moves the kept names
	// web's spec changed (its containers are named for the service now):
	// release 3 of web, continuing the project's.
	want := "db[1*:app:3] web[3*:app:2 2:app:2 1:app:1] worker[1*:app:1]"
	if got := h.serviceRevs(); got != want {
		t.Fatalf("named form: %s, want %s", got, want)
	}
	for rev := 1; rev <= 3; rev++ {
		if h.fe.ImageID(releases.KeepRef("demo", "web", rev)) == "" {
			t.Errorf("web's release %d is not kept under web's name", rev)
		}
	}
	for rev := 1; rev <= 2; rev++ {
		if got := h.fe.ImageID(releases.KeepRef("demo", "demo", rev)); got != "" {
			t.Errorf("the project's old name for release %d still names %s", rev, got)
		}
	}
	if err := h.rollbackService("web", "1"); err != nil {
		t.Fatal(err)
	}
	if got := h.serviceImages("web"); got != "app:1×2" {
		t.Fatalf("web runs %s, want app:1×2", got)
	}
	want = "db[1*:app:3] web[3:app:2 2:app:2 1*:app:1] worker[1*:app:1]"
	h.d.jr.Close()
	if err := os.Remove(filepath.Join(h.dir, ".swiftdeploy", releases.File)); err != nil {
		t.Fatal(err)
	}
	h.d = h.newDaemon()
	h.mustConverge()
	if got := h.serviceRevs(); got != want {
		t.Fatalf("rebuilt from the journal: %s, want %s", got, want)
	}
}
