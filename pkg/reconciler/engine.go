package reconciler

import (
	"context"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
)

// Engine is the part of the Docker Engine the reconciler drives. The real
// one is *engine.Engine; unit tests use the in-memory fake in
// pkg/engine/fake to inject faults between any two calls.
type Engine interface {
	ListContainers(ctx context.Context, project, network string) ([]engine.Container, error)
	FindNetwork(ctx context.Context, name, project string) (*engine.Network, error)
	CreateNetwork(ctx context.Context, name, driver string, labels map[string]string) error
	RemoveNetwork(ctx context.Context, id string) error
	// FindVolumes returns those of the named volumes that exist.
	FindVolumes(ctx context.Context, names []string, project string) ([]engine.Volume, error)
	CreateVolume(ctx context.Context, name string, labels map[string]string) error
	MissingImages(ctx context.Context, refs []string) ([]string, error)
	// PullImage pulls ref with auth, the X-Registry-Auth value of its
	// registry ("" for an anonymous pull).
	PullImage(ctx context.Context, ref, auth string) error
	// Run creates and starts a container; one that fails to start is removed.
	Run(ctx context.Context, s engine.Spec) (string, error)
	// Remove stops (SIGTERM, SIGKILL after grace) and removes a container;
	// a missing one is not an error.
	Remove(ctx context.Context, id string, grace time.Duration) error
	// Top lists a running container's processes.
	Top(ctx context.Context, id string) ([]engine.Process, error)
	// Signal sends a signal ("HUP") to a running container's main process.
	Signal(ctx context.Context, id, signal string) error
	// Exec runs cmd in a running container: exit code and combined output.
	Exec(ctx context.Context, id string, cmd []string) (int, string, error)
	// RunOnce runs a short-lived container to completion and removes it.
	RunOnce(ctx context.Context, s engine.Spec) (int, string, error)
}

var _ Engine = (*engine.Engine)(nil)
