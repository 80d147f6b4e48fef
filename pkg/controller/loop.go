package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

// loop runs reconciles one at a time, backing off after failures.
func (d *Daemon) loop(ctx context.Context) {
	resync := time.NewTicker(d.cfg.Resync)
	defer resync.Stop()
	backoff := time.Duration(0)
	var retry <-chan time.Time
	lasting := "" // the lasting failure last logged
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
			backoff, retry, lasting = 0, nil, ""
		case ctx.Err() != nil:
			return
		case pullDenied(err) != nil, workerRejected(err) != nil:
			// A registry's refusal, or a worker revision judged failing,
			// does not change by retrying: no backoff loop. A manifest
			// edit, a deploy or the resync (which sees changed
			// credentials) tries again.
			backoff, retry = 0, nil
			if msg := err.Error(); msg != lasting {
				lasting = msg
				d.log.Warn("reconcile failed lastingly; not retried until the manifest (or the credentials) change", zap.Error(err))
			}
		default:
			backoff = min(max(2*backoff, time.Second), 2*time.Minute)
			retry = time.After(backoff)
			d.log.Warn("reconcile failed; will retry", zap.Error(err), zap.Duration("in", backoff))
		}
	}
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
	user := "" // who asked for this reconcile: the first deploy waiting that names someone
	for _, w := range waiters {
		if w.user != "" {
			user = w.user
			break
		}
	}
	m, err := d.reconcileLocked(ctx, tr, trigger, began, len(waiters) > 0, user, progress)
	if err != nil || m == nil || len(waiters) == 0 {
		return err
	}
	// A deploy of a manifest whose worker revision stands rejected fails
	// with the rejection: the rest converged, but not what it asked for
	// (journaled once already, when judged).
	if err := d.standingRejection(m); err != nil {
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
func (d *Daemon) reconcileLocked(ctx context.Context, tr *trace.Trace, trigger string, began time.Time, deploy bool, user string, progress reconciler.Progress) (m *manifest.Manifest, err error) {
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
	if d.kt != nil {
		// Another daemon leads the namespace: it applies, this one only
		// observes; it has read the manifest, whose project names the
		// Lease (status reads the informers' cache).
		if err := d.kt.Acting(); err != nil {
			if deploy {
				return nil, err
			}
			return nil, nil
		}
	}
	if deploy { // only deploy waits on a reconcile: it ends down
		d.mu.Lock()
		if d.state.Down {
			d.state.Down, d.state.DownVolumes = false, false
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
	d.settleReleases(ctx)
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
	lines, err := d.target.Apply(ctx, ch, targets.Hooks{Gate: func(ctx context.Context) reconciler.Decision { return d.gate(ctx, ch) }, Progress: progress, Deploy: true})
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
		if pd := pullDenied(err); pd != nil {
			d.notePullDenied(pd)
		}
		if wr := workerRejected(err); wr != nil {
			d.noteWorkerRejected(wr)
		}
	case err == nil:
		d.endDenials()
		// A registry's refusal of the rollout's pods (Kubernetes) is
		// noteRollout's to keep or lift: clearing it here would blank
		// status for a moment on every resync.
		d.clearDenialExcept(policyRegistry)
		d.noteStandingRejection(m)
		d.manifestTookEffect(ctx, m, user)
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

// clearDenialExcept clears status's denial unless policy made it.
func (d *Daemon) clearDenialExcept(policy string) {
	d.mu.Lock()
	if d.denial != nil && d.denial.Policy != policy {
		d.denial = nil
	}
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

// wait enqueues a reconcile and blocks until one that started after this
// call finishes.
func (d *Daemon) wait(ctx context.Context, progress reconciler.Progress) error {
	return d.waitAs(ctx, "", progress)
}

// waitAs is wait for a deploy asked for by user: the release the
// reconcile makes, if any, names them. The user rides with the request,
// so a deploy that changes nothing lends it to no later reconcile.
func (d *Daemon) waitAs(ctx context.Context, user string, progress reconciler.Progress) error {
	w := &waiter{progress: progress, done: make(chan error, 1), user: user}
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

// noteServing journals a change of the mode the route serves, once, when
// it has taken effect.
func (d *Daemon) noteServing(sv targets.Serving) {
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
