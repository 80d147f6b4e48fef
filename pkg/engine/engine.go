// Package engine is SwiftDeploy's narrow view of the Docker Engine: the few
// calls the reconciler needs, expressed in SwiftDeploy's own terms, over the
// maintained github.com/moby/moby client (API negotiated down to the engine's,
// 1.41 on Docker 20.10).
package engine

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"
)

// Engine wraps a Docker client.
type Engine struct {
	cli *client.Client
}

// New connects using DOCKER_HOST and friends, negotiating the API version.
func New() (*Engine, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Engine{cli: cli}, nil
}

// Client exposes the underlying client for callers that need more.
func (e *Engine) Client() *client.Client { return e.cli }

// Close releases the client's connections.
func (e *Engine) Close() error { return e.cli.Close() }

// Ping checks that the engine answers.
func (e *Engine) Ping(ctx context.Context) error {
	if _, err := e.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return fmt.Errorf("docker engine unreachable: %w", err)
	}
	return nil
}
