package controller

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/registryauth"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
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

// pullSecret is the Kubernetes target's image pull Secret payload: the
// credentials, from the same Docker configuration a pull on the Docker
// target reads, of the registries m's images are on (nil when none has
// any). An unreadable configuration fails the reconcile, naming the file.
func (d *Daemon) pullSecret(m *manifest.Manifest, s targets.Decisions) ([]byte, error) {
	st := stack.FromManifest(m, s.Options(m))
	var refs []string
	// Every service's canary, not only the primary's: each pulls.
	for _, a := range st.Apps() {
		refs = append(refs, a.Image)
	}
	b, err := d.registrySource(m).DockerConfigJSON(refs)
	if err != nil {
		return nil, fmt.Errorf("image pull secret: %w", err)
	}
	return b, nil
}

// notePullSecrets adds the secret values of credentials a pull sends to
// the journal's scrubber (the last line: no message quotes them by
// design; a registry's error text is not ours). The list only grows, a
// few values per registry and password the daemon has used.
func (d *Daemon) notePullSecrets(values []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.learnSecretsLocked(values)
}

// learnSecretsLocked adds values to the scrubber's learned secrets and
// rebuilds it if any is new; the caller holds d.mu.
func (d *Daemon) learnSecretsLocked(values []string) {
	added := false
	for _, v := range values {
		if !slices.Contains(d.learnedSecrets, v) {
			d.learnedSecrets = append(d.learnedSecrets, v)
			added = true
		}
	}
	if !added {
		return
	}
	// The manifest's part as computed when it was read: no file is read
	// under d.mu (status and the scrape loop wait on it).
	d.scrub = newScrubber(d.scrubPublic, d.scrubBase, d.learnedSecrets)
}

// scrubText is s without any secret value the scrubber knows.
func (d *Daemon) scrubText(s string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.scrub.Empty() {
		return s
	}
	return d.scrub.String(s)
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
// succeeds (clearDenial) or, for a rollout's, until the rollout is no
// longer denied (rolloutDenied). It reports whether the refusal is new
// (status showed another one, or none).
func (d *Daemon) notePullDenied(pd *reconciler.PullDeniedError) bool {
	msg := d.scrubText(pd.Error()) // the registry's text is not ours
	d.mu.Lock()
	defer d.mu.Unlock()
	same := d.denial != nil && d.denial.Policy == policyRegistry && len(d.denial.Reasons) == 1 && d.denial.Reasons[0] == msg
	d.denial = &api.Decision{Policy: policyRegistry, Reasons: []string{msg},
		Input: map[string]any{"registry": pd.Registry, "image": pd.Image}}
	return !same
}

// rolloutDenied keeps status's registry denial in step with a rollout's
// (Kubernetes: the kubelet pulls, and a refusal shows on the pods, after
// the apply succeeded): a new one fails the rollout at once, journaled
// deploy_failed once, as a refused pull on Docker; one that no longer
// holds (the manifest or the pull Secret changed) is lifted. It reports
// whether pd is the rollout's outcome.
func (d *Daemon) rolloutDenied(pd *reconciler.PullDeniedError) bool {
	if pd == nil {
		d.mu.Lock()
		if d.denial != nil && d.denial.Policy == policyRegistry {
			d.denial = nil
		}
		d.mu.Unlock()
		return false
	}
	d.rollout = nil // its outcome is this denial
	if d.notePullDenied(pd) {
		d.deployFailed(pd)
	}
	return true
}
