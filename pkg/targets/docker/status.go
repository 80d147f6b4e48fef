package docker

import (
	"context"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// Report fills status from a fresh look at the engine and at the
// configuration nginx has loaded, and the live figures.
func (t *Target) Report(ctx context.Context, m *manifest.Manifest, _ targets.Decisions, s *api.Status) {
	s.NginxPort = m.Nginx.Port
	desired, err := t.desired(m)
	if err != nil {
		s.EngineError = err.Error()
		return
	}
	octx, cancel := context.WithTimeout(ctx, targets.ReportTimeout)
	obs, err := t.Rec.Observe(octx, desired)
	cancel()
	if err != nil {
		s.EngineError = err.Error()
		return
	}
	for _, c := range obs.Containers {
		s.Containers = append(s.Containers, api.Container{Name: c.Name, Role: c.Role, Track: c.Track, Service: c.Service, Image: c.Image, State: c.State, IP: c.IP})
	}
	s.NginxError = obs.LoadedErr
	// Mode, images and figures are the primary service's (the one a
	// canary runs for), as the single service's are.
	pobs := primaryObserved(obs, desired.Stack.Primary)
	fillServing(s, pobs)
	served := ""
	if obs.Loaded != nil {
		served = obs.Loaded.Cert
	}
	s.TLS = t.TLS(served)
	if !s.Down {
		pinned, err := unrejected(t.Rec, desired, obs)
		if err != nil {
			pinned = desired
		}
		plan := reconciler.Compute(pinned, obs)
		s.Pending = plan.Lines()
		s.Converged = plan.Empty() && s.LastReconcile != nil && s.LastReconcile.Error == ""
	}
	t.addLiveStatus(ctx, s, m, pobs)
	s.Services = t.servicesStatus(m, desired.Stack, obs)
}

// servicesStatus is the per-service view of the named form: what each
// service runs and, for a web service, nginx's figures per revision (the
// access log's pools name the service, its revisions are its own).
func (t *Target) servicesStatus(m *manifest.Manifest, st stack.Stack, obs reconciler.Observed) []api.ServiceStatus {
	var out []api.ServiceStatus
	for _, svc := range st.Services {
		ss := api.ServiceStatus{Name: svc.Name, Kind: svc.Kind, Desired: len(svc.Stable)}
		if len(svc.Stable) > 0 {
			ss.Image = svc.Stable[0].Image
		}
		for _, c := range obs.Containers {
			if c.Role == stack.RoleApp && c.Service == svc.Name && c.Running() {
				ss.Running++
			}
		}
		if svc.Routed() {
			host := svc.Route.Host
			if host == "" {
				host = "*"
			}
			ss.Route = host + svc.Route.Prefix
			tracks := []struct {
				track string
				apps  []stack.App
			}{{stack.TrackStable, svc.Stable}}
			if canary, _ := st.CanaryOf(svc.Name); len(canary) > 0 {
				tracks = append(tracks, struct {
					track string
					apps  []stack.App
				}{stack.TrackCanary, canary})
				ss.Desired += len(canary)
				ss.CanaryWeight = loadedWeight(obs.Loaded, st, svc.Name)
			}
			for _, tr := range tracks {
				if len(tr.apps) == 0 {
					continue
				}
				rev := tr.apps[0].Hash
				px := t.Proxy.Stats(tr.track, rev, m.Policy.MinRequests)
				ss.Revisions = append(ss.Revisions, api.ServiceRevision{Track: tr.track, Revision: rev,
					Proxy: &api.ProxyStats{Outcome: string(px.Outcome), Reason: px.Reason, Requests: px.Requests, ReqPerSec: px.ReqPerSec, ErrorRate: px.ErrorRate, P99Ms: px.P99Ms}})
			}
		}
		out = append(out, ss)
	}
	return out
}

// loadedWeight is the weight nginx's loaded configuration gives named
// service svc's canary: the primary's is its weight, the others' are on
// a line of their own.
func loadedWeight(l *reconciler.Loaded, st stack.Stack, svc string) int {
	switch {
	case l == nil:
		return 0
	case svc == st.CanaryService:
		return l.Weight
	default:
		return l.Weights[svc]
	}
}

// fillServing sets mode, images and weight from nginx's loaded
// configuration and the labels of the containers it routes to.
func fillServing(s *api.Status, obs reconciler.Observed) {
	if obs.Loaded == nil {
		return
	}
	s.Revision = obs.Loaded.Revision
	s.Mode = servingMode(obs)
	s.StableImage = imageOf(obs, obs.Loaded.Stable)
	s.Traffic = trafficStatus(obs.Loaded)
	if s.Mode == stack.TrackCanary {
		s.CanaryImage = imageOf(obs, obs.Loaded.Canary)
		s.CanaryWeight = obs.Loaded.Weight
	}
}

// addLiveStatus fills the per-track figures (of the revision nginx serves)
// and the current policy verdicts.
func (t *Target) addLiveStatus(ctx context.Context, s *api.Status, m *manifest.Manifest, obs reconciler.Observed) {
	for _, track := range []string{stack.TrackStable, stack.TrackCanary} {
		if track == stack.TrackCanary && s.Mode != stack.TrackCanary {
			continue
		}
		rev := servedRevision(obs, track)
		st := t.Observer.Stats(track, rev, m.Policy.MinRequests)
		px := t.Proxy.Stats(track, rev, m.Policy.MinRequests)
		s.Tracks = append(s.Tracks, api.TrackStats{
			Track: track, Revision: rev, Outcome: string(st.Outcome), Reason: st.Reason, Requests: st.Requests, ReqPerSec: st.ReqPerSec,
			ErrorRate: st.ErrorRate, P99Ms: st.P99Ms, Targets: st.Targets,
			Proxy: &api.ProxyStats{Outcome: string(px.Outcome), Reason: px.Reason, Requests: px.Requests, ReqPerSec: px.ReqPerSec,
				ErrorRate: px.ErrorRate, P99Ms: px.P99Ms},
		})
	}
	s.Policies = append(s.Policies, *targets.APIDecision(t.infraDecision(ctx, m)))
	if s.Mode == stack.TrackCanary {
		s.Policies = append(s.Policies, *targets.APIDecision(t.canaryDecision(ctx, m, servedRevision(obs, stack.TrackCanary))))
	}
}

// canaryDecision judges the canary revision's own figures, the app's and
// nginx's (judge).
func (t *Target) canaryDecision(ctx context.Context, m *manifest.Manifest, revision string) policy.Decision {
	dec, _ := t.judge(ctx, m, revision)
	return dec
}

// servedRevision is the config hash of the containers nginx routes a
// track's traffic to (falling back to the newest running one).
func servedRevision(obs reconciler.Observed, track string) string {
	if obs.Loaded != nil {
		names := obs.Loaded.Stable
		if track == stack.TrackCanary {
			names = obs.Loaded.Canary
		}
		for _, n := range names {
			for _, c := range obs.Containers {
				if c.Name == n {
					return c.Hash
				}
			}
		}
	}
	return LatestRevision(obs.Containers, track)
}

// LatestRevision is the config hash of the newest running container of a
// track: during a rollout, the revision being rolled out.
func LatestRevision(cs []engine.Container, track string) string {
	var best engine.Container
	for _, c := range cs {
		if c.Role == stack.RoleApp && c.Track == track && c.Running() && (best.Name == "" || c.Created.After(best.Created)) {
			best = c
		}
	}
	return best.Hash
}

// trafficStatus is the hold nginx applies, for status.
func trafficStatus(l *reconciler.Loaded) *api.Traffic {
	if l == nil || l.Traffic.Mode == stack.TrafficRun {
		return nil
	}
	t := &api.Traffic{Mode: l.Traffic.Mode, Message: l.Traffic.Message}
	if l.Traffic.Mode == stack.TrafficPause {
		t.Max = l.Traffic.Max.String()
	}
	return t
}
