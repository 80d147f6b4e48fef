package controller

// Several canaries at once: every named web service may run a canary of
// its own, walked, judged, promoted and dropped on its own. The primary's
// (manifest.Primary) decisions stay in State's single fields, so that a
// state.json written before keeps its meaning; the other services' are
// in maps keyed by service name, and State.Primary names the service the
// single fields are for: when the primary changes, rekeyed moves each
// decision to where the new manifest keeps it. Inside the controller a
// canary is named by its key: "" for the primary's (the seed's single
// service included), else the service's name; a transition records the
// service's name (State.keyOf gives its key).

import (
	"context"
	"fmt"
	"sort"

	"github.com/swiftdeploy/swiftdeploy/pkg/analysis"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// canarySpec is the service of m that key names: the primary's for "",
// nil when m has no such named service.
func canarySpec(m *manifest.Manifest, key string) *manifest.Services {
	if key == "" {
		return m.Main()
	}
	return m.Named[key]
}

// canaryKey is the key of service (a name as the operator gives it, ""
// for the primary): "" for the primary, else the named service's own.
// It refuses a name that is no web service of m with a canary.
func canaryKey(m *manifest.Manifest, service string) (string, error) {
	if p, _ := m.Primary(); service == "" || service == p || (!m.IsNamed() && service == m.Project) {
		return "", nil
	}
	svc := m.Named[service]
	switch {
	case svc == nil:
		return "", fmt.Errorf("service %q: the manifest has no such service (%v)", service, m.ServiceNames())
	case svc.EffectiveKind() != manifest.KindWeb:
		return "", fmt.Errorf("service %q: a %s runs no canary", service, svc.EffectiveKind())
	case svc.Canary == nil:
		return "", fmt.Errorf("service %q: no canary declared (services.%s.canary)", service, service)
	}
	return service, nil
}

// canaryKeys are the keys of m's canaries: the primary's first (when it
// declares one), then the other web services' by name.
func canaryKeys(m *manifest.Manifest) []string {
	var out []string
	if m.Main().Canary != nil {
		out = append(out, "")
	}
	return append(out, otherCanaried(m)...)
}

// otherCanaried names the web services of m other than the primary that
// declare a canary, sorted.
func otherCanaried(m *manifest.Manifest) []string {
	if !m.IsNamed() {
		return nil
	}
	p, _ := m.Primary()
	var out []string
	for _, n := range m.ServiceNames() {
		if s := m.Named[n]; n != p && s.EffectiveKind() == manifest.KindWeb && s.Canary != nil {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// canaryName is the service name key stands for: the primary's own
// name for "" ("" in the seed form).
func canaryName(m *manifest.Manifest, key string) string {
	if key == "" {
		p, _ := m.Primary()
		return p
	}
	return key
}

// judgedCanary is the canary an analysis judged, by its service's name
// and its image. The verdict's action (an abort, a promotion) re-finds
// it in the manifest read under the run lock: a manifest edit during the
// check may have changed the primary, and so the key that names it, or
// replaced the canary. The action is never taken on another canary.
type judgedCanary struct{ service, image string }

// keyIn is the judged canary's key in m, or an error when m no longer
// declares it (the next check judges what m declares).
func (j judgedCanary) keyIn(m *manifest.Manifest) (string, error) {
	key, err := canaryKey(m, j.service)
	if err != nil {
		return "", fmt.Errorf("the canary judged (%s): %w", j.image, err)
	}
	if svc := canarySpec(m, key); svc == nil || svc.Canary == nil || svc.Canary.Image != j.image {
		return "", fmt.Errorf("service %s: the canary judged (%s) is no longer the manifest's; the next check judges what it declares", j.service, j.image)
	}
	return key, nil
}

// canaryTransitionStart begins a transition (transitionStart) on the
// canary of key or, judged non-nil, on the canary an analysis judged,
// keyed anew in the manifest now in force: an edit since the analysis
// looked may have made another service the primary. svc is nil when the
// manifest no longer declares the service. Callers hold d.runMu.
func (d *Daemon) canaryTransitionStart(ctx context.Context, key string, judged *judgedCanary) (m *manifest.Manifest, _ string, svc *manifest.Services, err error) {
	if m, err = d.transitionStart(ctx); err != nil {
		return nil, "", nil, err
	}
	if judged != nil {
		if key, err = judged.keyIn(m); err != nil {
			return nil, "", nil, err
		}
	}
	return m, key, canarySpec(m, key), nil
}

// keyLabel names a canary's service in messages: "" for the primary's.
func keyLabel(key string) string {
	if key == "" {
		return ""
	}
	return key + ": "
}

func (s State) rolloutOf(key string) *analysis.Rollout {
	if key == "" {
		return s.Rollout
	}
	return s.Rollouts[key]
}

// promotedOf is the promotion of key's canary in force for m: the single
// field holds the primary's, unless it names another service (made
// when that one was the primary; decisionTarget).
func (s State) promotedOf(m *manifest.Manifest, key string) *Promotion {
	if key != "" {
		if p := s.ServicePromoted[key]; p != nil {
			return p
		}
		// Made when key was the primary, and not normalised yet
		// (rekeyed).
		if p := s.Promoted; p != nil && p.Service == key {
			return p
		}
		return nil
	}
	if p := s.Promoted; p != nil {
		if _, _, primary := decisionTarget(m, p.Service); primary {
			return p
		}
	}
	return nil
}

func (s State) rolledBackOf(key string) *Rollback {
	if key == "" {
		return s.RolledBack
	}
	return s.ServiceRolledBack[key]
}

// setRollout records r as key's rollout (nil drops it).
func (s *State) setRollout(key string, r *analysis.Rollout) {
	if key == "" {
		s.Rollout = r
		return
	}
	s.Rollouts = withEntry(s.Rollouts, key, r)
}

// withEntry is m with k set to v (dropped when v is nil), copied: a State
// is a value, and the one it was copied from must not change with it.
func withEntry[T any](m map[string]*T, k string, v *T) map[string]*T {
	out := map[string]*T{}
	for n, x := range m {
		if n != k {
			out[n] = x
		}
	}
	if v != nil {
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// mine reports whether a rollback recorded for service (its Service
// field) is the primary's, named primary: "" is, from the seed form or a
// state.json written before several services could run a canary.
func mine(service, primary string) bool { return service == "" || service == primary }

// keyOf is the key (canaries.go) of the canary a transition names by
// service: "" for the service whose decisions the single fields hold
// (s.Primary), and for "" (a transition from before transitions named
// their service: the primary's then).
func (s State) keyOf(service string) string {
	if service == "" || service == s.Primary {
		return ""
	}
	return service
}

// rekeyed normalises s for m: the single fields (Promoted, RolledBack,
// Rollout, Restored) hold the decisions of m's primary only, and
// s.Primary names it. When another service became the primary (its
// canary was removed from the manifest, or another service's canary
// sorts first now) the former primary's decisions move to the maps under
// its name, the new primary's come out of them: a decision stays with
// the service it was made for, its rollout keeps its step, revision and
// failure budget, and a decision about the new primary cannot overwrite
// or drop another's. Decisions from a state.json of the previous version
// (no s.Primary, no Service) are the primary's of the first manifest
// they are normalised for: they are stamped then.
func (s State) rekeyed(m *manifest.Manifest) (State, bool) {
	if !m.IsNamed() {
		// The seed's single service is the primary: its decisions are
		// the primary's of the named form it may become.
		s.Primary = ""
		return s, false
	}
	p, _ := m.Primary()
	owner := s.Primary
	if owner == "" {
		owner = p
	}
	changed := false
	// whose names the service a decision recorded for service in the
	// single fields was made for.
	whose := func(service string) string {
		if service == "" || (service == m.Project && m.Named[service] == nil) {
			return owner
		}
		return service
	}
	if pr := s.Promoted; pr != nil {
		if n := whose(pr.Service); n != p {
			cp := *pr
			cp.Service = n
			s.Promoted, changed = nil, true
			if m.Named[n] != nil && s.ServicePromoted[n] == nil {
				s.ServicePromoted = withEntry(s.ServicePromoted, n, &cp)
			}
		}
	}
	if pr := s.ServicePromoted[p]; pr != nil {
		if s.Promoted == nil || s.Promoted.At.Before(pr.At) {
			s.Promoted = pr
		}
		s.ServicePromoted, changed = withEntry(s.ServicePromoted, p, nil), true
	}
	if rb := s.RolledBack; rb != nil {
		if n := whose(rb.Service); n != p {
			cp := *rb
			cp.Service = n
			s.RolledBack, changed = nil, true
			if m.Named[n] != nil && s.ServiceRolledBack[n] == nil {
				s.ServiceRolledBack = withEntry(s.ServiceRolledBack, n, &cp)
			}
		}
	}
	if rb := s.ServiceRolledBack[p]; rb != nil {
		if s.RolledBack == nil || s.RolledBack.At.Before(rb.At) {
			s.RolledBack = rb
		}
		s.ServiceRolledBack, changed = withEntry(s.ServiceRolledBack, p, nil), true
	}
	// The rollout names no service: it is the owner's.
	if owner != p {
		if r := s.Rollout; r != nil {
			if m.Named[owner] != nil && s.Rollouts[owner] == nil {
				s.Rollouts = withEntry(s.Rollouts, owner, r)
			}
			s.Rollout, changed = nil, true
		}
	}
	if r := s.Rollouts[p]; r != nil {
		s.Rollout, s.Rollouts, changed = r, withEntry(s.Rollouts, p, nil), true
	}
	// A restore already names its service (restoreTarget); one recorded
	// under the project's name (before services had releases of their own)
	// is the owner's.
	if r := s.Restored; r != nil {
		if n := whose(r.Service); n != p && m.Named[n] != nil {
			cp := *r
			cp.Service = n
			s.Restored, changed = nil, true
			if s.Restores[n] == nil {
				s.Restores = withEntry(s.Restores, n, &cp)
			}
		}
	}
	// changed reports decisions moved; a stamp alone changes nothing
	// they mean (spendDecisions records it).
	s.Primary = p
	return s, changed
}

// serviceCanaryOptions are the decisions on the canaries of services
// other than the primary in force for m: a promotion runs the canary's
// image as the service's stable (ServiceImages; the canary then stops, its
// image being stable's), a rollback drops the canary, a rollout's step
// sets its weight.
func (s State) serviceCanaryOptions(m *manifest.Manifest, o *stack.Options) {
	if !m.IsNamed() {
		return
	}
	p, _ := m.Primary()
	names := make([]string, 0, len(s.ServicePromoted))
	for n := range s.ServicePromoted {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		pr, svc := s.ServicePromoted[n], m.Named[n]
		if n == p || pr == nil || svc == nil || pr.ManifestStable != svc.Image || pr.Image == svc.Image {
			continue
		}
		if _, restored := o.ServiceImages[n]; restored {
			continue // a release brought back after the promotion
		}
		if o.ServiceImages == nil {
			o.ServiceImages = map[string]string{}
		}
		o.ServiceImages[n] = pr.Image
	}
	for _, n := range otherCanaried(m) {
		c := m.Named[n].Canary
		co := stack.CanaryOptions{Weight: s.Rollouts[n].Weight(c)}
		if rb := s.ServiceRolledBack[n]; rb != nil && rb.CanaryImage == c.Image {
			co.Off = true
		}
		if co == (stack.CanaryOptions{}) {
			continue
		}
		if o.Canaries == nil {
			o.Canaries = map[string]stack.CanaryOptions{}
		}
		o.Canaries[n] = co
	}
}

// spentServiceCanaries drops the other services' canary decisions m has
// moved past, as spent does the primary's: a promotion once its service's
// image no longer names the image it was made over, a rollback once the
// service no longer names its canary image, a rollout once the service
// declares no canary of its image.
func (s State) spentServiceCanaries(m *manifest.Manifest) (State, bool) {
	changed := false
	for n, p := range s.ServicePromoted {
		if svc := m.Named[n]; p == nil || svc == nil || svc.Image != p.ManifestStable {
			s.ServicePromoted, changed = withEntry(s.ServicePromoted, n, nil), true
		}
	}
	for n, rb := range s.ServiceRolledBack {
		if svc := m.Named[n]; rb == nil || svc == nil || svc.Canary == nil || svc.Canary.Image != rb.CanaryImage {
			s.ServiceRolledBack, changed = withEntry(s.ServiceRolledBack, n, nil), true
		}
	}
	for n, r := range s.Rollouts {
		if svc := m.Named[n]; r == nil || svc == nil || svc.Canary == nil || svc.Canary.Image != r.CanaryImage {
			s.Rollouts, changed = withEntry(s.Rollouts, n, nil), true
		}
	}
	return s, changed
}

// withService records t's decision on the canary of service t.Service
// (not the primary): the primary's decisions stand.
func (s State) withService(t *Transition, k string) State {
	switch t.Kind {
	case kindPromote:
		s.ServicePromoted = withEntry(s.ServicePromoted, k, t.Promoted)
		s.ServiceRolledBack = withEntry(s.ServiceRolledBack, k, nil)
		s.Rollouts = withEntry(s.Rollouts, k, nil)
		s.Restores = withoutRestore(s.Restores, k)
		// Its decisions kept in the primary's fields (it was the primary
		// when they were made) are spent too.
		if p := s.Promoted; p != nil && p.Service == k {
			s.Promoted = nil
		}
		if r := s.Restored; r != nil && r.Service == k {
			s.Restored = nil
		}
	case kindRollback:
		s.ServiceRolledBack = withEntry(s.ServiceRolledBack, k, t.RolledBack)
	case kindStep:
		s.Rollouts = withEntry(s.Rollouts, k, s.Rollouts[k].At(t.Step))
	}
	return s
}
