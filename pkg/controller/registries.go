package controller

import (
	"errors"
	"path/filepath"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/registryauth"
)

// policyRegistry names a registry's refusal in status's denial: not a
// policy of SwiftDeploy's, but a "no" that lasts as one does.
const policyRegistry = "registry"

// registrySource is where m's images' pull credentials are: the
// registries entries' files (relative to the manifest's directory), and
// the daemon user's Docker configuration for every other registry.
func (d *Daemon) registrySource(m *manifest.Manifest) registryauth.Source {
	s := registryauth.Source{Dir: d.cfg.DockerConfig}
	for _, r := range m.Registries {
		host, err := registryauth.NormalizeHost(r.Host)
		if err != nil {
			continue // Validate refused such a manifest
		}
		p := r.Config
		if !filepath.IsAbs(p) {
			p = filepath.Join(d.dir, p)
		}
		if s.Files == nil {
			s.Files = map[string]string{}
		}
		s.Files[host] = p
	}
	return s
}

// pullDenied is the registry's lasting refusal in err, if any.
func pullDenied(err error) *reconciler.PullDeniedError {
	var pd *reconciler.PullDeniedError
	if errors.As(err, &pd) {
		return pd
	}
	return nil
}

// notePullDenied shows a registry's refusal in status until a reconcile
// succeeds (clearDenial).
func (d *Daemon) notePullDenied(pd *reconciler.PullDeniedError) {
	d.mu.Lock()
	d.denial = &api.Decision{Policy: policyRegistry, Reasons: []string{pd.Error()},
		Input: map[string]any{"registry": pd.Registry, "image": pd.Image}}
	d.mu.Unlock()
}
