package fake

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// FindVolumes returns those of names that exist.
func (e *Engine) FindVolumes(ctx context.Context, names []string, project string) (out []engine.Volume, err error) {
	c := e.begin(OpFindVolumes, strings.Join(names, ","), project)
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return nil, fmt.Errorf("inspect volumes: %w", ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range names {
		if labels, ok := e.volumes[n]; ok {
			out = append(out, engine.Volume{Name: n, Owned: labels[stack.LabelProject] == project})
		}
	}
	return out, nil
}

// ListVolumes returns the volumes labelled with project, by name.
func (e *Engine) ListVolumes(ctx context.Context, project string) (out []engine.Volume, err error) {
	c := e.begin(OpListVolumes, project, "")
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return nil, fmt.Errorf("list volumes of project %s: %w", project, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for n, labels := range e.volumes {
		if labels[stack.LabelProject] == project {
			out = append(out, engine.Volume{Name: n, Owned: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// CreateVolume creates a labelled volume; one of that name is a conflict.
func (e *Engine) CreateVolume(ctx context.Context, name string, labels map[string]string) (err error) {
	c := e.begin(OpCreateVolume, name, "")
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return fmt.Errorf("create volume %s: %w", name, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.volumes[name]; ok {
		return fmt.Errorf("create volume %s: %w", name, daemonErr(errdefs.ErrConflict, "volume %s already exists", name))
	}
	e.volumes[name] = maps.Clone(labels)
	return nil
}

// RemoveVolume removes a volume; a missing one is not an error, one a
// container mounts is.
func (e *Engine) RemoveVolume(ctx context.Context, name string) (err error) {
	c := e.begin(OpRemoveVolume, name, "")
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return fmt.Errorf("remove volume %s: %w", name, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ct := range e.containers {
		for _, v := range ct.spec.Volumes {
			if v.Name == name {
				return fmt.Errorf("remove volume %s: %w", name, daemonErr(errdefs.ErrConflict, "volume is in use"))
			}
		}
	}
	delete(e.volumes, name)
	return nil
}

// AddVolume creates a volume directly, without recording a call (a
// foreign one has no project label).
func (e *Engine) AddVolume(name string, labels map[string]string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.volumes[name] = maps.Clone(labels)
}

// Volumes returns the names of every volume, sorted.
func (e *Engine) Volumes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for n := range e.volumes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
