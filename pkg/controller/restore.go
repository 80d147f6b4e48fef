package controller

// Rollback to an earlier release (swiftctl rollback --to previous|REV):
// the release's image becomes stable again through the transaction a
// promotion uses (transact): gated by the infrastructure policy when it is
// applied, written ahead once allowed, committed and journaled once
// (rolled_back with from_rev and to_rev) the moment nginx serves it. The
// new stable containers start and pass their health check before nginx
// switches to them and the old ones drain, so no request fails; the image
// is on the host already (checked first), so nothing is pulled.
//
// In the named form every service has releases: the primary's restore is
// State.Restored (as the seed's), another service's State.Restores, which
// changes that service's image only (stack.Options.ServiceImages). Nginx's
// revision covers every stable container's name (its status block), so a
// worker's or accessory's new containers are in Docker's commit predicate
// too; a Kubernetes route never sends traffic to them, so there such a
// rollback also waits for the service's own workload to roll out the
// image, and an interrupted one is settled from that workload alone
// (restoredRuns).

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// rollbackTo brings release `to` ("previous" or a revision) of service
// back as stable.
func (d *Daemon) rollbackTo(ctx context.Context, user, service, to string, progress reconciler.Progress) error {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	m, err := d.transitionStart(ctx)
	if err != nil {
		return err
	}
	svc, err := resolveService(m, service)
	if err != nil {
		return err
	}
	b, err := d.releasesFor(m)
	if err != nil {
		return err
	}
	d.relMu.Lock()
	rel, fromRev, err := b.Choose(svc, to, d.keepReleases())
	d.relMu.Unlock()
	if err != nil {
		return err
	}
	key := "" // the service's own canary (canaries.go): several may run one
	if svc != serviceName(m) {
		key = svc
	}
	sv, err := d.target.ServingOf(ctx, m, key)
	if err != nil {
		return err
	}
	if sv.CanaryRunning || sv.CanaryLive {
		return fmt.Errorf("a canary is running (of %s): promote it or drop it (swiftctl rollback %s) before rolling back to an earlier release", svc, svc)
	}
	// No pull: the image must be on the host, and still be the image the
	// release ran. Checked before anything is journaled or changed.
	run := rel.Image
	if d.localImages() {
		if run, err = d.runRef(ctx, svc, rel); err != nil {
			return err
		}
		if run != rel.Image {
			progress(fmt.Sprintf("%s now names another image: running release %d's own image, kept as %s", rel.Image, rel.Rev, run))
		}
	}
	now := time.Now().UTC()
	restore := &Restore{Service: svc, Rev: rel.Rev, FromRev: fromRev, Image: run, ImageID: rel.ImageID, Digest: rel.Digest,
		ReleaseImage: rel.Image, ManifestStable: m.Main().Image, At: now, User: user}
	t := &Transition{ID: newID(), Kind: kindRestore, Project: m.Project, Started: now, User: user}
	if svc == serviceName(m) {
		t.Restored = restore
		if c := m.Main().Canary; c != nil {
			// The canary the manifest still declares (promoted, or dropped)
			// must not start again beside the release brought back: it stays
			// dropped until the manifest names another canary image.
			t.RolledBack = &Rollback{Service: canaryName(m, ""), CanaryImage: c.Image, At: now, User: user}
		}
	} else {
		// Another service of the named form: its image only; the
		// primary's decisions, and the other services, stay as they are.
		restore.ManifestStable = m.Named[svc].Image
		t.ServiceRestored = restore
		if c := m.Named[svc].Canary; c != nil {
			// As the primary's: its canary (promoted, or dropped) stays
			// dropped beside the release brought back.
			t.RolledBack = &Rollback{Service: svc, CanaryImage: c.Image, At: now, User: user}
		}
	}
	// The spec in force once it takes effect; and whether the manifest's
	// env, port and resources differ from the release's (judged under the
	// release's own image name, not the kept one).
	asRelease := *t
	asRestore := &Restore{Service: svc, ManifestStable: restore.ManifestStable, Image: rel.Image}
	if t.Restored != nil {
		asRelease.Restored = asRestore
	} else {
		asRelease.ServiceRestored = asRestore
	}
	d.mu.Lock()
	_, spec := stableSpecOf(m, d.state.with(t), svc)
	_, specAsRelease := stableSpecOf(m, d.state.with(&asRelease), svc)
	_, specNow := stableSpecOf(m, d.state, svc)
	d.mu.Unlock()
	if spec == specNow {
		// Only the image comes back, and it is what runs: journaling a
		// rollback would report a change that never happened.
		return fmt.Errorf("--to: release %d's image %s runs as stable already, with the manifest's env, port and resources (a rollback brings back the image only): nothing would change", rel.Rev, rel.Image)
	}
	restore.SpecHash = spec
	if specAsRelease != rel.SpecHash {
		progress(fmt.Sprintf("Note: release %d's image runs with the manifest's env, port and resources, which differ from the release's (spec %s, the release had %s)",
			rel.Rev, short(specAsRelease), short(rel.SpecHash)))
	}
	d.event(journal.EventRollbackRequested, fmt.Sprintf("rollback of %s to release %d (%s) requested", svc, rel.Rev, rel.Image), user,
		map[string]any{"service": svc, "from_rev": fromRev, "to_rev": rel.Rev, "image": rel.Image})
	err = d.transact(ctx, m, t, progress)
	var denied *reconciler.DeniedError
	var nr notRecorded
	switch {
	case errors.As(err, &nr) && errors.As(err, &denied):
		// Denied before anything was recorded: nothing changed; say so
		// once (a failure after the write-ahead is journaled by abort).
		d.event(journal.EventRollbackFailed, fmt.Sprintf("rollback of %s to release %d denied: %s", svc, rel.Rev, strings.Join(denied.Reasons, "; ")), user,
			map[string]any{"service": svc, "to_rev": rel.Rev, "reasons": denied.Reasons, "policy": d.gatePolicy()})
	case errors.As(err, &nr):
		// Failed before anything was recorded (no plan, blocked, no
		// write-ahead): nothing changed; the request ends here, once.
		d.event(journal.EventRollbackFailed, fmt.Sprintf("rollback of %s to release %d did not take effect: %v", svc, rel.Rev, err), user,
			map[string]any{"service": svc, "to_rev": rel.Rev})
	}
	if err != nil {
		return err
	}
	progress(fmt.Sprintf("Rolled back %s to release %d (%s): all traffic on it", svc, rel.Rev, rel.Image))
	return nil
}

// restoredRuns is the commit predicate of a rollback of a service other
// than the primary (t.ServiceRestored) on a target whose route does not
// cover that service's workload (targets.WorkloadReader: Kubernetes): the
// workload, read by its name, has rolled out the restored image. own is
// false, and the verdict yes, for every other transition, and on Docker,
// where nginx's revision names every stable container (their names carry
// the spec hash), a worker's and an accessory's too: the route's
// predicate covers the service there, and nothing more is looked at.
//
// The look is detached from ctx, and bounded: a client that hung up
// must not leave a rollback that took effect uncommitted (an unknown
// verdict) until its apply has drained what no longer serves.
func (d *Daemon) restoredRuns(ctx context.Context, m *manifest.Manifest, t *Transition) (v targets.Verdict, own bool) {
	r := t.ServiceRestored
	wr, ok := d.target.(targets.WorkloadReader)
	if t.Kind != kindRestore || r == nil || !ok {
		return targets.ServesYes, false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoredLookTimeout)
	defer cancel()
	runs, err := wr.WorkloadRuns(ctx, m, r.Service, r.Image)
	switch {
	case err != nil:
		d.log.Warn("cannot tell whether the rolled back service runs its release", zap.String("service", r.Service), zap.Error(err))
		return targets.ServesUnknown, true
	case !runs:
		return targets.ServesNo, true
	}
	return targets.ServesYes, true
}

// restoredLookTimeout bounds restoredRuns' look at the cluster (its
// informers' cache, or the API while they list).
const restoredLookTimeout = 30 * time.Second

// bothServe is the verdict of two predicates that must both hold: no
// when either says no, unknown when either cannot tell.
func bothServe(a, b targets.Verdict) targets.Verdict {
	switch {
	case a == targets.ServesNo || b == targets.ServesNo:
		return targets.ServesNo
	case a == targets.ServesUnknown || b == targets.ServesUnknown:
		return targets.ServesUnknown
	}
	return targets.ServesYes
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// restoreEvent is the rolled_back record of a committed rollback to a
// release: image is the release's, run the name it runs under (the kept
// name when the image's own tag has moved on).
func restoreEvent(t *Transition) journal.Record {
	r := t.restore()
	det := map[string]any{"service": r.Service, "from_rev": r.FromRev, "to_rev": r.Rev, "image": r.ReleaseImage,
		"digest": r.Digest, "spec_hash": r.SpecHash, "txn": t.ID}
	if r.Image != r.ReleaseImage {
		det["run"] = r.Image
	}
	return journal.Record{Event: journal.EventRolledBack,
		Message: fmt.Sprintf("%s rolled back from release %d to release %d (%s); all traffic on it", r.Service, r.FromRev, r.Rev, r.ReleaseImage),
		User:    t.User, Details: det}
}
