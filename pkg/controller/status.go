package controller

import (
	"context"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
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
	now := time.Now()
	s.Rollout = d.rolloutStatus(m, "", now)
	// Each canaried service's rollout beside its weight: the primary's
	// (the one above) and the others', each walked on its own.
	p, _ := m.Primary()
	for i := range s.Services {
		switch name := s.Services[i].Name; {
		case name == p:
			s.Services[i].Rollout = s.Rollout
		case m.Named[name] != nil && m.Named[name].Canary != nil:
			s.Services[i].Rollout = d.rolloutStatus(m, name, now)
		}
	}
	return s
}
