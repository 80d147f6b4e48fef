package controller

// A deploy's rollout: a reconcile applies under the run lock; a deploy
// then waits for what it applied to roll out without holding it, and the
// outcome is journaled once, when the target shows it.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// rolloutWatch is a deploy's gated change applied and not yet observed
// rolled out; its outcome (deploy_succeeded or deploy_failed) is journaled
// once, when observed. Guarded by d.runMu.
type rolloutWatch struct {
	started time.Time
	ops     []string
}

// noteRollout journals the outcome of the deploy's change once, when the
// target shows it: rolled out, or stopped by its progress deadline.
// Callers hold d.runMu.
func (d *Daemon) noteRollout(ctx context.Context, m *manifest.Manifest, s State) targets.RolloutStatus {
	st, err := d.target.Rolled(ctx, m, s)
	if err == nil && d.rolloutDenied(st.Denied) {
		return st
	}
	if err != nil || d.rollout == nil {
		if d.rollout == nil && err == nil && st.Failed == "" {
			d.endFailures()
		}
		return st
	}
	r := d.rollout
	switch {
	case st.Failed != "":
		d.rollout = nil
		d.deployFailed(errors.New(st.Failed))
	case st.Done:
		d.rollout = nil
		d.endFailures()
		d.event(journal.EventDeploySucceeded, fmt.Sprintf("converged in %s: %d operation(s)", time.Since(r.started).Round(time.Millisecond), len(r.ops)), "",
			map[string]any{"ops": r.ops})
	}
	return st
}

// awaitRollout waits, taking the run lock only to look and apply, until
// the deploy's change has rolled out (or failed, or its deadline passed).
func (d *Daemon) awaitRollout(ctx context.Context, m *manifest.Manifest, progress reconciler.Progress) error {
	poll, deadline := d.target.Await()
	until := time.Now().Add(deadline)
	said := ""
	for {
		d.runMu.Lock()
		d.mu.Lock()
		s := d.state
		d.mu.Unlock()
		var st targets.RolloutStatus
		ch, err := d.target.Change(ctx, m, s)
		if err == nil && !ch.Empty() && ch.Blocked() == "" {
			var lines []string
			lines, err = d.target.Apply(ctx, ch, targets.Hooks{Gate: func(ctx context.Context) reconciler.Decision { return d.gate(ctx, ch) }, Progress: progress, Deploy: true})
			if d.rollout != nil {
				d.rollout.ops = append(d.rollout.ops, lines...)
			}
		}
		if err == nil {
			st = d.noteRollout(ctx, m, s)
			if _, sv, oerr := d.target.Serves(ctx, ch); oerr == nil {
				d.noteServing(sv)
			}
		}
		d.runMu.Unlock()
		switch {
		case err != nil:
			return err
		case st.Failed != "":
			return errors.New(st.Failed)
		case st.Done:
			return nil
		case time.Now().After(until):
			return fmt.Errorf("not rolled out within %s: %s", deadline, st.Waiting)
		}
		if st.Waiting != said {
			progress("Waiting: " + st.Waiting)
			said = st.Waiting
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// planFailed journals a reconcile that could not plan, coalesced with the
// retries that fail the same way.
func (d *Daemon) planFailed(err error) {
	var pe *targets.PlanError
	if errors.As(err, &pe) {
		d.deployFailed(err)
	}
}
