package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

// Applied records the last desired state whose plan was applied in full.
// It tells a heal (restoring what was deployed) from a change.
type Applied struct {
	// Project is the project applied: a daemon restarted on a manifest
	// that renames it must refuse, not deploy a second stack beside it.
	Project  string   `json:"project,omitempty"`
	Apps     []string `json:"apps"`     // container names (they encode spec hash and replica)
	Nginx    string   `json:"nginx"`    // nginx spec hash
	Revision string   `json:"revision"` // nginx config revision
	Weight   int      `json:"weight"`   // the primary's canary's (stack.Stack.CanaryWeight)
	Stable   []string `json:"stable,omitempty"`
	// Canary names every canary container, the primary's first
	// (stack.Stack.Canaries); the other services' weights are in Stack.
	Canary []string `json:"canary,omitempty"`
	// Stack is the stack applied, so that a heal while a change is denied
	// restores the applied containers (their image, env, limits), not the
	// denied change's. Absent in records written before it existed.
	Stack *stack.Stack `json:"stack,omitempty"`
}

// AppliedFor is the record Apply writes once desired has been applied.
func AppliedFor(d Desired) *Applied {
	st := d.Stack
	a := &Applied{Project: d.Stack.Project, Nginx: d.Stack.Nginx.Hash, Revision: d.Revision, Weight: d.Stack.CanaryWeight, Stack: &st}
	for _, app := range d.Stack.Stable {
		a.Apps = append(a.Apps, app.Name)
		a.Stable = append(a.Stable, app.Name)
	}
	for _, app := range d.Stack.Canaries() {
		a.Apps = append(a.Apps, app.Name)
		a.Canary = append(a.Canary, app.Name)
	}
	return a
}

func (r *Reconciler) readApplied() (*Applied, error) {
	if r.AppliedPath == "" {
		return nil, nil
	}
	b, err := os.ReadFile(r.AppliedPath)
	if errors.Is(err, os.ErrNotExist) {
		r.appliedMu.Lock()
		a := r.applied
		r.appliedMu.Unlock()
		if a == nil {
			return nil, nil
		}
		// The record was removed under a running daemon (its directory
		// deleted and recreated): what this process applied is still
		// known, so restoring it stays a heal rather than a gated change.
		r.log().Warn("applied state file missing; using the state this daemon applied", zap.String("path", r.AppliedPath))
		if werr := r.writeApplied(context.Background(), a); werr != nil {
			r.log().Warn("applied state not rewritten", zap.String("path", r.AppliedPath), zap.Error(werr))
		}
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read applied state: %w", err)
	}
	var a Applied
	if err := json.Unmarshal(b, &a); err != nil {
		// A damaged record only costs a gate decision: treat as unknown.
		r.log().Warn("applied state unreadable; treating every start as a change", zap.String("path", r.AppliedPath), zap.Error(err))
		return nil, nil
	}
	r.appliedMu.Lock()
	r.applied = &a
	r.appliedMu.Unlock()
	return &a, nil
}

// AppliedProject is the project of the applied record ("" when there is
// none, or it predates the field).
func (r *Reconciler) AppliedProject() string {
	if r == nil {
		return ""
	}
	a, err := r.readApplied()
	if err != nil || a == nil {
		return ""
	}
	return a.Project
}

// AppliedStack is the stack of the applied record: what a deploy last
// applied in full, through the gates (nil when there is none).
func (r *Reconciler) AppliedStack() *stack.Stack {
	if r == nil {
		return nil
	}
	a, err := r.readApplied()
	if err != nil || a == nil {
		return nil
	}
	return a.Stack
}

func (r *Reconciler) writeApplied(ctx context.Context, a *Applied) error {
	if r.AppliedPath == "" {
		return nil
	}
	defer trace.Begin(ctx, "write applied", "")()
	r.appliedMu.Lock()
	r.applied = a
	r.appliedMu.Unlock()
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	// The applied stack holds every env value: owner only.
	_, err = atomicfile.WriteIfChanged(r.AppliedPath, b, 0o600)
	return err
}

// ForgetApplied drops the applied record (after `down`: a new deploy is a
// change, not a heal).
func (r *Reconciler) ForgetApplied() error {
	if r.AppliedPath == "" {
		return nil
	}
	r.appliedMu.Lock()
	r.applied = nil
	r.appliedMu.Unlock()
	if err := os.Remove(r.AppliedPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("forget applied state: %w", err)
	}
	return nil
}
