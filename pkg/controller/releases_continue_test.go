package controller

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/releases"
)

// seedTwoReleases deploys the seed form's app:1 then app:2: releases 1
// and 2, recorded under the project's name.
func seedTwoReleases(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	h.deployBy("alice")
	h.write(fakeManifest("app:2", 2, ""))
	h.deployBy("alice")
	if got := revs(h.releases()); got != "2*:app:2 1:app:1" {
		t.Fatalf("seed form: %q", got)
	}
	return h
}

// continues is the rename the manifest_applied records carry, "FROM>TO"
// each.
func (h *harness) continues() []string {
	h.t.Helper()
	var out []string
	for _, r := range h.records(journal.TypeEvent) {
		if from, to, ok := releases.Continues(r); ok {
			if r.Event != journal.EventManifestApplied {
				h.t.Errorf("a rename rides in %s", r.Event)
			}
			out = append(out, from+">"+to)
		}
	}
	return out
}

// rebuild restarts the daemon with releases.json deleted: the book is
// rebuilt from the journal alone.
func (h *harness) rebuild() {
	h.t.Helper()
	h.d.jr.Close()
	if err := os.Remove(filepath.Join(h.dir, ".swiftdeploy", releases.File)); err != nil {
		h.t.Fatal(err)
	}
	h.d = h.newDaemon()
	h.mustConverge()
}

// The seed form's releases go to the service of the named form that runs
// the image of their current release (web, app:2), not to the first web
// service by name (admin): a rollback of admin never runs the old web
// app's image. The journal carries the rename, once.
func TestSeedReleasesContinuedByTheServiceRunningTheirImage(t *testing.T) {
	h := seedTwoReleases(t)
	h.write(`project: demo
services:
  admin: {image: app:3, port: 4000, route: {path_prefix: /admin}}
  web: {image: app:2, port: 3000, replicas: 2}
nginx: {image: nginx:latest, port: 8080}
network: {name: demo-net}
`)
	h.deployBy("alice")
	h.mustConverge()
	want := "admin[1*:app:3] web[3*:app:2 2:app:2 1:app:1]"
	if got := h.serviceRevs(); got != want {
		t.Fatalf("named form: %s, want %s", got, want)
	}
	if err := h.rollbackService("admin", "previous"); err == nil {
		t.Errorf("admin rolled back to a release of the seed form: admin runs %s", h.serviceImages("admin"))
	}
	if err := h.rollbackService("web", "1"); err != nil {
		t.Fatal(err)
	}
	if got := h.serviceImages("web"); got != "app:1×2" {
		t.Errorf("web runs %s, want app:1×2", got)
	}
	if got := h.continues(); len(got) != 1 || got[0] != "demo>web" {
		t.Errorf("renames journaled: %v, want [demo>web]", got)
	}
}

// When no service of the named form runs the image of the seed form's
// current release, none is guessed: they are listed for no service and
// no rollback runs one.
func TestSeedReleasesContinuedByNoService(t *testing.T) {
	h := seedTwoReleases(t)
	h.write(`project: demo
services:
  admin: {image: app:3, port: 4000, route: {path_prefix: /admin}}
  web: {image: app:4, port: 3000, replicas: 2}
nginx: {image: nginx:latest, port: 8080}
network: {name: demo-net}
`)
	h.fe.AddImage("app:4")
	h.deployBy("alice")
	h.mustConverge()
	if got, want := h.serviceRevs(), "admin[1*:app:3] web[1*:app:4]"; got != want {
		t.Fatalf("named form: %s, want %s", got, want)
	}
	for _, svc := range []string{"admin", "web"} {
		if err := h.rollbackService(svc, "previous"); err == nil {
			t.Errorf("%s rolled back to a release of the seed form: it runs %s", svc, h.serviceImages(svc))
		}
	}
	if got := h.continues(); len(got) != 1 || got[0] != "demo>"+releases.Retired("demo") {
		t.Errorf("renames journaled: %v", got)
	}
}

// A manifest read (swiftctl releases) but never applied decides nothing:
// the rename waits for a manifest of the named form to take effect.
func TestSeedReleasesNotRenamedByAManifestNotApplied(t *testing.T) {
	h := seedTwoReleases(t)
	// aaa sorts first: the primary of a manifest never applied.
	h.write(`project: demo
services:
  aaa: {image: app:9, port: 4000, route: {path_prefix: /aaa}}
  web: {image: app:2, port: 3000, replicas: 2}
nginx: {image: nginx:latest, port: 8080}
network: {name: demo-net}
`)
	if got, want := h.serviceRevs(), "aaa[] web[]"; got != want {
		t.Errorf("read before it took effect: %s, want %s", got, want)
	}
	h.write(namedManifest("app:2", "app:1", "app:3"))
	h.deployBy("alice")
	h.mustConverge()
	if got, want := h.serviceRevs(), "db[1*:app:3] web[3*:app:2 2:app:2 1:app:1] worker[1*:app:1]"; got != want {
		t.Errorf("named form: %s, want %s", got, want)
	}
}

// The book rebuilt from the journal alone keeps the rename the live one
// made, though the primary has changed since (aaa, a web service sorting
// first, added).
func TestSeedReleasesRebuiltAfterThePrimaryChanged(t *testing.T) {
	h := seedTwoReleases(t)
	named := func(extra string) string {
		return `project: demo
services:
  api: {image: app:2, port: 3000, replicas: 2}
  web: {image: web:1, port: 4000, route: {path_prefix: /web}}
` + extra + `nginx: {image: nginx:latest, port: 8080}
network: {name: demo-net}
`
	}
	h.fe.AddImage("web:1", "aaa:1")
	h.write(named(""))
	h.deployBy("alice")
	h.write(named("  aaa: {image: aaa:1, port: 5000, route: {path_prefix: /aaa}}\n"))
	h.deployBy("alice")
	h.mustConverge()
	want := "aaa[1*:aaa:1] api[3*:app:2 2:app:2 1:app:1] web[1*:web:1]"
	if got := h.serviceRevs(); got != want {
		t.Fatalf("live: %s, want %s", got, want)
	}
	h.rebuild()
	if got := h.serviceRevs(); got != want {
		t.Errorf("rebuilt from the journal: %s, want %s", got, want)
	}
}

// A service named like the project (demo, a worker) has only its own
// releases: the seed form's are web's, whose image they ran; demo's next
// ones are its own, and a rollback of demo runs demo's image, live and
// after a rebuild from the journal.
func TestServiceNamedLikeTheProjectHasItsOwnReleases(t *testing.T) {
	h := seedTwoReleases(t)
	named := func(demo string) string {
		return `project: demo
services:
  demo: {image: ` + demo + `}
  web: {image: app:2, port: 3000, replicas: 2}
nginx: {image: nginx:latest, port: 8080}
network: {name: demo-net}
`
	}
	h.fe.AddImage("worker:1", "worker:2")
	h.write(named("worker:1"))
	h.deployBy("alice")
	h.mustConverge()
	if got, want := h.serviceRevs(), "demo[1*:worker:1] web[3*:app:2 2:app:2 1:app:1]"; got != want {
		t.Fatalf("named form: %s, want %s", got, want)
	}
	if err := h.rollbackService("demo", "previous"); err == nil {
		t.Fatalf("demo rolled back to a release of the seed form: demo runs %s", h.serviceImages("demo"))
	}
	h.write(named("worker:2"))
	h.deployBy("alice")
	h.mustConverge()
	want := "demo[2*:worker:2 1:worker:1] web[3*:app:2 2:app:2 1:app:1]"
	if got := h.serviceRevs(); got != want {
		t.Fatalf("demo's second release: %s, want %s", got, want)
	}
	if err := h.rollbackService("demo", "previous"); err != nil {
		t.Fatal(err)
	}
	if got := h.serviceImages("demo"); got != "worker:1×1" {
		t.Errorf("demo runs %s, want worker:1×1", got)
	}
	want = "demo[2:worker:2 1*:worker:1] web[3*:app:2 2:app:2 1:app:1]"
	if got := h.serviceRevs(); got != want {
		t.Errorf("after demo's rollback: %s, want %s", got, want)
	}
	h.rebuild()
	if got := h.serviceRevs(); got != want {
		t.Errorf("rebuilt from the journal: %s, want %s", got, want)
	}
}

// A release of the seed form renamed to web that falls out of web's last
// KeepReleases lets go of the name it was kept under before the rename
// too: else that name would keep its image on the host for good.
func TestRenamedReleaseNoLongerListedLetsGoOfItsOldName(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	h.d.jr.Close()
	h.d = h.newDaemonWith(func(c *Config) { c.KeepReleases = 2 })
	h.deployBy("alice")
	h.write(fakeManifest("app:2", 2, ""))
	h.deployBy("alice")
	if h.fe.ImageID(releases.KeepRef("demo", "demo", 1)) == "" {
		t.Fatal("release 1 of the seed form is not kept")
	}
	h.write(namedManifest("app:2", "app:1", "app:3"))
	h.deployBy("alice")
	h.mustConverge()
	if got, want := h.serviceRevs(), "db[1*:app:3] web[3*:app:2 2:app:2] worker[1*:app:1]"; got != want {
		t.Fatalf("named form: %s, want %s", got, want)
	}
	for _, ref := range []string{releases.KeepRef("demo", "demo", 1), releases.KeepRef("demo", "web", 1), releases.KeepRef("demo", "demo", 2)} {
		if got := h.fe.ImageID(ref); got != "" {
			t.Errorf("%s still names %s", ref, got)
		}
	}
	if h.fe.ImageID(releases.KeepRef("demo", "web", 2)) == "" {
		t.Error("web's release 2 is not kept under web's name")
	}
}
