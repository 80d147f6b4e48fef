package controller

// Releases: every stable release that took effect, as a projection of the
// journal. A release rides in the record of the event that made it take
// effect (details.release of manifest_applied or promoted), so it is
// journaled exactly once, atomically with that event; a rollback to one
// is `rolled_back` with from_rev and to_rev. releases.json beside
// state.json (0600) keeps the last Keep releases of each service across
// the journal's retention; it is written after the journal and, when
// missing or behind, rebuilt from the journal at load.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

const (
	releasesFile = "releases.json"
	// DefaultKeepReleases is how many releases of a service are listed
	// (and their images kept) unless Config.KeepReleases says otherwise.
	DefaultKeepReleases = 5
	// Causes of a release.
	causeDeploy  = "deploy"
	causePromote = "promote"
)

// serviceName is the name of m's single service: the project's. Every
// place that maps a SERVICE argument to a service goes through it and
// serviceNames, so a manifest of several services only changes them.
func serviceName(m *manifest.Manifest) string { return m.Project }

// serviceNames lists m's services.
func serviceNames(m *manifest.Manifest) []string { return []string{serviceName(m)} }

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

// serviceBook is one service's releases.
type serviceBook struct {
	// Releases, oldest first, the last Keep of them.
	Releases []api.Release `json:"releases"`
	// LastRev is the highest revision ever given (kept when the oldest
	// release is dropped, so a revision is never reused).
	LastRev int `json:"last_rev"`
	// Current is the revision in force: the newest release, or the one a
	// rollback brought back.
	Current int `json:"current"`
	// Image and SpecHash are what runs as stable in force: the current
	// release's image under the manifest's spec (a rollback restores the
	// image, not the rest of the spec). A deploy whose stable differs is
	// a new release.
	Image    string `json:"image"`
	SpecHash string `json:"spec_hash"`
}

// releaseBook is the releases of every service.
type releaseBook struct {
	Services map[string]*serviceBook `json:"services"`
}

func (b *releaseBook) service(name string) *serviceBook {
	if b.Services == nil {
		b.Services = map[string]*serviceBook{}
	}
	s := b.Services[name]
	if s == nil {
		s = &serviceBook{}
		b.Services[name] = s
	}
	return s
}

// add records r (idempotent: a revision already known is kept as is) and
// makes it current. It returns the releases that fell out of the last
// keep.
func (s *serviceBook) add(r api.Release, keep int) []api.Release {
	r.Current, r.Local = false, nil
	known := false
	for _, have := range s.Releases {
		if have.Rev == r.Rev {
			known = true
		}
	}
	if !known {
		s.Releases = append(s.Releases, r)
		sort.Slice(s.Releases, func(i, j int) bool { return s.Releases[i].Rev < s.Releases[j].Rev })
	}
	if r.Rev > s.LastRev {
		s.LastRev = r.Rev
	}
	if r.Rev >= s.Current {
		s.Current, s.Image, s.SpecHash = r.Rev, r.Image, r.SpecHash
	}
	return s.trim(keep)
}

// restored makes rev current again, with what now runs.
func (s *serviceBook) restored(rev int, image, specHash string) {
	s.Current, s.Image, s.SpecHash = rev, image, specHash
}

func (s *serviceBook) trim(keep int) (dropped []api.Release) {
	if keep > 0 && len(s.Releases) > keep {
		dropped = append(dropped, s.Releases[:len(s.Releases)-keep]...)
		s.Releases = append([]api.Release(nil), s.Releases[len(s.Releases)-keep:]...)
	}
	return dropped
}

func (s *serviceBook) find(rev int) (api.Release, bool) {
	for _, r := range s.Releases {
		if r.Rev == rev {
			return r, true
		}
	}
	return api.Release{}, false
}

// previous is the release before the current one.
func (s *serviceBook) previous() (api.Release, bool) {
	var prev api.Release
	ok := false
	for _, r := range s.Releases {
		if r.Rev < s.Current {
			prev, ok = r, true
		}
	}
	return prev, ok
}

// releaseDetails is a release as it rides in a journal record.
func releaseDetails(r api.Release) map[string]any {
	r.Current, r.Local = false, nil
	var out map[string]any
	b, _ := json.Marshal(r)
	_ = json.Unmarshal(b, &out)
	return out
}

func releaseOfDetails(v any) (api.Release, bool) {
	var r api.Release
	b, err := json.Marshal(v)
	if err != nil || json.Unmarshal(b, &r) != nil || r.Rev <= 0 || r.Service == "" {
		return api.Release{}, false
	}
	return r, true
}

// replay applies one journal record to b. It returns the releases that
// fell out of the list.
func (b *releaseBook) replay(rec journal.Record, keep int) (dropped []api.Release) {
	switch rec.Event {
	case journal.EventManifestApplied, journal.EventPromoted:
		if r, ok := releaseOfDetails(rec.Details["release"]); ok {
			return b.service(r.Service).add(r, keep)
		}
	case journal.EventRolledBack:
		svc, _ := rec.Details["service"].(string)
		to := intOf(rec.Details["to_rev"])
		if svc == "" || to <= 0 {
			return nil // a canary's rollback
		}
		// What runs: the release's image, or the name that kept it when
		// its tag has moved on.
		image, _ := rec.Details["image"].(string)
		if run, _ := rec.Details["run"].(string); run != "" {
			image = run
		}
		spec, _ := rec.Details["spec_hash"].(string)
		b.service(svc).restored(to, image, spec)
	}
	return nil
}

// intOf reads a number of a record's details: an int as journaled, a
// float64 as read back.
func intOf(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case float64:
		return int(n)
	}
	return 0
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
func (d *Daemon) loadReleases() (*releaseBook, error) {
	d.relMu.Lock()
	defer d.relMu.Unlock()
	if d.releases != nil {
		return d.releases, nil
	}
	b := &releaseBook{}
	path := filepath.Join(d.stateDir, releasesFile)
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read releases: %w", err)
	default:
		if err := json.Unmarshal(raw, b); err != nil {
			d.log.Warn("releases.json unreadable; rebuilding it from the journal")
			b = &releaseBook{}
		}
	}
	_ = d.jr.Flush()
	keep := d.keepReleases()
	err = journal.Read(d.journalPath(), journal.Filter{Types: []string{journal.TypeEvent},
		Events: []string{journal.EventManifestApplied, journal.EventPromoted, journal.EventRolledBack}}, func(r journal.Record) error {
		b.replay(r, keep)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read releases from the journal: %w", err)
	}
	d.releases = b
	return b, nil
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
	logErr(d.log, "save releases", d.saveReleasesLocked())
	for svc, sb := range b.Services {
		for _, r := range sb.Releases {
			keep = append(keep, listed{svc, r})
		}
	}
	d.relMu.Unlock()
	for _, k := range keep {
		d.keepImage(ctx, k.service, k.r)
	}
}

// localImages: the target runs images of this host's Docker Engine, so a
// release has an image ID, its image is kept, and a rollback checks it is
// there. On Kubernetes the nodes pull: none of that applies.
func (d *Daemon) localImages() bool { return d.kt == nil && d.eng != nil }

// keepRef is the name that keeps release rev of service on the host while
// it is listed, swiftdeploy-release/PROJECT/SERVICE:REV: a named image is
// never dangling, so no prune of dangling images removes it, and it
// survives its own tag moving on (a rebuild). Callers do not hold d.mu.
func (d *Daemon) keepRef(service string, rev int) string {
	project := service
	if m := d.manifestNow(); m != nil {
		project = m.Project
	}
	return fmt.Sprintf("%s/%s/%s:%d", KeepRepository, project, service, rev)
}

// KeepRepository is the repository of the names that keep the images of
// listed releases (keepRef).
const KeepRepository = "swiftdeploy-release"

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
// (its own, and the kept name it ran under when it was made while a
// rollback ran one): its image goes if nothing else names or runs it. A
// name inUse (what a listed release, or the stable in force, runs under)
// stays: the stable containers run under it, and a heal or a replica more
// needs it.
func (d *Daemon) dropImage(ctx context.Context, service string, r api.Release, inUse map[string]bool) {
	if !d.localImages() {
		return
	}
	names := []string{d.keepRef(service, r.Rev)}
	if strings.HasPrefix(r.Image, KeepRepository+"/") && r.Image != names[0] {
		names = append(names, r.Image)
	}
	for _, ref := range names {
		if inUse[ref] {
			continue
		}
		if err := d.eng.UntagImage(ctx, ref); err != nil {
			d.log.Warn("name of a release no longer listed not removed", zap.Int("rev", r.Rev), zap.String("name", ref), zap.Error(err))
		}
	}
}

// saveReleasesLocked writes releases.json; callers hold d.relMu.
func (d *Daemon) saveReleasesLocked() error {
	b, err := json.MarshalIndent(d.releases, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.stateDir, 0o750); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(d.stateDir, releasesFile), b, 0o600)
}

// noteReleased records a journaled release (or a rollback to one, applied
// by the same replay) in the book and its file.
func (d *Daemon) noteReleased(rec journal.Record) {
	if _, err := d.loadReleases(); err != nil {
		d.log.Warn("releases not loaded; they are rebuilt from the journal at the next look")
		return
	}
	d.relMu.Lock()
	dropped := d.releases.replay(rec, d.keepReleases())
	logErr(d.log, "save releases", d.saveReleasesLocked())
	r, isRelease := releaseOfDetails(rec.Details["release"])
	inUse := map[string]bool{}
	if isRelease {
		sb := d.releases.service(r.Service)
		inUse[sb.Image] = true
		for _, listed := range sb.Releases {
			inUse[listed.Image] = true
		}
	}
	d.relMu.Unlock()
	if isRelease {
		d.keepImage(context.Background(), r.Service, r)
		for _, old := range dropped {
			d.dropImage(context.Background(), r.Service, old, inUse)
		}
	}
}

// stableSpec is the stable image and its spec hash m runs under s.
func stableSpec(m *manifest.Manifest, s State) (image, specHash string) {
	// The primary service's: in the named form, the one a promotion or a
	// rollback acts on.
	st := stack.FromManifest(m, s.Options(m)).MainStable()
	if len(st) == 0 {
		return "", ""
	}
	return st[0].Image, st[0].Hash
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
	sb := b.service(service)
	same := sb.Image == image && sb.SpecHash == specHash
	rev := sb.LastRev + 1
	d.relMu.Unlock()
	if same || image == "" {
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
	sb := b.service(service)
	list := append([]api.Release(nil), sb.Releases...)
	cur := sb.Current
	d.relMu.Unlock()
	out := api.Releases{Service: service, Keep: d.keepReleases(), Releases: []api.Release{}}
	for i := len(list) - 1; i >= 0; i-- {
		r := list[i]
		r.Current = r.Rev == cur
		if d.localImages() {
			_, err := d.runRef(ctx, service, r)
			local := err == nil
			r.Local = &local
		}
		out.Releases = append(out.Releases, r)
	}
	return out, nil
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
