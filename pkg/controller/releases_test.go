package controller

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/authz"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/releases"
)

// threeReleases deploys app:1, app:2 and app:3 in turn (two replicas).
func threeReleases(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	if mod != nil {
		h.d.jr.Close()
		h.d = h.newDaemonWith(mod)
	}
	for _, img := range []string{"app:1", "app:2", "app:3"} {
		h.write(fakeManifest(img, 2, ""))
		h.deployBy("alice")
	}
	return h
}

// deployBy is a deploy asked for by user: the reconcile it waits for.
func (h *harness) deployBy(user string) {
	h.t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- h.d.waitAs(context.Background(), user, nil) }()
	for !h.d.hasWaiters() {
		time.Sleep(time.Millisecond)
	}
	err := h.d.reconcileOnce(context.Background())
	if werr := <-errc; err == nil {
		err = werr
	}
	if err != nil {
		h.t.Fatalf("deploy by %s: %v", user, err)
	}
	if s := h.status(); !s.Converged {
		h.t.Fatalf("not converged after a deploy by %s; pending %v", user, s.Pending)
	}
}

func (h *harness) releases() api.Releases {
	h.t.Helper()
	rs, err := h.d.releasesOf(context.Background(), "demo")
	if err != nil {
		h.t.Fatal(err)
	}
	return rs
}

// revs renders a release list as "3*:app:3 2:app:2", newest first, the
// current one starred.
func revs(rs api.Releases) string {
	var parts []string
	for _, r := range rs.Releases {
		s := r.Image
		if r.Current {
			s = "*:" + s
		} else {
			s = ":" + s
		}
		parts = append(parts, strconv.Itoa(r.Rev)+s)
	}
	return strings.Join(parts, " ")
}

func (h *harness) rollbackTo(to string) error {
	return h.d.rollbackTo(context.Background(), "bob", "", to, func(string) {})
}

// Each stable that took effect is a release, journaled once in the
// record of the event that made it take effect, with its image ID, spec
// hash and who; a canary-only edit is no release; a promotion is one.
func TestReleasesRecordedWhenTheyTakeEffect(t *testing.T) {
	h := threeReleases(t, nil)
	rs := h.releases()
	if got, want := revs(rs), "3*:app:3 2:app:2 1:app:1"; got != want {
		t.Fatalf("releases %q, want %q", got, want)
	}
	for _, r := range rs.Releases {
		if !strings.HasPrefix(r.ImageID, "sha256:") || r.Digest != r.ImageID || r.SpecHash == "" || r.User != "alice" || r.Cause != releases.CauseDeploy ||
			r.Local == nil || !*r.Local || r.Service != "demo" {
			t.Errorf("release %d: %+v", r.Rev, r)
		}
	}
	if rs.Releases[0].SpecHash == rs.Releases[1].SpecHash {
		t.Errorf("two images, one spec hash: %+v", rs.Releases)
	}
	var journaled int
	for _, rec := range h.records(journal.TypeEvent) {
		if rec.Details["release"] != nil {
			journaled++
			if rec.Event != journal.EventManifestApplied {
				t.Errorf("release in a %s record", rec.Event)
			}
		}
	}
	if journaled != 3 {
		t.Errorf("%d releases journaled, want 3", journaled)
	}

	// A canary, then its promotion: the canary edit is no release, the
	// promotion is release 4.
	h.fe.AddImage("app:4")
	h.write(fakeManifest("app:3", 2, "  canary: {image: app:4, weight: 20}"))
	h.mustConverge()
	if got := revs(h.releases()); got != "3*:app:3 2:app:2 1:app:1" {
		t.Fatalf("after a canary edit: %q", got)
	}
	h.scrape(4)
	if err := h.promote(); err != nil {
		t.Fatal(err)
	}
	rs = h.releases()
	if got := revs(rs); got != "4*:app:4 3:app:3 2:app:2 1:app:1" {
		t.Fatalf("after the promotion: %q", got)
	}
	if r := rs.Releases[0]; r.Cause != releases.CausePromote || r.User != "alice" || r.ImageID == "" {
		t.Errorf("promoted release: %+v", r)
	}
	// The manifest catching up with the promotion is no new release.
	h.write(fakeManifest("app:4", 2, ""))
	h.mustConverge()
	if got := revs(h.releases()); got != "4*:app:4 3:app:3 2:app:2 1:app:1" {
		t.Errorf("after the manifest caught up: %q", got)
	}
}

// rollback --to previous brings release 2 back through a transaction:
// journaled once as rolled_back with from_rev and to_rev, the current
// marker moved, the release kept while the manifest names app:3, spent
// once services.image changes (a new release then).
func TestRollbackToPrevious(t *testing.T) {
	h := threeReleases(t, nil)
	before := len(h.events())
	if err := h.rollbackTo(api.RollbackPrevious); err != nil {
		t.Fatal(err)
	}
	if got := h.running(); got != "stable:app:2×2" {
		t.Fatalf("running %s, want stable:app:2×2", got)
	}
	recs := h.records(journal.TypeEvent)[before:]
	var rolled []journal.Record
	for _, r := range recs {
		if r.Event == journal.EventRolledBack {
			rolled = append(rolled, r)
		}
		if r.Details["release"] != nil {
			t.Errorf("a rollback made a new release: %s %v", r.Event, r.Details)
		}
	}
	if len(rolled) != 1 || releases.IntOf(rolled[0].Details["from_rev"]) != 3 || releases.IntOf(rolled[0].Details["to_rev"]) != 2 || rolled[0].User != "bob" {
		t.Fatalf("rolled_back records %+v, want one from 3 to 2 by bob", rolled)
	}
	if reloaded := lastIndex(recs, journal.EventNginxReloaded); reloaded < 0 || reloaded > lastIndex(recs, journal.EventRolledBack) {
		t.Errorf("rolled_back is not journaled after nginx_reloaded: %v", names(recs))
	}
	if got := revs(h.releases()); got != "3:app:3 2*:app:2 1:app:1" {
		t.Fatalf("releases %q", got)
	}
	// Later reconciles keep it while the manifest names app:3.
	h.mustConverge()
	if got := h.running(); got != "stable:app:2×2" {
		t.Fatalf("a reconcile undid the rollback: running %s", got)
	}
	if st := h.state(); st.Restored == nil || st.Restored.Rev != 2 || st.Pending != nil {
		t.Fatalf("state %+v", st)
	}
	// previous of 2 is 1.
	if err := h.rollbackTo(api.RollbackPrevious); err != nil {
		t.Fatal(err)
	}
	if got := revs(h.releases()); got != "3:app:3 2:app:2 1*:app:1" {
		t.Fatalf("releases %q", got)
	}
	// A restart rebuilds the same from releases.json and the journal.
	h.d.jr.Close()
	h.d = h.newDaemon()
	h.mustConverge()
	if got, run := revs(h.releases()), h.running(); got != "3:app:3 2:app:2 1*:app:1" || run != "stable:app:1×2" {
		t.Fatalf("after a restart: releases %q, running %s", got, run)
	}
	// Forward again to release 3, the manifest's own image: no new release.
	if err := h.rollbackTo("3"); err != nil {
		t.Fatal(err)
	}
	h.mustConverge()
	if got, run := revs(h.releases()), h.running(); got != "3*:app:3 2:app:2 1:app:1" || run != "stable:app:3×2" {
		t.Fatalf("after rollback --to 3: releases %q, running %s", got, run)
	}
	// An edit of services.image spends it: a new release, current.
	h.fe.AddImage("app:5")
	h.write(fakeManifest("app:5", 2, ""))
	h.mustConverge()
	if got, run := revs(h.releases()), h.running(); got != "4*:app:5 3:app:3 2:app:2 1:app:1" || run != "stable:app:5×2" {
		t.Fatalf("after a manifest edit: releases %q, running %s", got, run)
	}
	if st := h.state(); st.Restored != nil {
		t.Errorf("the rollback is not spent: %+v", st.Restored)
	}
}

// A rollback that cannot run changes nothing and journals nothing: the
// image gone from the host (named in the error), the tag now naming
// another image, a canary running, an unknown release.
func TestRollbackToRefusals(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(h *harness)
		service string
		to      string
		want    string
	}{
		{name: "another service", service: "web", to: "previous", want: `no service "web" in the manifest: its services are [demo]`},
		{name: "image gone", setup: func(h *harness) { h.fe.RemoveImageID(h.fe.ImageID("app:1")) }, to: "1", want: "image app:1 of release 1 is not on this host"},
		{name: "retagged and gone", setup: func(h *harness) {
			old := h.fe.ImageID("app:2")
			h.fe.AddImage("app:2") // rebuilt: the tag names another image
			h.fe.RemoveImageID(old)
		}, to: "previous", want: "image app:2 now names"},
		{name: "unknown", to: "9", want: "no release 9"},
		{name: "current", to: "3", want: "is the current one"},
		{name: "bad", to: "latest", want: `want "previous" or a release number`},
		{name: "canary", setup: func(h *harness) {
			h.write(fakeManifest("app:3", 2, "  canary: {image: app:1, weight: 20}"))
			h.mustConverge()
		}, to: "1", want: "a canary is running"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := threeReleases(t, nil)
			if tc.setup != nil {
				tc.setup(h)
			}
			events, running, rels := len(h.events()), h.running(), revs(h.releases())
			err := h.d.rollbackTo(context.Background(), "bob", tc.service, tc.to, func(string) {})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("rollback --to %s: %v, want an error with %q", tc.to, err, tc.want)
			}
			if got := h.events(); len(got) != events {
				t.Errorf("journaled %v", got[events:])
			}
			if h.running() != running || revs(h.releases()) != rels {
				t.Errorf("changed: running %s (was %s), releases %s (was %s)", h.running(), running, revs(h.releases()), rels)
			}
			if st := h.state(); st.Restored != nil || st.Pending != nil {
				t.Errorf("state %+v", st)
			}
		})
	}
}

// The README's walk: v1 deployed, a v2 canary promoted (two releases),
// then rollback --to previous: v1 runs as stable and the canary the
// manifest still declares does not start again beside it.
func TestRollbackToBeforeAPromotion(t *testing.T) {
	h := canaryHarness(t)
	if err := h.promote(); err != nil {
		t.Fatal(err)
	}
	if got := revs(h.releases()); got != "2*:app:2 1:app:1" {
		t.Fatalf("releases %q", got)
	}
	if err := h.rollbackTo(api.RollbackPrevious); err != nil {
		t.Fatal(err)
	}
	h.mustConverge()
	if got := h.running(); got != "stable:app:1×2" {
		t.Fatalf("running %s, want stable:app:1×2 and no canary", got)
	}
	if got := revs(h.releases()); got != "2:app:2 1*:app:1" {
		t.Fatalf("releases %q", got)
	}
	// Naming another canary image runs it again.
	h.write(fakeManifest("app:1", 2, "  canary: {image: app:3, weight: 20}"))
	h.mustConverge()
	if got := h.running(); got != "stable:app:1×2 canary:app:3×1" {
		t.Errorf("running %s after a new canary", got)
	}
}

// Each listed release's image has a name of its own
// (swiftdeploy-release/SERVICE:REV), so no prune of dangling images
// removes it and a rebuild under its tag does not lose it: a rollback then
// runs the release's own image under that name, not the rebuilt one. The
// name goes when the release falls out of the list.
func TestReleaseImagesKept(t *testing.T) {
	h := threeReleases(t, func(c *Config) { c.KeepReleases = 2 })
	rs := h.releases()
	for _, r := range rs.Releases {
		if got := h.fe.ImageID("swiftdeploy-release/demo/demo:" + strconv.Itoa(r.Rev)); got != r.ImageID {
			t.Errorf("release %d (%s): kept name names %q", r.Rev, r.ImageID, got)
		}
	}
	if got := h.fe.ImageID("swiftdeploy-release/demo/demo:1"); got != "" {
		t.Errorf("release 1 is no longer listed, its name still names %s", got)
	}
	// app:2 rebuilt: the tag names another image now.
	ran := h.fe.ImageID("app:2")
	h.fe.AddImage("app:2")
	if err := h.rollbackTo(api.RollbackPrevious); err != nil {
		t.Fatal(err)
	}
	if got := h.running(); got != "stable:swiftdeploy-release/demo/demo:2×2" {
		t.Fatalf("running %s, want release 2's own image under its kept name", got)
	}
	for _, c := range h.fe.ByTrack("stable") {
		if c.Running() && h.fe.ImageID(c.Image) != ran {
			t.Errorf("%s runs %s, not %s that release 2 ran", c.Name, h.fe.ImageID(c.Image), ran)
		}
	}
	if got := revs(h.releases()); got != "3:app:3 2*:app:2" {
		t.Errorf("releases %q", got)
	}
	// A deploy of the manifest's image again is a new release, and the
	// oldest name goes.
	h.fe.AddImage("app:5")
	h.write(fakeManifest("app:5", 2, ""))
	h.mustConverge()
	if got := revs(h.releases()); got != "4*:app:5 3:app:3" {
		t.Fatalf("releases %q", got)
	}
	if got := h.fe.ImageID("swiftdeploy-release/demo/demo:2"); got != "" {
		t.Errorf("release 2 is no longer listed, its name still names %s", got)
	}
}

// rollback --to is gated like a promotion: the infrastructure policy
// denies it on a busy host before anything is recorded or started; the
// denial is journaled once, and nothing changes.
func TestRollbackToGated(t *testing.T) {
	h := threeReleases(t, nil)
	h.setLoad(busy)
	before := len(h.events())
	err := h.rollbackTo(api.RollbackPrevious)
	var denied *reconciler.DeniedError
	if !errors.As(err, &denied) {
		t.Fatalf("rollback --to on a busy host: %v, want an infrastructure denial", err)
	}
	if got := h.running(); got != "stable:app:3×2" {
		t.Errorf("running %s after a denial", got)
	}
	if st := h.state(); st.Restored != nil || st.Pending != nil {
		t.Errorf("a denied rollback was recorded: %+v", st)
	}
	ev := h.events()[before:]
	if count(ev, journal.EventRollbackFailed) != 1 || count(ev, journal.EventRolledBack) != 0 {
		t.Errorf("events %v: want one rollback_failed, no rolled_back", ev)
	}
	if got := revs(h.releases()); got != "3*:app:3 2:app:2 1:app:1" {
		t.Errorf("releases %q", got)
	}
	h.setLoad(idle)
	if err := h.rollbackTo(api.RollbackPrevious); err != nil {
		t.Fatalf("once the host is idle: %v", err)
	}
}

// A daemon that dies between the write-ahead and nginx serving the
// release settles it at start: not in force, journaled as
// transition_aborted, never as rolled_back; one that dies after nginx
// serves it (committed, the old containers not yet removed) finds it in
// force, journaled once.
func TestRollbackToInterrupted(t *testing.T) {
	tests := []struct {
		name    string
		point   string
		op      reconciler.OpKind
		rolled  int
		aborted int
		running string
		rels    string
	}{
		{name: "before the reload", point: "before", op: reconciler.OpReloadNginx, rolled: 0, aborted: 1,
			running: "stable:app:3×2", rels: "3*:app:3 2:app:2 1:app:1"},
		{name: "after the reload", point: "before", op: reconciler.OpRemoveApp, rolled: 1, aborted: 0,
			running: "stable:app:2×2", rels: "3:app:3 2*:app:2 1:app:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := threeReleases(t, nil)
			before := len(h.events())
			thaw := h.freezeAt(tc.point, tc.op, func() error { return h.rollbackTo(api.RollbackPrevious) })
			if st := h.state(); tc.rolled == 0 && (st.Pending == nil || st.Pending.Kind != kindRestore) {
				t.Fatalf("no write-ahead before the reload: %+v", st)
			}
			// The crash: a new daemon on what the first left.
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
			if got := h.running(); got != tc.running {
				t.Errorf("running %s, want %s", got, tc.running)
			}
			if got := revs(h.releases()); got != tc.rels {
				t.Errorf("releases %q, want %q", got, tc.rels)
			}
			if st := h.state(); st.Pending != nil {
				t.Errorf("still pending: %+v", st.Pending)
			}
			_ = thaw()
		})
	}
}

// A daemon that died after journaling the rollback and before recording
// it (failpoint restore/journaled): state.json holds it pending and
// releases.json still says release 3. The restarted daemon commits it
// without journaling it again, and the release list catches up from the
// journal.
func TestRollbackToJournaledNotRecorded(t *testing.T) {
	h := threeReleases(t, nil)
	relPath := filepath.Join(h.dir, ".swiftdeploy", releases.File)
	before, err := os.ReadFile(relPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.rollbackTo(api.RollbackPrevious); err != nil {
		t.Fatal(err)
	}
	recs := readEvents(t, h)
	txn, _ := recs[lastIndex(recs, journal.EventRolledBack)].Details["txn"].(string)
	st := h.state()
	if txn == "" || st.Restored == nil {
		t.Fatalf("after the rollback: txn %q, state %+v", txn, st)
	}
	st.Pending = &Transition{ID: txn, Kind: kindRestore, Restored: st.Restored, Revision: h.status().Revision, Started: time.Now().UTC()}
	st.Restored = nil
	h.d.mu.Lock()
	h.d.state = st
	if err := h.d.saveStateLocked(); err != nil {
		t.Fatal(err)
	}
	h.d.mu.Unlock()
	h.d.jr.Close()
	if err := os.WriteFile(relPath, before, 0o600); err != nil {
		t.Fatal(err)
	}
	h.d = h.newDaemon()
	h.mustConverge()
	if n := countRecs(readEvents(t, h), journal.EventRolledBack); n != 1 {
		t.Errorf("rolled_back journaled %d times, want once", n)
	}
	if st := h.state(); st.Pending != nil || st.Restored == nil || st.Restored.Rev != 2 {
		t.Errorf("state %+v, want the rollback to 2 committed", st)
	}
	if got, run := revs(h.releases()), h.running(); got != "3:app:3 2*:app:2 1:app:1" || run != "stable:app:2×2" {
		t.Errorf("releases %q, running %s", got, run)
	}
}

// releases.json is a cache of the journal: deleted, it is rebuilt; it
// keeps the last KeepReleases, 0600; a rollback to one no longer listed
// is refused.
func TestReleasesFileRebuiltAndTrimmed(t *testing.T) {
	h := threeReleases(t, func(c *Config) { c.KeepReleases = 2 })
	path := filepath.Join(h.dir, ".swiftdeploy", releases.File)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s is %v, want 0600", path, fi.Mode().Perm())
	}
	if got := revs(h.releases()); got != "3*:app:3 2:app:2" {
		t.Fatalf("releases %q, want the last 2", got)
	}
	if err := h.rollbackTo("1"); err == nil || !strings.Contains(err.Error(), "no release 1 listed") {
		t.Fatalf("rollback to a release no longer listed: %v", err)
	}
	h.d.jr.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	h.d = h.newDaemonWith(func(c *Config) { c.KeepReleases = 2 })
	if got := revs(h.releases()); got != "3*:app:3 2:app:2" {
		t.Fatalf("rebuilt from the journal: %q", got)
	}
}

// On Kubernetes the same control plane records releases (no image ID: the
// nodes pull) and rolls back through the route: the stable Deployment runs
// release 2's image again, journaled once.
func TestKubeRollbackToPrevious(t *testing.T) {
	h, fk := kubeHarness(t, fakeManifest("app:1", 2, ""))
	for _, img := range []string{"app:1", "app:2", "app:3"} {
		h.write(fakeManifest(img, 2, ""))
		if err := h.deploy(); err != nil {
			t.Fatal(err)
		}
	}
	rs := h.releases()
	if got := revs(rs); got != "3*:app:3 2:app:2 1:app:1" {
		t.Fatalf("releases %q", got)
	}
	if r := rs.Releases[0]; r.ImageID != "" || r.Local != nil {
		t.Errorf("a Kubernetes release with a local image: %+v", r)
	}
	if err := h.rollbackTo(api.RollbackPrevious); err != nil {
		t.Fatal(err)
	}
	if got := fk.image("demo-stable"); got != "app:2" {
		t.Fatalf("stable Deployment runs %s, want app:2", got)
	}
	if w := fk.weights("demo"); w["demo-stable"] != 100 {
		t.Errorf("route %v", w)
	}
	if n := count(h.events(), journal.EventRolledBack); n != 1 {
		t.Errorf("rolled_back journaled %d times", n)
	}
	if got := revs(h.releases()); got != "3:app:3 2*:app:2 1:app:1" {
		t.Errorf("releases %q", got)
	}
}

// A rollback restores the release's image; the rest of the spec is the
// manifest's, and the progress says so when it differs from the
// release's (and only then).
func TestRollbackToNotesASpecChange(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		note      bool
	}{
		{name: "same spec", env: "", note: false},
		{name: "env changed since", env: "  env: {FEATURE: \"on\"}", note: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, fakeManifest("app:1", 2, ""))
			h.mustConverge()
			h.write(fakeManifest("app:2", 2, tc.env))
			h.mustConverge()
			var lines []string
			if err := h.d.rollbackTo(context.Background(), "bob", "demo", api.RollbackPrevious, func(l string) { lines = append(lines, l) }); err != nil {
				t.Fatal(err)
			}
			noted := strings.Contains(strings.Join(lines, "\n"), "Note: release 1's image runs with the manifest's env")
			if noted != tc.note {
				t.Errorf("noted %v, want %v: %q", noted, tc.note, lines)
			}
		})
	}
}

// swiftctl releases is role read: it changes nothing, neither a file nor
// the engine's images, even as the first look at the releases of a
// restarted daemon whose releases.json is gone and one of whose kept names
// was removed by hand. Rebuilding the file and naming the image again is
// the reconcile's job (the run lock held), not a reader's.
func TestReleasesReadChangesNothing(t *testing.T) {
	h := threeReleases(t, nil)
	h.d.jr.Close()
	relPath := filepath.Join(h.dir, ".swiftdeploy", releases.File)
	if err := os.Remove(relPath); err != nil {
		t.Fatal(err)
	}
	kept := "swiftdeploy-release/demo/demo:2"
	want := h.fe.ImageID(kept)
	h.fe.RemoveImage(kept)
	h.d = h.newDaemonWith(func(c *Config) { c.Authz = walkAuthz })
	// The restarted daemon's first reconcile: the manifest is the one in
	// force, nothing to apply.
	h.mustConverge()
	if _, err := os.Stat(relPath); err != nil {
		t.Errorf("the reconcile did not write releases.json again: %v", err)
	}
	if got := h.fe.ImageID(kept); got != want {
		t.Errorf("the reconcile did not name release 2's image again: %s names %q, want %s", kept, got, want)
	}

	h.fe.RemoveImage(kept) // removed by hand once more: a reader does not restore it
	h.fe.ResetCalls()
	before := snapshotDir(t, h.dir)
	req := httptest.NewRequest(http.MethodGet, api.PathReleases, nil).
		WithContext(authz.WithPeer(context.Background(), walkPeers[authz.RoleRead]))
	rec := httptest.NewRecorder()
	h.d.server().Handler.ServeHTTP(rec, req)
	var rs api.Releases
	if err := json.Unmarshal(rec.Body.Bytes(), &rs); rec.Code != http.StatusOK || err != nil || revs(rs) != "3*:app:3 2:app:2 1:app:1" {
		t.Fatalf("GET %s as reader: %d %v %q", api.PathReleases, rec.Code, err, revs(rs))
	}
	if m := h.fe.Mutations(); len(m) > 0 {
		t.Errorf("GET %s as reader made the engine do %v", api.PathReleases, m)
	}
	if after := snapshotDir(t, h.dir); !sameFiles(before, after) {
		t.Errorf("GET %s as reader changed files beside the manifest", api.PathReleases)
	}
}

// deployAs is `swiftctl deploy` by the caller of role through the control
// socket's handler: the request waits for the reconcile run here.
func (h *harness) deployAs(role authz.Role) {
	h.t.Helper()
	srv := h.d.server()
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		req := httptest.NewRequest(http.MethodPost, api.PathDeploy, nil).
			WithContext(authz.WithPeer(context.Background(), walkPeers[role]))
		rec := httptest.NewRecorder()
		srv.Handler.ServeHTTP(rec, req)
		done <- rec
	}()
	for !h.d.hasWaiters() {
		time.Sleep(time.Millisecond)
	}
	if err := h.d.reconcileOnce(context.Background()); err != nil {
		h.t.Fatalf("deploy as %s: %v", role, err)
	}
	if rec := <-done; rec.Code != http.StatusOK {
		h.t.Fatalf("deploy as %s: %d %s", role, rec.Code, rec.Body.String())
	}
}

// A release (and its manifest_applied) names who asked for the deploy
// that applied it, and nobody when the manifest watcher applied an edit
// (docs/journal.md): a deploy that changed nothing does not lend its
// caller to the next edit.
func TestReleaseNamesWhoDeployedIt(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	h.d.jr.Close()
	h.d = h.newDaemonWith(func(c *Config) { c.Authz = walkAuthz })
	h.deployAs(authz.RoleOperate) // release 1
	h.deployAs(authz.RoleAdmin)   // nothing to apply: no release
	h.write(fakeManifest("app:2", 2, ""))
	h.mustConverge() // the watcher's reconcile: release 2, nobody's
	rs := h.releases()
	if got := revs(rs); got != "2*:app:2 1:app:1" {
		t.Fatalf("releases %q", got)
	}
	if u := rs.Releases[1].User; u != walkPeers[authz.RoleOperate].User {
		t.Errorf("release 1 names %q, want %q who deployed it", u, walkPeers[authz.RoleOperate].User)
	}
	if u := rs.Releases[0].User; u != "" {
		t.Errorf("release 2, applied by the manifest watcher, names %q", u)
	}
	var applied []journal.Record
	for _, r := range h.records(journal.TypeEvent) {
		if r.Event == journal.EventManifestApplied {
			applied = append(applied, r)
		}
	}
	var users []string
	for _, r := range applied {
		users = append(users, strconv.Quote(r.User))
	}
	if got, want := strings.Join(users, " "), `"operator" ""`; got != want {
		t.Errorf("manifest_applied by %s, want %s", got, want)
	}
}

// A release brought back under its kept name (its tag rebuilt) keeps
// running under that name through later edits of other fields: each is a
// new release of that image, and release 2 falling out of the list must
// not remove the name the stable containers run (a heal then had no image
// to start, and tried to pull it). The name goes once no listed release
// runs under it.
func TestKeptNameInUseNotRemoved(t *testing.T) {
	h := threeReleases(t, func(c *Config) { c.KeepReleases = 2 })
	kept := "swiftdeploy-release/demo/demo:2"
	ran := h.fe.ImageID("app:2")
	h.fe.AddImage("app:2") // rebuilt: the tag names another image
	if err := h.rollbackTo(api.RollbackPrevious); err != nil {
		t.Fatal(err)
	}
	if got := h.running(); got != "stable:"+kept+"×2" {
		t.Fatalf("running %s, want release 2 under %s", got, kept)
	}
	// An env edit: a new release of the same image, and release 2 falls
	// out of the last two.
	h.write(fakeManifest("app:3", 2, "  env: {FEATURE: \"on\"}"))
	h.mustConverge()
	if got := revs(h.releases()); got != "4*:"+kept+" 3:app:3" {
		t.Fatalf("releases %q", got)
	}
	if got := h.fe.ImageID(kept); got != ran {
		t.Fatalf("%s names %q after release 2 fell out of the list, want %s: the stable containers run under it", kept, got, ran)
	}
	// A heal starts that image again.
	h.fe.Kill(h.fe.ByTrack("stable")[0].Name)
	h.mustConverge()
	if got := h.running(); got != "stable:"+kept+"×2" {
		t.Fatalf("after a heal: running %s", got)
	}
	// Once the manifest names another image, and releases 4 falls out, the
	// name goes.
	h.fe.AddImage("app:5", "app:6")
	for _, img := range []string{"app:5", "app:6"} {
		h.write(fakeManifest(img, 2, "  env: {FEATURE: \"on\"}"))
		h.mustConverge()
	}
	if got := revs(h.releases()); got != "6*:app:6 5:app:5" {
		t.Fatalf("releases %q", got)
	}
	for _, name := range []string{kept, "swiftdeploy-release/demo/demo:3", "swiftdeploy-release/demo/demo:4"} {
		if got := h.fe.ImageID(name); got != "" {
			t.Errorf("%s still names %s: no listed release runs under it", name, got)
		}
	}
}

// A rollback --to that fails before anything is recorded (the engine
// stops answering while it plans) changes nothing, and its request does
// not stay open in the journal: rollback_requested is followed by one
// rollback_failed naming the error (docs/journal.md).
func TestRollbackToFailingBeforeTheWriteAheadIsJournaled(t *testing.T) {
	h := threeReleases(t, nil)
	before := len(h.events())
	var checked atomic.Bool
	h.fe.BeforeCall(func(op, target string) {
		switch {
		case op == fake.OpInspectImage:
			checked.Store(true) // the image check is done: rollback_requested comes next
		case op == fake.OpListContainers && checked.Load():
			h.fe.FailNext(op, errors.New("engine stopped answering"))
		}
	})
	err := h.rollbackTo(api.RollbackPrevious)
	h.fe.BeforeCall(nil)
	if err == nil || !strings.Contains(err.Error(), "engine stopped answering") {
		t.Fatalf("rollback --to with the engine failing: %v", err)
	}
	if got := h.running(); got != "stable:app:3×2" {
		t.Errorf("running %s", got)
	}
	if st := h.state(); st.Restored != nil || st.Pending != nil {
		t.Errorf("state %+v", st)
	}
	recs := h.records(journal.TypeEvent)[before:]
	if countRecs(recs, journal.EventRollbackRequested) != 1 || countRecs(recs, journal.EventRollbackFailed) != 1 || countRecs(recs, journal.EventRolledBack) != 0 {
		t.Fatalf("events %v: want rollback_requested, then one rollback_failed", names(recs))
	}
	if failed := recs[lastIndex(recs, journal.EventRollbackFailed)]; !strings.Contains(failed.Message, "engine stopped answering") {
		t.Errorf("rollback_failed %q does not say why", failed.Message)
	}
}

// A rollback --to restores a release's image, not the rest of its spec.
// When that image is what runs already (two releases of one image, the
// env edited in between), nothing would change: it is refused before
// anything is journaled, rather than journaled as rolled_back with the
// current marker moved while the very same containers serve.
func TestRollbackToSameImageChangesNothing(t *testing.T) {
	h := threeReleases(t, nil)
	h.write(fakeManifest("app:3", 2, "  env: {FEATURE: \"on\"}"))
	h.deployBy("alice")
	if got := revs(h.releases()); got != "4*:app:3 3:app:3 2:app:2 1:app:1" {
		t.Fatalf("releases %q", got)
	}
	events, running, ids := len(h.events()), h.running(), h.appIDs()
	err := h.rollbackTo("3")
	if err == nil || !strings.Contains(err.Error(), "nothing would change") {
		t.Fatalf("rollback --to 3 (the image that runs): %v, want a refusal", err)
	}
	if got := h.events(); len(got) != events {
		t.Errorf("journaled %v", got[events:])
	}
	if got := revs(h.releases()); got != "4*:app:3 3:app:3 2:app:2 1:app:1" {
		t.Errorf("releases %q after a refused rollback", got)
	}
	if h.running() != running || !slices.Equal(h.appIDs(), ids) {
		t.Errorf("containers changed: %s %v (were %s %v)", h.running(), h.appIDs(), running, ids)
	}
	if st := h.state(); st.Restored != nil || st.Pending != nil {
		t.Errorf("state %+v", st)
	}
	// Release 2, another image, still comes back.
	if err := h.rollbackTo("2"); err != nil {
		t.Fatal(err)
	}
}

// A deploy asked for while the manifest watcher's reconcile is applying
// the edit asked for what that reconcile applies: the release names its
// caller (its own reconcile then finds nothing to do).
func TestReleaseNamesADeployAskedForDuringTheApply(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	h.mustConverge()
	h.write(fakeManifest("app:2", 2, ""))
	var once sync.Once
	errc := make(chan error, 1)
	h.fe.BeforeCall(func(op, target string) {
		if op != fake.OpRun {
			return
		}
		once.Do(func() {
			go func() { errc <- h.d.waitAs(context.Background(), "carol", nil) }()
			for !h.d.hasWaiters() {
				time.Sleep(time.Millisecond)
			}
		})
	})
	h.mustConverge() // the watcher's reconcile; carol's deploy arrives during it
	h.fe.BeforeCall(nil)
	if err := h.reconcile(); err != nil { // the reconcile carol waits for
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	rs := h.releases()
	if got := revs(rs); got != "2*:app:2 1:app:1" {
		t.Fatalf("releases %q", got)
	}
	if u := rs.Releases[0].User; u != "carol" {
		t.Errorf("release 2 names %q, want carol, whose deploy arrived while it was applied", u)
	}
}
