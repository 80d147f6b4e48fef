package fake

import (
	"maps"
	"slices"
	"sort"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
)

// ContainerInfo is a container as the fake holds it.
type ContainerInfo struct {
	// Container is what ListContainers reports, with the IP on Network.
	engine.Container
	Network  string
	Labels   map[string]string
	Spec     engine.Spec
	ExitCode int
	// Healthy is whether a health probe would succeed now.
	Healthy bool
	// Loaded is the configuration a running nginx serves.
	Loaded []byte
	Logs   string
}

func (e *Engine) infoLocked(c *container) ContainerInfo {
	return ContainerInfo{
		Container: c.toEngine(c.network),
		Network:   c.network,
		Labels:    maps.Clone(c.spec.Labels),
		Spec:      copySpec(c.spec),
		ExitCode:  c.exitCode,
		Healthy:   e.healthyLocked(c),
		Loaded:    slices.Clone(c.loaded),
		Logs:      c.logs.String(),
	}
}

// Snapshot returns every container, sorted by name.
func (e *Engine) Snapshot() []ContainerInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []ContainerInfo{}
	for _, c := range e.containers {
		out = append(out, e.infoLocked(c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Get returns one container by ID, name or unique ID prefix.
func (e *Engine) Get(nameOrID string) (ContainerInfo, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.resolve(nameOrID)
	if c == nil {
		return ContainerInfo{}, false
	}
	return e.infoLocked(c), true
}

// Filter returns the containers keep accepts, sorted by name.
func (e *Engine) Filter(keep func(ContainerInfo) bool) []ContainerInfo {
	var out []ContainerInfo
	for _, c := range e.Snapshot() {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// ByRole returns the containers with this role label.
func (e *Engine) ByRole(role string) []ContainerInfo {
	return e.Filter(func(c ContainerInfo) bool { return c.Role == role })
}

// ByTrack returns the containers with this track label.
func (e *Engine) ByTrack(track string) []ContainerInfo {
	return e.Filter(func(c ContainerInfo) bool { return c.Track == track })
}

// ByImage returns the containers running image (compared normalised, so
// nginx matches docker.io/library/nginx:latest).
func (e *Engine) ByImage(image string) []ContainerInfo {
	want := mustNormalize(image)
	return e.Filter(func(c ContainerInfo) bool {
		n, err := normalize(c.Spec.Image)
		return err == nil && n == want
	})
}

// Names returns the containers' names.
func Names(cs []ContainerInfo) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}
