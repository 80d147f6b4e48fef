package docker

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/errdefs"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// LogReplicas are the project's app containers of q's service (every
// service's when it names none) on q's track, stopped ones too (their
// last lines are often the point).
func (t *Target) LogReplicas(ctx context.Context, m *manifest.Manifest, q api.LogQuery) ([]targets.Replica, error) {
	cs, err := t.Engine.ListContainers(ctx, m.Project, m.Network.Name)
	if err != nil {
		return nil, err
	}
	var out []targets.Replica
	for _, c := range cs {
		if c.Role == stack.RoleApp && (q.Track == "" || c.Track == q.Track) && (q.Service == "" || !m.IsNamed() || c.Service == q.Service) {
			out = append(out, targets.Replica{ID: c.ID, Name: c.Name, Running: c.Running()})
		}
	}
	return out, nil
}

// OpenLog opens a container's log through the timed engine.
func (t *Target) OpenLog(ctx context.Context, _ *manifest.Manifest, r targets.Replica, o engine.LogOptions) (engine.LogStream, error) {
	le, ok := t.Engine.(logReader)
	if !ok {
		return nil, errors.New("this engine cannot read logs")
	}
	s, err := le.Logs(ctx, r.ID, o)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %v", targets.ErrReplicaGone, err)
	}
	return s, err
}

// logReader is an engine that reads containers' logs (the real one; the
// fake has no app output to read).
type logReader interface {
	Logs(ctx context.Context, id string, o engine.LogOptions) (engine.LogStream, error)
}
