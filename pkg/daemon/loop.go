package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/render"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// loop runs reconciles one at a time, backing off after failures.
func (d *Daemon) loop(ctx context.Context) {
	resync := time.NewTicker(d.cfg.Resync)
	defer resync.Stop()
	backoff := time.Duration(0)
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.trigger:
			// While backing off after a failure, only a caller waiting for
			// the result (deploy) cuts the wait short; events caused by the
			// failed attempt itself must not spin the loop. A manifest edit
			// or the engine's return arrive on d.wake instead.
			if retry != nil && !d.hasWaiters() {
				continue
			}
		case <-d.wake:
		case <-resync.C:
			// A streak whose retries stopped is still summarised.
			logErr(d.log, "journal: sweep repeat summaries", d.repeats.Sweep(d.jr))
		case <-retry:
		}
		err := d.reconcileOnce(ctx)
		switch {
		case err == nil:
			backoff, retry = 0, nil
		case ctx.Err() != nil:
			return
		default:
			backoff = min(max(2*backoff, time.Second), 2*time.Minute)
			retry = time.After(backoff)
			d.log.Warn("reconcile failed; will retry", zap.Error(err), zap.Duration("in", backoff))
		}
	}
}

// desired computes what to converge to from m and the recorded state s.
func desiredFor(m *manifest.Manifest, s State) (reconciler.Desired, error) {
	st := stack.FromManifest(m, s.options(m))
	conf, err := render.Nginx(st)
	if err != nil {
		return reconciler.Desired{}, fmt.Errorf("render nginx config: %w", err)
	}
	rev, err := render.NginxRevision(conf)
	if err != nil {
		return reconciler.Desired{}, err
	}
	return reconciler.Desired{Stack: st, Conf: conf, Revision: rev}, nil
}

func (d *Daemon) desired(m *manifest.Manifest) (reconciler.Desired, error) {
	d.mu.Lock()
	s := d.state
	d.mu.Unlock()
	return desiredFor(m, s)
}

// reconcileOnce reads the manifest and converges, reporting to every API
// call that was waiting when it started. It never panics.
func (d *Daemon) reconcileOnce(ctx context.Context) (err error) {
	if d.kt != nil {
		return d.kubeReconcileOnce(ctx)
	}
	d.mu.Lock()
	waiters := d.waiters
	d.waiters = nil
	d.mu.Unlock()
	progress := func(line string) {
		for _, w := range waiters {
			if w.progress != nil {
				w.progress(line)
			}
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reconcile panicked: %v", r)
			d.log.Error("reconcile panicked", zap.Any("panic", r), zap.Stack("stack"))
		}
		for _, w := range waiters {
			w.done <- err
		}
	}()

	d.runMu.Lock()
	defer d.runMu.Unlock()
	// The manifest is read even while down, so that status, diff and down
	// itself know the project.
	m := d.readManifest()
	if len(waiters) > 0 { // only deploy waits on a reconcile: it ends down
		d.mu.Lock()
		if d.state.Down {
			d.state.Down = false
			logErr(d.log, "save state", d.saveStateLocked())
		}
		d.mu.Unlock()
	} else if d.isDown() {
		// A down interrupted by a crash left containers: finish it.
		return d.finishDown(ctx, m)
	}
	if m == nil {
		if len(waiters) > 0 {
			return fmt.Errorf("no valid manifest: %s", strings.Join(d.manifestErrors(), "; "))
		}
		return nil
	}
	if errs := d.manifestErrors(); len(errs) > 0 && len(waiters) > 0 {
		return fmt.Errorf("manifest rejected, last good manifest stays in force: %s", strings.Join(errs, "; "))
	}
	progress("Manifest valid")

	start := time.Now()
	if err := d.resolvePending(ctx, m); err != nil {
		d.recordRun(start, reconciler.Plan{}, err)
		return err
	}
	desired, err := d.desired(m)
	if err != nil {
		return err
	}
	obs, err := d.rec.Observe(ctx, desired)
	if err != nil {
		d.setEngineErr(err)
		d.recordRun(start, reconciler.Plan{}, err)
		return err
	}
	d.setEngineErr(nil)
	plan := reconciler.Compute(desired, obs)
	if !plan.Empty() {
		d.log.Info("plan", zap.String("ops", plan.String()))
	}
	err = d.rec.Apply(ctx, desired, plan, progress)
	var denied *reconciler.DeniedError
	switch {
	case errors.As(err, &denied):
		d.deployDenied(denied)
		d.healWhileDenied(ctx, desired, obs, progress)
	case err != nil && !plan.Empty():
		d.endDenials()
		d.event(journal.EventDeployFailed, err.Error(), "", nil)
	case err == nil:
		d.endDenials()
		d.clearDenial()
		if err := d.writeArtifacts(desired); err != nil {
			d.log.Error("write generated files", zap.Error(err))
		}
		if plan.Gated() {
			d.event(journal.EventDeploySucceeded, fmt.Sprintf("converged in %s: %d operation(s)", time.Since(start).Round(time.Millisecond), len(plan.Ops)), "", nil)
		}
		progress("Deployment successful")
	}
	if !plan.Empty() { // the apply changed what runs: look again
		if obs2, oerr := d.rec.Observe(ctx, desired); oerr == nil {
			obs = obs2
		}
	}
	d.noteServing(obs)
	d.recordRun(start, plan, err)
	return err
}

// readManifest reads the manifest file. A new version is accepted only if
// it parses, derives a stack and renders; otherwise it is reported and the
// last good one stays in force.
func (d *Daemon) readManifest() *manifest.Manifest {
	data, rerr := os.ReadFile(d.cfg.ManifestPath)
	d.mu.Lock()
	defer d.mu.Unlock()
	if rerr == nil && bytes.Equal(data, d.lastBytes) && d.current != nil {
		return d.current
	}
	var m *manifest.Manifest
	err := rerr
	if err == nil {
		d.lastBytes = data
		m, err = accept(data, filepath.Base(d.dir))
	}
	if err != nil {
		var ve *manifest.ValidationError
		var msgs []string
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				msgs = append(msgs, p.String())
			}
		} else {
			msgs = []string{err.Error()}
		}
		if strings.Join(msgs, "\n") != strings.Join(d.manifestErr, "\n") {
			d.log.Error("manifest rejected; keeping the last good one", zap.Strings("problems", msgs))
			d.eventLocked(journal.EventManifestRejected, "manifest rejected: "+strings.Join(msgs, "; "), "", map[string]any{"problems": msgs})
		}
		d.manifestErr = msgs
		return d.current
	}
	if d.current != nil && m.Project != d.current.Project && !d.state.Down {
		msgs := []string{fmt.Sprintf("project: cannot change from %q to %q while deployed; run `swiftctl down` first", d.current.Project, m.Project)}
		if strings.Join(msgs, "\n") != strings.Join(d.manifestErr, "\n") {
			d.eventLocked(journal.EventManifestRejected, "manifest rejected: "+msgs[0], "", map[string]any{"problems": msgs})
		}
		d.manifestErr = msgs
		return d.current
	}
	d.manifestErr = nil
	if d.current == nil || d.current.Hash() != m.Hash() {
		d.eventLocked(journal.EventManifestApplied, "manifest loaded", "", map[string]any{"stable_image": m.Services.Image})
	}
	d.current = m
	return m
}

// accept parses a manifest and proves it can be deployed: the stack
// derives and both files render (render.Accept).
func accept(data []byte, defaultProject string) (*manifest.Manifest, error) {
	return render.Accept(data, defaultProject)
}

func (d *Daemon) hasWaiters() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.waiters) > 0
}

func (d *Daemon) isDown() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state.Down
}

func (d *Daemon) manifestErrors() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.manifestErr
}

func (d *Daemon) manifestNow() *manifest.Manifest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.current
}

func (d *Daemon) setEngineErr(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	was := d.engineErr
	if err == nil {
		d.engineErr = ""
		if was != "" {
			msg := "docker engine reachable again"
			if d.kt != nil {
				msg = "Kubernetes API server reachable again"
			}
			d.eventLocked(journal.EventEngineReconnected, msg, "", nil)
		}
		return
	}
	d.engineErr = err.Error()
	if was == "" {
		d.eventLocked(journal.EventEngineUnreachable, err.Error(), "", nil)
	}
}

func (d *Daemon) clearDenial() {
	d.mu.Lock()
	d.denial = nil
	d.mu.Unlock()
}

func (d *Daemon) recordRun(start time.Time, plan reconciler.Plan, err error) {
	dur := time.Since(start)
	d.metrics.observeReconcile(dur, err)
	info := &api.ReconcileInfo{Started: start.UTC(), Duration: dur.Round(time.Millisecond).String(), Plan: plan.Lines()}
	if err != nil {
		info.Error = err.Error()
	}
	d.mu.Lock()
	d.last = info
	d.mu.Unlock()
}

// writeArtifacts writes docker-compose.yml and nginx.conf beside the
// manifest, only when their bytes changed. It runs after a successful
// apply, so nginx.conf there is what nginx has loaded.
func (d *Daemon) writeArtifacts(desired reconciler.Desired) error {
	compose, err := render.Compose(desired.Stack)
	if err != nil {
		return err
	}
	if _, err := atomicfile.WriteIfChanged(filepath.Join(d.dir, "docker-compose.yml"), compose, 0o644); err != nil {
		return err
	}
	_, err = atomicfile.WriteIfChanged(filepath.Join(d.dir, "nginx.conf"), desired.Conf, 0o644)
	return err
}

// wait enqueues a reconcile and blocks until one that started after this
// call finishes.
func (d *Daemon) wait(ctx context.Context, progress reconciler.Progress) error {
	w := &waiter{progress: progress, done: make(chan error, 1)}
	d.mu.Lock()
	d.waiters = append(d.waiters, w)
	d.mu.Unlock()
	d.Wake()
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *Daemon) failWaiters(err error) {
	d.mu.Lock()
	ws := d.waiters
	d.waiters = nil
	d.mu.Unlock()
	for _, w := range ws {
		w.done <- err
	}
}

// servingMode is the mode nginx actually serves: canary when its loaded
// configuration sends a share of traffic to canary containers.
func servingMode(obs reconciler.Observed) string {
	if obs.Loaded == nil {
		return ""
	}
	if obs.Loaded.Weight > 0 && len(obs.Loaded.Canary) > 0 {
		return stack.TrackCanary
	}
	return stack.TrackStable
}

// noteServing journals a change of the mode nginx serves, once, when it
// has taken effect.
func (d *Daemon) noteServing(obs reconciler.Observed) {
	mode := servingMode(obs)
	if mode == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if mode == d.lastMode {
		return
	}
	msg := "Mode switched to " + mode
	details := map[string]any{"mode": mode}
	if mode == stack.TrackCanary {
		image := imageOf(obs, obs.Loaded.Canary)
		msg = fmt.Sprintf("Mode switched to canary (%s at %d%%)", image, obs.Loaded.Weight)
		details["image"], details["weight"] = image, obs.Loaded.Weight
	}
	d.eventLocked(journal.EventModeSwitched, msg, "", details)
	d.lastMode = mode
}

// imageOf is the image label of the first observed container named in names.
func imageOf(obs reconciler.Observed, names []string) string {
	for _, n := range names {
		for _, c := range obs.Containers {
			if c.Name == n {
				return c.Image
			}
		}
	}
	return ""
}

// journaledMode is the mode of the last mode_switched event, so that a
// restarted daemon journals a switch exactly once. Without one, the mode
// is stable: a first canary is a switch.
func (d *Daemon) journaledMode() string {
	mode := stack.TrackStable
	_ = d.jr.Flush()
	_ = journal.Read(d.journalPath(), journal.Filter{Types: []string{journal.TypeEvent}}, func(r journal.Record) error {
		switch r.Event {
		case journal.EventModeSwitched:
			if m, ok := r.Details["mode"].(string); ok {
				mode = m
			}
		case eventDown: // nothing serves after down: a later canary is a switch
			mode = stack.TrackStable
		}
		return nil
	})
	return mode
}

// healWhileDenied restores what was applied while the change the manifest
// asks for is denied: a busy host must not keep a crashed replica or a
// removed front door down just because a change is waiting.
func (d *Daemon) healWhileDenied(ctx context.Context, desired reconciler.Desired, obs reconciler.Observed, progress reconciler.Progress) {
	heal := reconciler.HealPlan(desired, obs, d.rec.LiveConfig())
	if heal.Empty() || heal.Blocked != "" {
		return
	}
	d.log.Info("change denied; restoring what was applied", zap.String("ops", heal.String()))
	restore := reconciler.Desired{Stack: desired.Stack, Conf: d.rec.LiveConfig(), Revision: obs.Applied.Revision}
	if err := d.rec.ApplyGated(ctx, restore, heal, nil, progress); err != nil {
		d.log.Warn("restoring what was applied failed", zap.Error(err))
	}
}
