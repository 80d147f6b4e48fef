package reconciler

import (
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/registryauth"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Desired is what a reconcile converges to: the stack and the nginx
// configuration rendered for it.
type Desired struct {
	Stack stack.Stack
	Conf  []byte
	// Revision identifies Conf; nginx reports the revision it has loaded.
	Revision string
	// Registries says where each registry's pull credentials are.
	Registries registryauth.Source
	// Spec is the manifest's hash: a registry's denial of a pull lasts
	// until it (or the credentials) change.
	Spec string
}

// Loaded is what the running nginx reports it has loaded, read back from
// nginx itself (not from the file the daemon wrote): the revision of its
// configuration, the canary weight and the upstream containers per track.
type Loaded struct {
	Revision string
	Weight   int // the primary's canary's
	Stable   []string
	Canary   []string // every service's canary nginx routes, the primary's first
	// Weights are the canary weights of the other named services nginx
	// routes a canary of (render.LoadedConfig.Weights); nil for none.
	Weights map[string]int
	// Cert is the id of the certificate nginx serves on its HTTPS port
	// ("" without one).
	Cert string
	// Traffic is the hold on traffic nginx applies (swiftctl traffic).
	Traffic stack.Traffic
}

// Observed is the actual state of one project.
type Observed struct {
	Network    *engine.Network
	Containers []engine.Container
	// Volumes are the desired named volumes that exist.
	Volumes []engine.Volume
	// Missing lists the desired images not present locally.
	Missing []string
	// Loaded is what the running nginx has loaded; nil when no nginx
	// answers (none runs, or its status socket cannot be read).
	Loaded *Loaded
	// LoadedErr says why Loaded is nil while an nginx container runs.
	LoadedErr string
	// Applied is the last state applied in full; nil before the first.
	Applied *Applied
	// Mounts identifies the host directories nginx must have mounted now
	// (see stack.LabelMounts); "" when unknown.
	Mounts string
}

// Nginx returns the running nginx container, if any.
func (o Observed) Nginx() *engine.Container {
	for i, c := range o.Containers {
		if c.Role == stack.RoleNginx && c.Running() {
			return &o.Containers[i]
		}
	}
	return nil
}
