package render

import (
	"fmt"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Accept is the one test of a manifest: the daemon before it adopts one
// and swiftctl validate both call it. It parses and validates data, derives
// the stack (as deployed before any promotion or rollback refines it) and
// renders nginx.conf and docker-compose.yml, and returns the manifest only
// if every stage succeeds. A manifest that validates but would not render
// is refused here, rather than when the daemon is already converging.
//
// The error is the first stage's, wrapped and named: "parse manifest: ",
// "derive stack: ", "render nginx.conf: " or "render docker-compose.yml: ".
// A parse error wraps the *manifest.ValidationError, for callers that list
// its problems.
func Accept(data []byte, defaultProject string) (*manifest.Manifest, error) {
	return defaultAcceptor.accept(data, defaultProject)
}

// acceptor holds Accept's stages after parsing, so that a test can make
// each one fail.
type acceptor struct {
	derive         func(*manifest.Manifest, stack.Options) stack.Stack
	nginx, compose func(stack.Stack) ([]byte, error)
}

var defaultAcceptor = acceptor{derive: stack.FromManifest, nginx: Nginx, compose: Compose}

func (a acceptor) accept(data []byte, defaultProject string) (*manifest.Manifest, error) {
	m, err := manifest.Parse(data, defaultProject)
	if err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	s, err := a.deriveStack(m)
	if err != nil {
		return nil, err
	}
	if _, err := a.nginx(s); err != nil {
		return nil, fmt.Errorf("render nginx.conf: %w", err)
	}
	if _, err := a.compose(s); err != nil {
		return nil, fmt.Errorf("render docker-compose.yml: %w", err)
	}
	return m, nil
}

// deriveStack runs the derivation, turning a panic into an error:
// FromManifest only panics on a programming error, and a manifest that
// triggers one must be refused, not bring the daemon down.
func (a acceptor) deriveStack(m *manifest.Manifest) (s stack.Stack, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("derive stack: %v", r)
		}
	}()
	return a.derive(m, stack.Options{}), nil
}
