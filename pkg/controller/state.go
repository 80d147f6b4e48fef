package controller

// The recorded state: the decisions (a promotion, a rollback, the step
// of a canary) that refine the manifest, and the transition in flight.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/analysis"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// eventDown journals `swiftctl down`.
const eventDown = "down"

// State records the decisions that refine the manifest, the way Argo
// Rollouts keeps the stable revision in status: the manifest says which
// versions are wanted, the daemon remembers which one was promoted to
// stable (or which canary was rolled back) until the manifest catches up.
// A decision is recorded only once it has taken effect.
type State struct {
	Promoted   *Promotion `json:"promoted,omitempty"`
	RolledBack *Rollback  `json:"rolled_back,omitempty"`
	// Restored is a rollback to an earlier release (swiftctl rollback
	// --to): its image runs as stable while the manifest still names
	// ManifestStable as services.image.
	Restored *Restore `json:"restored,omitempty"`
	// Restores are the rollbacks to an earlier release of the named
	// form's other services (not the primary, whose is Restored), keyed
	// by service: each one's image runs while the manifest still names
	// its ManifestStable as services.NAME.image.
	Restores map[string]*Restore `json:"service_restores,omitempty"`
	// Down is set by `swiftctl down` and cleared by the next deploy: until
	// then the daemon does not bring the stack back.
	Down bool `json:"down,omitempty"`
	// DownVolumes is set by `swiftctl down --volumes`: a down that a crash
	// interrupted removes the volumes too when it is finished.
	DownVolumes bool `json:"down_volumes,omitempty"`
	// Pending is a promotion or rollback whose gate allowed it and whose
	// change is under way. A daemon that finds one at start settles it from
	// what nginx serves: the new state if it took effect, else the old.
	Pending *Transition `json:"pending,omitempty"`
	// Rollout is the progress of a stepped canary (pkg/analysis; run by
	// analysis.go).
	Rollout *analysis.Rollout `json:"rollout,omitempty"`
	// ServicePromoted, ServiceRolledBack and Rollouts are Promoted,
	// RolledBack and Rollout of the canaries of named web services other
	// than the primary (whose are the fields above), keyed by service
	// (canaries.go).
	ServicePromoted   map[string]*Promotion        `json:"service_promoted,omitempty"`
	ServiceRolledBack map[string]*Rollback         `json:"service_rolled_back,omitempty"`
	Rollouts          map[string]*analysis.Rollout `json:"service_rollouts,omitempty"`
	// Primary names the service whose decisions the single fields above
	// hold (Promoted, RolledBack, Rollout, Restored): the primary of the
	// manifest they were last normalised for (rekeyed). "" in the seed
	// form and in a state.json from before it was recorded: the
	// primary's of the manifest in force when it is first normalised.
	Primary string `json:"primary,omitempty"`
	// TLSCert is the certificate nginx.tls serves, as the certificate
	// store names it (certs.go); the store keeps it, not this file.
	TLSCert string `json:"-"`
	// Traffic is the operator's hold on traffic in force (swiftctl
	// traffic, traffic.go); nil while traffic passes.
	Traffic *stack.Traffic `json:"traffic,omitempty"`
}

// Promotion: the canary image became stable while the manifest still named
// ManifestStable as services.image.
type Promotion struct {
	// Service is the service promoted, as releases name it (the project's
	// name in the seed form, the primary's name in the named form); ""
	// in a state.json from before it was recorded: the primary's then.
	// The primary can change (a canary added to another web service), so
	// the decision is applied to, and spent by, the service it was made
	// for.
	Service        string    `json:"service,omitempty"`
	ManifestStable string    `json:"manifest_stable"`
	Image          string    `json:"image"`
	At             time.Time `json:"at"`
	User           string    `json:"user,omitempty"`
}

// Rollback: the canary image was dropped; it is not run again until the
// manifest names another canary image.
type Rollback struct {
	// Service: as Promotion.Service.
	Service     string    `json:"service,omitempty"`
	CanaryImage string    `json:"canary_image"`
	At          time.Time `json:"at"`
	User        string    `json:"user,omitempty"`
	// Aborted: the rollback is an abort (by the analysis, or `swiftctl
	// abort`), journaled as such with Reasons.
	Aborted bool     `json:"aborted,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
}

// Restore: release Rev of Service was brought back as stable (its image;
// the rest of the spec is the manifest's) while the manifest named
// ManifestStable as that service's image (services.image, or
// services.NAME.image in the named form).
type Restore struct {
	Service string `json:"service"`
	Rev     int    `json:"rev"`
	FromRev int    `json:"from_rev"`
	// Image is what runs: ReleaseImage, or the name that kept it when
	// ReleaseImage's tag has moved on (releases.go keepRef).
	Image          string `json:"image"`
	ReleaseImage   string `json:"release_image"`
	ImageID        string `json:"image_id,omitempty"`
	Digest         string `json:"digest,omitempty"`
	ManifestStable string `json:"manifest_stable"`
	// SpecHash is the stable spec in force once it took effect.
	SpecHash string    `json:"spec_hash,omitempty"`
	At       time.Time `json:"at"`
	User     string    `json:"user,omitempty"`
}

// Transition is a promotion or rollback in flight.
type Transition struct {
	ID   string `json:"id"`
	Kind string `json:"kind"` // promote | rollback
	// Project is the manifest's project: a restore recorded under it (the
	// primary's, before services had releases of their own) is told from
	// one of a named service when the decisions are updated (with). ""
	// in a pending transition from before it was recorded.
	Project    string     `json:"project,omitempty"`
	Promoted   *Promotion `json:"promoted,omitempty"`
	RolledBack *Rollback  `json:"rolled_back,omitempty"`
	Restored   *Restore   `json:"restored,omitempty"`
	// ServiceRestored is a rollback to an earlier release of a named
	// service other than the primary (kind restore, Restored nil): it
	// changes that service's image only.
	ServiceRestored *Restore `json:"service_restored,omitempty"`
	// Service names the web service whose canary a promote, rollback or
	// step changes, by name, so that a transition settled after a
	// manifest edit that changed the primary still applies to it ("" in
	// the seed form, and from a version that recorded only the other
	// services' names: the primary's; State.keyOf).
	Service string `json:"service,omitempty"`
	// Release is the release a promotion makes, its revision given when
	// it is committed.
	Release *api.Release       `json:"release,omitempty"`
	Step    *analysis.StepMove `json:"step,omitempty"`
	// Traffic is the hold a traffic transition puts in force (nil: resume).
	Traffic *stack.Traffic `json:"traffic,omitempty"`
	// Revision is the nginx configuration that makes it take effect.
	Revision string    `json:"revision"`
	Started  time.Time `json:"started"`
	User     string    `json:"user,omitempty"`
}

// restore is the release a restore transition brings back, of the
// primary or of another service.
func (t *Transition) restore() *Restore {
	if t.Restored != nil {
		return t.Restored
	}
	return t.ServiceRestored
}

const (
	kindPromote  = "promote"
	kindRollback = "rollback"
	kindStep     = "step"
	kindTraffic  = "traffic"
	kindRestore  = "restore"
	stateFile    = "state.json"
)

func loadState(dir string) (State, error) {
	var s State
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("parse state %s: %w", filepath.Join(dir, stateFile), err)
	}
	return s, nil
}

func (d *Daemon) saveStateLocked() error {
	b, err := json.MarshalIndent(d.state, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(d.stateDir, stateFile), b, 0o640)
}

// Options applies the recorded decisions that still match m: State is
// the targets.Decisions a target renders a manifest under.
func (s State) Options(m *manifest.Manifest) stack.Options {
	var o stack.Options
	s, _ = s.rekeyed(m)
	primary, _ := m.Primary()
	stableImage := func(name string, primary bool, image string) {
		if primary {
			o.StableImage = image
			return
		}
		if o.ServiceImages == nil {
			o.ServiceImages = map[string]string{}
		}
		o.ServiceImages[name] = image
	}
	if p := s.Promoted; p != nil {
		if name, svc, primary := decisionTarget(m, p.Service); svc != nil && p.ManifestStable == svc.Image && p.Image != svc.Image {
			stableImage(name, primary, p.Image)
		}
	}
	for _, r := range s.restores() {
		name, svc, primary := restoreTarget(m, r)
		if svc == nil || r.ManifestStable != svc.Image || r.Image == svc.Image {
			continue
		}
		stableImage(name, primary, r.Image)
	}
	if r := s.RolledBack; r != nil && mine(r.Service, primary) && m.Main().Canary != nil && m.Main().Canary.Image == r.CanaryImage {
		o.NoCanary = true
	}
	o.CanaryWeight = s.Rollout.Weight(m.Main().Canary)
	s.serviceCanaryOptions(m, &o)
	o.TLSCert = s.TLSCert
	if s.Traffic != nil {
		o.Traffic = *s.Traffic
	}
	return o
}

// restores are the restored releases in force: the primary's (Restored)
// first, then the other services' by name, so that the result does not
// depend on map order.
func (s State) restores() []*Restore {
	var out []*Restore
	if s.Restored != nil {
		out = append(out, s.Restored)
	}
	names := make([]string, 0, len(s.Restores))
	for n := range s.Restores {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if r := s.Restores[n]; r != nil {
			out = append(out, r)
		}
	}
	return out
}

// restoreTarget is the service of m that r restores: a named service
// other than the primary when r names one (a state.json or book of the
// seed form names the project, the primary's single service), else the
// primary. svc is nil when r names no service of m any more.
func restoreTarget(m *manifest.Manifest, r *Restore) (name string, svc *manifest.Services, primary bool) {
	return decisionTarget(m, r.Service)
}

// decisionTarget is the service of m that a decision made for service
// (as releases name it) applies to; see restoreTarget. "" (a promotion
// recorded before promotions named their service) is the primary.
func decisionTarget(m *manifest.Manifest, service string) (name string, svc *manifest.Services, primary bool) {
	pname, _ := m.Primary()
	if m.IsNamed() && service != pname && service != "" {
		if s := m.Named[service]; s != nil {
			return service, s, false
		}
		if service != m.Project {
			return service, nil, false
		}
	}
	// The seed's single service, the named form's primary, or a restore
	// recorded under the project's name before services had releases of
	// their own (the primary's then).
	_, s := m.Primary()
	return pname, s, true
}

// spent drops the decisions the manifest has moved past: a promotion or a
// restored release once its service's image no longer names the image it
// was made over (the manifest caught up, or names another; for a restored
// release, the image of the service it restored), a rollback once the
// manifest no longer names its canary image. Kept, they would apply again
// the moment the manifest returned to that image, overriding a deliberate
// edit.
func (s State) spent(m *manifest.Manifest) (State, bool) {
	s, changed := s.rekeyed(m)
	if p := s.Promoted; p != nil {
		if _, svc, _ := decisionTarget(m, p.Service); svc == nil || svc.Image != p.ManifestStable {
			s.Promoted, changed = nil, true
		}
	}
	if r := s.Restored; r != nil {
		if _, svc, _ := restoreTarget(m, r); svc == nil || svc.Image != r.ManifestStable {
			s.Restored, changed = nil, true
		}
	}
	for name, r := range s.Restores {
		if _, svc, _ := restoreTarget(m, r); r == nil || svc == nil || svc.Image != r.ManifestStable {
			s.Restores = withoutRestore(s.Restores, name)
			changed = true
		}
	}
	if r := s.RolledBack; r != nil && (m.Main().Canary == nil || m.Main().Canary.Image != r.CanaryImage) {
		s.RolledBack, changed = nil, true
	}
	s, others := s.spentServiceCanaries(m)
	return s, changed || others
}

// withoutRestore is restores less name's, copied: a State is a value, and
// the one it was copied from must not change with it.
func withoutRestore(restores map[string]*Restore, name string) map[string]*Restore {
	out := map[string]*Restore{}
	for n, r := range restores {
		if n != name {
			out[n] = r
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// parkRestored moves a restore of a named service kept as the primary's
// (it was the primary when it was brought back) among the other
// services' restores, so that a decision about today's primary cannot
// overwrite or drop it. A restore under the project's name (the seed
// form's, or the primary's before services had releases of their own)
// stays: it is the primary's. project "" (a pending transition from
// before transitions named it) parks nothing.
func (s State) parkRestored(project string) State {
	r := s.Restored
	if r == nil || project == "" || r.Service == project || r.Service == "" {
		return s
	}
	restores := withoutRestore(s.Restores, r.Service)
	if restores == nil {
		restores = map[string]*Restore{}
	}
	restores[r.Service] = r
	s.Restores, s.Restored = restores, nil
	return s
}

// spendDecisions drops the recorded decisions m has moved past (spent).
func (d *Daemon) spendDecisions(m *manifest.Manifest) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state.Pending != nil {
		return
	}
	s, changed := d.state.spent(m)
	if !changed && s.Primary == d.state.Primary {
		return
	}
	was := d.state
	d.state = s
	if err := d.saveStateLocked(); err != nil {
		d.state = was // the next reconcile tries again
		d.log.Error("save state", zap.Error(err))
	}
}

// with returns s with t's decision recorded (and no pending transition).
func (s State) with(t *Transition) State {
	s.Pending = nil
	if k := s.keyOf(t.Service); k != "" && (t.Kind == kindPromote || t.Kind == kindRollback || t.Kind == kindStep) {
		return s.withService(t, k)
	}
	switch t.Kind {
	case kindPromote:
		// The promoted service's stable image is the canary's now: a
		// release of it brought back earlier is spent. Another service's
		// (one that was the primary when it was brought back) stands.
		s = s.parkRestored(t.Project)
		svc := t.Promoted.Service
		s.Restores = withoutRestore(s.Restores, svc)
		if r := s.Restored; r != nil && (svc == "" || t.Project == "" || r.Service == svc || r.Service == t.Project) {
			s.Restored = nil
		}
		s.Promoted, s.RolledBack, s.Rollout = t.Promoted, nil, nil
	case kindRestore:
		if r := t.ServiceRestored; r != nil {
			// Another service's image: the primary's decisions stand, and
			// this service's earlier ones are spent.
			s.Restores = withoutRestore(s.Restores, r.Service)
			if s.Restores == nil {
				s.Restores = map[string]*Restore{}
			}
			s.Restores[r.Service] = r
			if old := s.Restored; old != nil && old.Service == r.Service {
				s.Restored = nil
			}
			if p := s.Promoted; p != nil && p.Service == r.Service {
				s.Promoted = nil
			}
			s.ServicePromoted = withEntry(s.ServicePromoted, r.Service, nil)
			if t.RolledBack != nil { // its canary stays dropped
				s.ServiceRolledBack = withEntry(s.ServiceRolledBack, r.Service, t.RolledBack)
			}
			break
		}
		s = s.parkRestored(t.Project)
		s.Restores = withoutRestore(s.Restores, t.Restored.Service)
		if p := s.Promoted; p != nil && (p.Service == "" || t.Project == "" || p.Service == t.Restored.Service || p.Service == t.Project) {
			s.Promoted = nil
		}
		s.Restored, s.Rollout = t.Restored, nil
		if t.RolledBack != nil { // the manifest's canary stays dropped
			s.RolledBack = t.RolledBack
		}
	case kindRollback:
		s.RolledBack = t.RolledBack
	case kindStep:
		s.Rollout = s.Rollout.At(t.Step)
	case kindTraffic:
		s.Traffic = t.Traffic
	}
	return s
}

func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
