package engine

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Network is an observed Docker network.
type Network struct {
	ID     string
	Name   string
	Driver string
	Owned  bool // carries this project's label
}

// FindNetwork returns the network with exactly this name, or nil.
func (e *Engine) FindNetwork(ctx context.Context, name, project string) (*Network, error) {
	res, err := e.cli.NetworkList(ctx, client.NetworkListOptions{
		Filters: make(client.Filters).Add("name", name),
	})
	if err != nil {
		return nil, fmt.Errorf("list networks named %s: %w", name, err)
	}
	for _, n := range res.Items {
		if n.Name == name { // the name filter matches substrings
			return &Network{ID: n.ID, Name: n.Name, Driver: n.Driver, Owned: n.Labels[stack.LabelProject] == project}, nil
		}
	}
	return nil, nil
}

// CreateNetwork creates a labelled network.
func (e *Engine) CreateNetwork(ctx context.Context, name, driver string, labels map[string]string) error {
	if _, err := e.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: driver, Labels: labels}); err != nil {
		return fmt.Errorf("create network %s: %w", name, err)
	}
	return nil
}

// RemoveNetwork removes a network; a missing one is not an error.
func (e *Engine) RemoveNetwork(ctx context.Context, id string) error {
	if _, err := e.cli.NetworkRemove(ctx, id, client.NetworkRemoveOptions{}); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove network %s: %w", id, err)
	}
	return nil
}
