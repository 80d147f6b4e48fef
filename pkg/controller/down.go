package controller

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/failpoint"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// down removes everything the project owns and stays down until the next
// deploy.
func (d *Daemon) down(ctx context.Context, user string, volumes bool, say func(string)) error {
	// Under the run lock, so a deploy already under way cannot clear Down
	// behind our back; the down is recorded first, so whatever is left
	// after a crash is never restored as a heal.
	d.runMu.Lock()
	defer d.runMu.Unlock()
	m := d.readManifest()
	if m == nil {
		return errors.New("no manifest loaded: nothing to remove")
	}
	if err := d.checkManifestDir(); err != nil {
		return err
	}
	if err := d.target.Forget(); err != nil {
		return err
	}
	d.mu.Lock()
	d.state.Down = true
	d.state.DownVolumes = d.state.DownVolumes || volumes
	d.state.Pending = nil
	err := d.saveStateLocked()
	d.mu.Unlock()
	if err != nil {
		return err
	}
	failpoint.Hit(failpoint.DownSaved)
	removed, err := d.removeAll(ctx, m, say)
	if err != nil {
		return err
	}
	d.event(eventDown, "removed everything project "+m.Project+" owns ("+d.target.Name()+")", user, map[string]any{"removed": removed})
	return nil
}

// removeAll removes everything m's project owns and forgets what the
// target tracked of it (the applied record, a rollout awaited). Callers
// hold d.runMu.
func (d *Daemon) removeAll(ctx context.Context, m *manifest.Manifest, say func(string)) ([]string, error) {
	d.mu.Lock()
	volumes := d.state.DownVolumes
	d.mu.Unlock()
	plan, err := d.target.Teardown(ctx, m, volumes)
	if err != nil {
		return nil, err
	}
	// The plan runs operation by operation, each journaled as it runs:
	// what a crash leaves is in the journal up to the last one that ran,
	// and the restarted daemon plans (and journals) the rest.
	var removed []string
	for _, r := range plan {
		if err := r.Run(ctx); err != nil {
			return removed, fmt.Errorf("%s %s: %w", r.Op, r.Target, err)
		}
		removed = append(removed, r.Target)
		d.event(r.Event, fmt.Sprintf("removed %s (%s)", r.Target, r.Op), "", map[string]any{"op": r.Op, "target": r.Target})
		if say != nil {
			say("Removed " + r.Target)
		}
		if r.After != "" {
			failpoint.Hit(r.After)
		}
	}
	if err := d.target.Forget(); err != nil {
		return removed, err
	}
	d.rollout = nil // nothing is left to roll out: no outcome to journal
	d.mu.Lock()
	d.lastMode = stack.TrackStable // nothing serves; a later canary is a switch
	d.mu.Unlock()
	return removed, nil
}

// finishDown completes a down that a crash interrupted: the state says
// down, yet something remains. Callers hold d.runMu.
func (d *Daemon) finishDown(ctx context.Context, m *manifest.Manifest) error {
	if m == nil {
		return nil
	}
	var said []string
	removed, err := d.removeAll(ctx, m, func(line string) { said = append(said, line) })
	if err != nil {
		return fmt.Errorf("finish interrupted down of %s: %w", m.Project, err)
	}
	if len(removed) > 0 {
		d.log.Info("finished an interrupted down", zap.Strings("removed", removed))
		d.event(eventDown, "finished an interrupted down: removed everything project "+m.Project+" owns", "", map[string]any{"removed": said})
	}
	return nil
}
