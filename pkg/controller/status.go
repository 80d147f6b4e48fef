package controller

import (
	"context"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/target"
)

// Status assembles the daemon's view from what runs: a fresh observation
// of the engine and of the configuration nginx has loaded. While that
// differs from the desired state, Converged is false and Pending lists
// what the next apply would do.
func (d *Daemon) Status(ctx context.Context) api.Status {
	if d.manifestNow() == nil {
		d.readManifest() // before the first reconcile, status still knows the project
	}
	d.mu.Lock()
	m := d.current
	s := api.Status{
		ManifestPath:   d.cfg.ManifestPath,
		ManifestErrors: d.manifestErr,
		LastReconcile:  d.last,
		EngineError:    d.engineErr,
		Denial:         d.denial,
		Down:           d.state.Down,
		Journal:        d.journalStatusLocked(),
	}
	st := d.state
	d.mu.Unlock()
	if m == nil {
		return s
	}
	s.Project = m.Project
	d.target.Report(ctx, m, st, &s)
	s.Rollout = d.rolloutStatus(m, time.Now())
	return s
}

// Report fills status from a fresh look at the engine and at the
// configuration nginx has loaded, and the live figures.
func (t dockerTarget) Report(ctx context.Context, m *manifest.Manifest, _ target.Decisions, s *api.Status) {
	d := t.d
	s.NginxPort = m.Nginx.Port
	desired, err := d.desired(m)
	if err != nil {
		s.EngineError = err.Error()
		return
	}
	octx, cancel := context.WithTimeout(ctx, target.ReportTimeout)
	obs, err := d.rec.Observe(octx, desired)
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
	s.TLS = d.tlsStatus(served)
	if !s.Down {
		plan := reconciler.Compute(desired, obs)
		s.Pending = plan.Lines()
		s.Converged = plan.Empty() && s.LastReconcile != nil && s.LastReconcile.Error == ""
	}
	d.addLiveStatus(ctx, s, m, pobs)
	s.Services = d.servicesStatus(m, desired.Stack, obs)
}

// servicesStatus is the per-service view of the named form: what each
// service runs and, for a web service, nginx's figures per revision (the
// access log's pools name the service, its revisions are its own).
func (d *Daemon) servicesStatus(m *manifest.Manifest, st stack.Stack, obs reconciler.Observed) []api.ServiceStatus {
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
			if svc.Name == st.CanaryService {
				tracks = append(tracks, struct {
					track string
					apps  []stack.App
				}{stack.TrackCanary, st.Canary})
				ss.Desired += len(st.Canary)
			}
			for _, t := range tracks {
				if len(t.apps) == 0 {
					continue
				}
				rev := t.apps[0].Hash
				px := d.proxy.Stats(t.track, rev, m.Policy.MinRequests)
				ss.Revisions = append(ss.Revisions, api.ServiceRevision{Track: t.track, Revision: rev,
					Proxy: &api.ProxyStats{Outcome: string(px.Outcome), Reason: px.Reason, Requests: px.Requests, ReqPerSec: px.ReqPerSec, ErrorRate: px.ErrorRate, P99Ms: px.P99Ms}})
			}
		}
		out = append(out, ss)
	}
	return out
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
