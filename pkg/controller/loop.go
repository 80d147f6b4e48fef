package controller

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
	"github.com/swiftdeploy/swiftdeploy/pkg/redact"
	"github.com/swiftdeploy/swiftdeploy/pkg/render"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
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

// reconcileOnce reads the manifest and converges, on any target,
// reporting to every API call that was waiting when it started. It never
// panics. A deploy waits for its change to roll out, but not under the run
// lock: a rollback or abort meanwhile does not wait for the rollout.
func (d *Daemon) reconcileOnce(ctx context.Context) (err error) {
	tr := trace.New()
	ctx = trace.With(ctx, tr)
	began := time.Now()
	d.mu.Lock()
	waiters := d.waiters
	d.waiters = nil
	ev := d.manifestEvent
	d.manifestEvent = manifestEvent{}
	d.mu.Unlock()
	d.metrics.ManifestEdited(ev.first)
	trigger := "other"
	if !ev.first.IsZero() {
		trigger = "manifest"
		tr.Add(trace.Span{Step: "manifest event", Start: ev.first, End: ev.first})
		tr.Add(trace.Span{Step: "debounce", Start: ev.first, End: ev.fired})
		tr.Add(trace.Span{Step: "queued", Start: ev.fired, End: began})
	}
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
	m, err := d.reconcileLocked(ctx, tr, trigger, began, len(waiters) > 0, progress)
	if err != nil || m == nil || len(waiters) == 0 {
		return err
	}
	// A deploy waits for what it asked for to roll out.
	if err := d.awaitRollout(ctx, m, progress); err != nil {
		return err
	}
	progress("Deployment successful")
	return nil
}

// reconcileLocked is one pass under the run lock: read the manifest,
// settle a transition a dead daemon left, observe, plan, gate, apply.
func (d *Daemon) reconcileLocked(ctx context.Context, tr *trace.Trace, trigger string, began time.Time, deploy bool, progress reconciler.Progress) (m *manifest.Manifest, err error) {
	endLock := tr.Begin("wait run lock", "")
	d.runMu.Lock()
	defer d.runMu.Unlock()
	endLock()
	cpu0 := cpuTime()
	// The manifest is read even while down, so that status, diff and down
	// itself know the project.
	endRead := tr.Begin("read manifest", "")
	m = d.readManifest()
	endRead()
	if err := d.checkManifestDir(); err != nil {
		d.recordRun(time.Now(), nil, err)
		return nil, err
	}
	if deploy { // only deploy waits on a reconcile: it ends down
		d.mu.Lock()
		if d.state.Down {
			d.state.Down = false
			logErr(d.log, "save state", d.saveStateLocked())
		}
		d.mu.Unlock()
	} else if d.isDown() {
		// A down interrupted by a crash left something: finish it.
		return nil, d.finishDown(ctx, m)
	}
	if m == nil {
		if deploy {
			return nil, fmt.Errorf("no valid manifest: %s", strings.Join(d.manifestErrors(), "; "))
		}
		return nil, nil
	}
	if errs := d.manifestErrors(); len(errs) > 0 && deploy {
		return nil, fmt.Errorf("manifest rejected, last good manifest stays in force: %s", strings.Join(errs, "; "))
	}
	progress("Manifest valid")

	start := time.Now()
	endStep := tr.Begin("resolve pending", "")
	err = d.resolvePending(ctx, m)
	endStep()
	if err != nil {
		d.recordRun(start, nil, err)
		return nil, err
	}
	d.spendDecisions(m)
	if d.kt == nil {
		// nginx.tls's certificate for the Docker target's front door
		// (files are read at every apply).
		endStep = tr.Begin("certificates", "")
		err = d.syncCerts(m)
		endStep()
		if err != nil {
			d.recordRun(start, nil, err)
			return nil, err
		}
	}
	if !d.trafficAdopted {
		// Once per daemon: nginx's loaded hold on traffic is the truth.
		if sv, err := d.target.Serving(ctx, m); err == nil && sv.Mode != "" {
			d.adoptTraffic(sv)
			d.trafficAdopted = true
		}
	}
	d.mu.Lock()
	s := d.state
	d.mu.Unlock()
	ch, err := d.target.Change(ctx, m, s) // traces "observe" and "plan"
	if err != nil {
		d.planFailed(err)
		d.recordRun(start, nil, err)
		return nil, err
	}
	d.setEngineErr(nil)
	if !ch.Empty() {
		d.log.Info("plan", zap.Strings("ops", ch.Lines()))
		// One line with every step's timing, for operators and the
		// rollout benchmark; a converged resync is not news.
		defer func() {
			d.log.Info("reconcile trace", zap.String("trigger", trigger), zap.Int("ops", len(ch.Lines())),
				zap.Duration("took", time.Since(began)), zap.Duration("cpu", cpuTime()-cpu0),
				zap.Bool("ok", err == nil), zap.Any("spans", tr.Spans()))
		}()
	}
	lines, err := d.target.Apply(ctx, ch, Hooks{Gate: func(ctx context.Context) reconciler.Decision { return d.gate(ctx, ch) }, Progress: progress, Deploy: true})
	var denied *reconciler.DeniedError
	switch {
	case errors.As(err, &denied):
		d.endFailures()
		d.deployDenied(denied)
		d.target.Heal(ctx, ch, progress)
	case err != nil && !ch.Empty():
		d.endDenials()
		d.rollout = nil // its outcome is this failure, journaled once here
		d.deployFailed(err)
	case err == nil:
		d.endDenials()
		d.clearDenial()
		d.manifestTookEffect(m)
		if ch.Gated() && len(lines) > 0 && d.rollout == nil {
			d.rollout = &rolloutWatch{started: start}
		}
		if d.rollout != nil {
			d.rollout.ops = append(d.rollout.ops, lines...)
		}
	}
	if err == nil {
		d.noteRollout(ctx, m, s)
	}
	sv := ch.Serving()
	if !ch.Empty() { // the apply changed what runs: look again
		endStep = tr.Begin("observe after apply", "")
		if _, after, oerr := d.target.Serves(ctx, ch); oerr == nil {
			sv = after
		}
		endStep()
	}
	d.noteServing(sv)
	d.syncHold(sv)
	d.recordRun(start, lines, err)
	return m, err
}

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
func (d *Daemon) noteRollout(ctx context.Context, m *manifest.Manifest, s State) RolloutStatus {
	st, err := d.target.Rolled(ctx, m, s)
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
		var st RolloutStatus
		ch, err := d.target.Change(ctx, m, s)
		if err == nil && !ch.Empty() && ch.Blocked() == "" {
			var lines []string
			lines, err = d.target.Apply(ctx, ch, Hooks{Gate: func(ctx context.Context) reconciler.Decision { return d.gate(ctx, ch) }, Progress: progress, Deploy: true})
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

// planError is a change that could not be planned (the API server refused
// a dry run): a failed deploy, unlike a target that cannot be reached
// (setEngineErr journals that).
type planError struct{ err error }

func (e *planError) Error() string { return e.err.Error() }
func (e *planError) Unwrap() error { return e.err }

// planFailed journals a reconcile that could not plan, coalesced with the
// retries that fail the same way.
func (d *Daemon) planFailed(err error) {
	var pe *planError
	if errors.As(err, &pe) {
		d.deployFailed(err)
	}
}

// checkManifestDir refuses to change anything while the manifest's
// directory, or the manifest in it, is gone: the configuration, the state
// and nginx's mounted directories live there, and someone is replacing it
// (a redeploy of the configuration, a restored backup, an editor between
// removing and writing). What runs keeps running untouched; recreating
// the directory or its state ourselves would get in their way. Once the
// manifest is back, the state directories are made again and the
// reconcile goes on (nginx, whose mounts still pin the old directories, is
// replaced).
func (d *Daemon) checkManifestDir() error {
	if _, err := os.Stat(d.dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("manifest directory %s is missing: what runs is left as it is until the directory is back", d.dir)
		}
		return fmt.Errorf("manifest directory %s: %w", d.dir, err)
	}
	if _, err := os.Stat(d.cfg.ManifestPath); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("manifest %s is missing: what runs is left as it is until it is back", d.cfg.ManifestPath)
		}
		return fmt.Errorf("manifest %s: %w", d.cfg.ManifestPath, err)
	}
	if err := atomicfile.MkdirAll(d.stateDir, 0o750); err != nil {
		return fmt.Errorf("state directory %s: %w", d.stateDir, err)
	}
	if d.rec != nil {
		return d.rec.EnsureDirs()
	}
	return nil
}

// manifestEvent is the file-event burst that triggered a reconcile: the
// first event received and when its debounce fired.
type manifestEvent struct{ first, fired time.Time }

// noteManifestEvent hands a burst's timing to the next reconcile's trace.
func (d *Daemon) noteManifestEvent(first, fired time.Time) {
	d.mu.Lock()
	if d.manifestEvent.first.IsZero() {
		d.manifestEvent = manifestEvent{first: first, fired: fired}
	}
	d.mu.Unlock()
}

// readManifest reads the manifest file. A new version is accepted only if
// it parses, derives a stack and renders; otherwise it is reported and the
// last good one stays in force.
func (d *Daemon) readManifest() *manifest.Manifest {
	defer d.drainJournalAfter(d.journalMark()) // events it queues under d.mu are written once d.mu is released
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
	var deployed string
	if d.current != nil {
		deployed = d.current.Project
	} else {
		deployed = d.rec.AppliedProject() // after a restart
	}
	if deployed != "" && m.Project != deployed && !d.state.Down {
		msgs := []string{fmt.Sprintf("project: cannot change from %q to %q while deployed; run `swiftctl down` first", deployed, m.Project)}
		if d.current == nil {
			msgs[0] = fmt.Sprintf("project: cannot change from %q to %q while deployed; set project back to %q and run `swiftctl down` first", deployed, m.Project, deployed)
		}
		if strings.Join(msgs, "\n") != strings.Join(d.manifestErr, "\n") {
			d.eventLocked(journal.EventManifestRejected, "manifest rejected: "+msgs[0], "", map[string]any{"problems": msgs})
		}
		d.manifestErr = msgs
		return d.current
	}
	d.manifestErr = nil
	if d.current == nil || d.current.Hash() != m.Hash() {
		d.scrub = redact.NewScrubber(secretsOf(m)...)
	}
	// Parsing is not applying: manifest_applied is journaled by the
	// reconcile that makes the change take effect (manifestTookEffect),
	// not by this read, which status and diff do too.
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
	defer d.drainJournalAfter(d.journalMark()) // events it queues under d.mu are written once d.mu is released
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

func (d *Daemon) recordRun(start time.Time, lines []string, err error) {
	dur := time.Since(start)
	d.metrics.observeReconcile(dur, err)
	info := &api.ReconcileInfo{Started: start.UTC(), Duration: dur.Round(time.Millisecond).String(), Plan: lines}
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
	// docker-compose.yml holds every env value: owner only. nginx.conf
	// holds none, but it is derived from the manifest and no one else
	// needs it: owner and the daemon's group.
	if _, err := atomicfile.WriteIfChanged(filepath.Join(d.dir, "docker-compose.yml"), compose, 0o600); err != nil {
		return err
	}
	_, err = atomicfile.WriteIfChanged(filepath.Join(d.dir, "nginx.conf"), desired.Conf, 0o640)
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

// noteServing journals a change of the mode the route serves, once, when
// it has taken effect.
func (d *Daemon) noteServing(sv Serving) {
	defer d.drainJournalAfter(d.journalMark()) // events it queues under d.mu are written once d.mu is released
	if sv.Mode == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if sv.Mode == d.lastMode {
		return
	}
	msg := "Mode switched to " + sv.Mode
	details := map[string]any{"mode": sv.Mode}
	if sv.Mode == stack.TrackCanary {
		msg = fmt.Sprintf("Mode switched to canary (%s at %d%%)", sv.CanaryImage, sv.CanaryWeight)
		details["image"], details["weight"] = sv.CanaryImage, sv.CanaryWeight
	}
	d.eventLocked(journal.EventModeSwitched, msg, "", details)
	d.lastMode = sv.Mode
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
	_ = d.jr.Flush()
	// The newest mode switch or down decides; read back from the newest
	// file, not the whole history.
	r, ok, err := journal.Latest(d.journalPath(), journal.Filter{Events: []string{journal.EventModeSwitched, eventDown}})
	if err != nil {
		d.log.Warn("journal: last mode switch not read; assuming stable", zap.Error(err))
	}
	if ok && r.Event == journal.EventModeSwitched {
		if m, ok := r.Details["mode"].(string); ok {
			return m
		}
	}
	return stack.TrackStable // nothing serves after down: a later canary is a switch
}

// healWhileDenied restores what was applied while the change the manifest
// asks for is denied: a busy host must not keep a crashed replica or a
// removed front door down just because a change is waiting.
func (d *Daemon) healWhileDenied(ctx context.Context, desired reconciler.Desired, obs reconciler.Observed, progress reconciler.Progress) {
	restore, heal := reconciler.HealPlan(desired, obs, d.rec.LiveConfig())
	if heal.Empty() || heal.Blocked != "" {
		return
	}
	d.log.Info("change denied; restoring what was applied", zap.String("ops", heal.String()))
	if err := d.rec.ApplyGated(ctx, restore, heal, nil, progress); err != nil {
		d.log.Warn("restoring what was applied failed", zap.Error(err))
	}
}
