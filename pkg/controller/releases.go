package controller

// Releases: the controller's side of the release book (pkg/releases). The
// book decides (which revision is next, which release `rollback --to`
// names, what a pruned release lets go of); here it is loaded once and
// saved under relMu, a release is journaled in the record of the event
// that made it take effect (journal.go's manifest_applied, rollout.go's
// promoted) and noted in the book after, and the engine keeps the images
// of listed releases under their kept names.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/releases"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// DefaultKeepReleases is how many releases of a service are listed (and
// their images kept) unless Config.KeepReleases says otherwise.
const DefaultKeepReleases = releases.DefaultKeep

// serviceName is the name of m's primary service as releases know it:
// the project's in the seed form (its single service), the primary's
// (manifest.Primary) in the named form. Every place that maps a SERVICE
// argument to a service goes through it and serviceNames.
func serviceName(m *manifest.Manifest) string {
	if name, _ := m.Primary(); m.IsNamed() && name != "" {
		return name
	}
	return m.Project
}

// serviceNames lists m's services as releases know them: the seed's
// single one under the project's name, or every named service (each has
// releases of its own, kept under its name).
func serviceNames(m *manifest.Manifest) []string {
	if m.IsNamed() {
		return m.ServiceNames()
	}
	return []string{serviceName(m)}
}

// resolveService maps the SERVICE argument to a service of m: empty means
// the only one.
func resolveService(m *manifest.Manifest, arg string) (string, error) {
	names := serviceNames(m)
	if arg == "" {
		if len(names) == 1 {
			return names[0], nil
		}
		return "", fmt.Errorf("the manifest has %d services (%v): name one", len(names), names)
	}
	for _, n := range names {
		if n == arg {
			return n, nil
		}
	}
	return "", fmt.Errorf("no service %q in the manifest: its services are %v", arg, names)
}

func (d *Daemon) keepReleases() int {
	if d.cfg.KeepReleases > 0 {
		return d.cfg.KeepReleases
	}
	return DefaultKeepReleases
}

// loadReleases reads releases.json and brings it up to date with the
// journal: a release journaled by a daemon that died before writing the
// file, or a file deleted, is rebuilt from the records. Once per daemon.
// It changes nothing on disk or on the engine: a reader (swiftctl
// releases, role read) may be the first to call it; settleReleases, from
// the reconcile, writes what it rebuilt.
func (d *Daemon) loadReleases() (*releases.Book, error) {
	d.relMu.Lock()
	defer d.relMu.Unlock()
	if d.releases != nil {
		return d.releases, nil
	}
	b, err := releases.ReadFile(d.stateDir)
	switch {
	case errors.Is(err, releases.ErrUnreadable):
		d.log.Warn("releases.json unreadable; rebuilding it from the journal", zap.Error(err))
	case err != nil:
		return nil, err
	}
	_ = d.jr.Flush()
	if err := b.CatchUp(d.journalPath(), d.keepReleases()); err != nil {
		return nil, err
	}
	d.releases = b
	return b, nil
}

// releasesFor is loadReleases for a reader of m's releases. It renames
// nothing: which service continues the releases recorded under the
// project's name is decided once, when a manifest of the named form has
// taken effect (continueLegacy), never from a manifest read. Callers do
// not hold d.mu or d.relMu.
func (d *Daemon) releasesFor(_ *manifest.Manifest) (*releases.Book, error) {
	return d.loadReleases()
}

// continueLegacy, when the named form m has just taken effect (called by
// manifestTookEffect before m's releases are made, so the continuing
// service's next revision follows the project's; callers hold d.runMu),
// decides which of m's services continues the releases recorded under
// the project's name (the seed form's single service): the one whose
// image is that of the project's current release (releases.Book.
// Continuing). The book renames them and det, the details of the
// manifest_applied record about to be journaled, carries the rename: a
// book rebuilt from the journal alone renames the same. When no service
// runs that image, they are kept under a name no service has, listed for
// none and never rolled back to: a guess would run another service's
// image. Once per book.
func (d *Daemon) continueLegacy(m *manifest.Manifest, det map[string]any) {
	if !m.IsNamed() {
		return
	}
	b, err := d.loadReleases()
	if err != nil {
		return // newRelease says why
	}
	images := map[string]string{}
	for _, svc := range m.ServiceNames() {
		images[svc] = m.Named[svc].Image
	}
	primary, _ := m.Primary()
	d.relMu.Lock()
	to, retired, why, ok := b.Continuing(m.Project, images, primary)
	if ok {
		b.RenameAt(m.Project, to, time.Now())
		// The next reconcile keeps their images under their new names
		// (settleReleases) and writes releases.json.
		d.relSettled = false
	}
	d.relMu.Unlock()
	if !ok {
		return
	}
	releases.PutContinues(det, m.Project, to)
	if retired {
		d.log.Warn("releases of the seed form continued by no service", zap.String("project", m.Project), zap.String("why", why))
		return
	}
	d.log.Info("releases of the seed form continued by a service of the named form", zap.String("project", m.Project), zap.String("service", to))
}

// settleReleases, once per daemon and from the reconcile (callers hold
// d.runMu), writes releases.json as loaded (rebuilt from the journal when
// it was missing or behind) and names every listed release's image again
// (a name removed by hand since is made again).
func (d *Daemon) settleReleases(ctx context.Context) {
	b, err := d.loadReleases()
	if err != nil {
		d.log.Warn("releases not loaded; they are rebuilt from the journal at the next look", zap.Error(err))
		return
	}
	type listed struct {
		service string
		r       api.Release
	}
	var keep []listed
	d.relMu.Lock()
	if d.relSettled {
		d.relMu.Unlock()
		return
	}
	d.relSettled = true
	logErr(d.log, "save releases", releases.WriteFile(d.stateDir, d.releases))
	renamedFrom := map[string][]string{}
	for from, to := range b.Renamed {
		renamedFrom[to] = append(renamedFrom[to], from)
	}
	for svc, sb := range b.Services {
		for _, r := range sb.Releases {
			keep = append(keep, listed{svc, r})
		}
	}
	d.relMu.Unlock()
	for _, k := range keep {
		d.keepImage(ctx, k.service, k.r)
		for _, from := range renamedFrom[k.service] {
			d.dropRenamedName(ctx, from, k.r)
		}
	}
}

// dropRenamedName removes the name that kept r while its service's
// releases were recorded under from (releases.Book.Rename), once r is kept
// under its service's name: else that name would keep the image after r
// is no longer listed.
func (d *Daemon) dropRenamedName(ctx context.Context, from string, r api.Release) {
	if !d.localImages() || r.ImageID == "" {
		return
	}
	old := releases.KeepRef(d.releaseProject(from), from, r.Rev)
	if img, err := d.eng.InspectImage(ctx, old); err != nil || img.ID != r.ImageID || old == r.Image {
		return
	}
	if now, err := d.eng.InspectImage(ctx, d.keepRef(r.Service, r.Rev)); err != nil || now.ID != r.ImageID {
		return // not kept under its new name: the old one still keeps it
	}
	if err := d.eng.UntagImage(ctx, old); err != nil {
		d.log.Warn("name of a renamed release not removed", zap.Int("rev", r.Rev), zap.String("name", old), zap.Error(err))
	}
}

// localImages: the target runs images of this host's Docker Engine, so a
// release has an image ID, its image is kept, and a rollback checks it is
// there. On Kubernetes the nodes pull: none of that applies.
func (d *Daemon) localImages() bool { return d.kt == nil && d.eng != nil }

// releaseProject is the project whose kept names hold service's images:
// the manifest's. Callers do not hold d.mu.
func (d *Daemon) releaseProject(service string) string {
	if m := d.manifestNow(); m != nil {
		return m.Project
	}
	return service
}

// keepRef is the name that keeps release rev of service on the host while
// it is listed (releases.KeepRef). Callers do not hold d.mu.
func (d *Daemon) keepRef(service string, rev int) string {
	return releases.KeepRef(d.releaseProject(service), service, rev)
}

// keepImage names r's image with keepRef. Best effort: a release whose
// image was not inspected (no ID) or cannot be named is still listed; a
// rollback to it then needs its own tag to still name it.
func (d *Daemon) keepImage(ctx context.Context, service string, r api.Release) {
	if !d.localImages() || r.ImageID == "" {
		return
	}
	ref := d.keepRef(service, r.Rev)
	if img, err := d.eng.InspectImage(ctx, ref); err == nil && img.ID == r.ImageID {
		return
	}
	if err := d.eng.TagImage(ctx, r.ImageID, ref); err != nil {
		d.log.Warn("release image not kept", zap.String("image", r.Image), zap.Int("rev", r.Rev), zap.Error(err))
	}
}

// dropImage lets go of the names that kept a release no longer listed
// (releases.Unkeep): its image goes if nothing else names or runs it.
func (d *Daemon) dropImage(ctx context.Context, service string, r api.Release, inUse map[string]bool, renamedFrom []string) {
	if !d.localImages() {
		return
	}
	own := d.keepRef(service, r.Rev)
	for _, ref := range releases.Unkeep(d.releaseProject(service), service, r, inUse, renamedFrom...) {
		if ref != own && ref != r.Image {
			// A name r had before its service's releases were renamed:
			// removed only while it still names r's image (a service
			// named like the project keeps its own under that name).
			if img, err := d.eng.InspectImage(ctx, ref); err != nil || r.ImageID == "" || img.ID != r.ImageID {
				continue
			}
		}
		if err := d.eng.UntagImage(ctx, ref); err != nil {
			d.log.Warn("name of a release no longer listed not removed", zap.Int("rev", r.Rev), zap.String("name", ref), zap.Error(err))
		}
	}
}

// noteReleased records a journaled release (or several, or a rollback to
// one, applied by the same replay) in the book and its file, and keeps
// the images of the releases it lists.
func (d *Daemon) noteReleased(rec journal.Record) {
	if rec.Timestamp.IsZero() {
		// Made now: after any rename (releases.Book.RenameAt).
		rec.Timestamp = time.Now().UTC()
	}
	if _, err := d.loadReleases(); err != nil {
		d.log.Warn("releases not loaded; they are rebuilt from the journal at the next look")
		return
	}
	d.relMu.Lock()
	dropped := d.releases.Replay(rec, d.keepReleases())
	logErr(d.log, "save releases", releases.WriteFile(d.stateDir, d.releases))
	made := releases.InRecord(rec)
	for i, r := range made {
		made[i].Service = d.releases.Name(r.Service)
	}
	inUse := map[string]map[string]bool{}
	renamedFrom := map[string][]string{}
	for _, r := range append(append([]api.Release(nil), made...), dropped...) {
		if inUse[r.Service] == nil {
			inUse[r.Service] = d.releases.Service(r.Service).InUse()
			renamedFrom[r.Service] = d.releases.RenamedFrom(r.Service)
		}
	}
	d.relMu.Unlock()
	for _, r := range made {
		d.keepImage(context.Background(), r.Service, r)
	}
	for _, old := range dropped {
		d.dropImage(context.Background(), old.Service, old, inUse[old.Service], renamedFrom[old.Service])
	}
}

// stableSpec is the stable image and its spec hash of m's primary service
// under s: the one a promotion acts on.
func stableSpec(m *manifest.Manifest, s State) (image, specHash string) {
	return stableSpecOf(m, s, serviceName(m))
}

// stableSpecOf is the stable image and its spec hash of service (as
// serviceNames names it) under s; empty when it runs no container.
func stableSpecOf(m *manifest.Manifest, s State, service string) (image, specHash string) {
	st := stack.FromManifest(m, s.Options(m))
	apps := st.MainStable()
	if m.IsNamed() {
		apps = nil
		if svc := st.Service(service); svc != nil {
			apps = svc.Stable
		}
	}
	if len(apps) == 0 {
		return "", ""
	}
	return apps[0].Image, apps[0].Hash
}

// newRelease is the next release of service if image under specHash is
// not what is in force already (ok false then). It inspects the image
// (Docker) for its ID and digest. It changes nothing: the caller journals
// it and then calls noteReleased.
func (d *Daemon) newRelease(ctx context.Context, service, image, specHash, user, cause string) (api.Release, bool) {
	b, err := d.loadReleases()
	if err != nil {
		d.log.Warn("releases not loaded: this release is not recorded")
		return api.Release{}, false
	}
	d.relMu.Lock()
	rev, ok := b.Service(service).Next(image, specHash)
	d.relMu.Unlock()
	if !ok {
		return api.Release{}, false
	}
	r := api.Release{Rev: rev, Service: service, Image: image, SpecHash: specHash, At: time.Now().UTC(), User: user, Cause: cause}
	if d.localImages() {
		if img, err := d.eng.InspectImage(ctx, image); err == nil {
			r.ImageID, r.Digest = img.ID, img.Digest()
		}
	}
	return r, true
}

// releasesOf lists service's releases, newest first, with the current
// marker and whether each image is still on the host.
func (d *Daemon) releasesOf(ctx context.Context, service string) (api.Releases, error) {
	b, err := d.loadReleases()
	if err != nil {
		return api.Releases{}, err
	}
	d.relMu.Lock()
	list := b.Service(service).List()
	d.relMu.Unlock()
	if d.localImages() {
		for i, r := range list {
			_, err := d.runRef(ctx, service, r)
			local := err == nil
			list[i].Local = &local
		}
	}
	return api.Releases{Service: service, Keep: d.keepReleases(), Releases: list}, nil
}

// runRef is the name a rollback to r runs: r's own image while its tag
// still names the image r ran, else the name that kept it (keepRef) when
// that still does. Never a pull: an image on neither name is an error
// naming it.
func (d *Daemon) runRef(ctx context.Context, service string, r api.Release) (string, error) {
	img, err := d.eng.InspectImage(ctx, r.Image)
	if err == nil && (r.ImageID == "" || img.ID == r.ImageID) {
		return r.Image, nil
	}
	if r.ImageID != "" {
		ref := d.keepRef(service, r.Rev)
		if kept, kerr := d.eng.InspectImage(ctx, ref); kerr == nil && kept.ID == r.ImageID {
			return ref, nil
		}
	}
	if err == nil {
		return "", fmt.Errorf("image %s now names %s, not %s that release %d ran (rebuilt or retagged), and that image is no longer on this host: a rollback does not pull", r.Image, img.ID, r.ImageID, r.Rev)
	}
	return "", fmt.Errorf("image %s of release %d is not on this host (%v): a rollback does not pull; pull or build it and retry", r.Image, r.Rev, err)
}
