package controller

// The Kubernetes target (swiftdeployd --target kubernetes): the same
// control loop, journal, policies, state and control socket as on Docker,
// converging a namespace by server-side apply instead of containers and
// nginx. pkg/kubetarget plans; this file runs the plans; kube_status.go
// reports what the API says; kube_rollout.go makes promotion and
// rollback transactions.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// KubeConfig selects the Kubernetes target.
type KubeConfig struct {
	// Kubeconfig is the file with the API server, its CA and the
	// daemon's credentials.
	Kubeconfig string
	// Namespace the project lives in (it must exist).
	Namespace string
	// Gateway, when set, is the Gateway the HTTPRoute attaches to.
	Gateway string
	// ProgressDeadline is each Deployment's progressDeadlineSeconds
	// (default kubetarget.DefaultProgressDeadline): a rollout without
	// progress for that long is reported failed, and a promotion that
	// does not roll out within it is aborted.
	ProgressDeadline time.Duration
	// Poll is how often a transaction or a deploy looks at a rollout in
	// progress (default 250ms).
	Poll time.Duration
}

// eventDriftReverted journals an apply that took back fields someone else
// changed on an object swiftdeploy applied.
const eventDriftReverted = "drift_reverted"

// kubeTarget is the daemon's Kubernetes state.
type kubeTarget struct {
	cfg KubeConfig
	api *kube.Client

	mu sync.Mutex
	// rollout is a change applied and not yet observed rolled out; its
	// outcome (deploy_succeeded or deploy_failed) is journaled once, when
	// observed.
	rollout *kubeRollout
	// planErr is the last plan error journaled, so a retry that fails the
	// same way is not journaled again.
	planErr string
}

type kubeRollout struct {
	started time.Time
	ops     []string
}

func newKubeTarget(cfg KubeConfig) (*kubeTarget, error) {
	if cfg.Namespace == "" {
		return nil, errors.New("--namespace is required with --target kubernetes")
	}
	if cfg.Kubeconfig == "" {
		return nil, errors.New("--kubeconfig is required with --target kubernetes")
	}
	c, err := kube.FromKubeconfig(cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	if cfg.ProgressDeadline <= 0 {
		cfg.ProgressDeadline = kubetarget.DefaultProgressDeadline
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	return &kubeTarget{cfg: cfg, api: c}, nil
}

// runKube is Run on the Kubernetes target.
func (d *Daemon) runKube(ctx context.Context) error {
	ln, err := listen(d.cfg.Socket)
	if err != nil {
		return err
	}
	srv := d.server()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("control API stopped", zap.Error(err))
		}
	}()
	d.event(journal.EventDaemonStarted, fmt.Sprintf("swiftdeployd started for %s (kubernetes namespace %s at %s)", d.cfg.ManifestPath, d.kt.cfg.Namespace, d.kt.api.Server), "", nil)
	d.log.Info("swiftdeployd started", zap.String("manifest", d.cfg.ManifestPath), zap.String("socket", d.cfg.Socket),
		zap.String("target", "kubernetes"), zap.String("namespace", d.kt.cfg.Namespace))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); d.watchManifest(ctx) }()
	go func() { defer wg.Done(); d.watchKube(ctx) }()
	d.Enqueue()
	d.loop(ctx)

	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	wg.Wait()
	d.failWaiters(errors.New("daemon stopping"))
	if err := d.repeats.Flush(d.jr); err != nil {
		d.log.Error("journal: flush repeat summaries", zap.Error(err))
	}
	d.event(journal.EventDaemonStopped, "swiftdeployd stopped; the workload keeps running", "", nil)
	d.notifier.Close()
	_ = d.jr.Close()
	return nil
}

// watchKube watches what the daemon owns (Deployments, Services,
// HTTPRoutes with the project's swiftdeploy labels) and enqueues a
// reconcile after a burst of events settles: a deleted canary Service or
// an edited image is reverted, a rollout's progress is noticed.
func (d *Daemon) watchKube(ctx context.Context) {
	kick := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for _, r := range []kube.Resource{kube.Deployments, kube.Services, kube.HTTPRoutes} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			backoff := 250 * time.Millisecond
			for ctx.Err() == nil {
				project := d.project()
				if project == "" {
					sleepCtx(ctx, backoff)
					continue
				}
				err := d.kt.api.Watch(ctx, r, d.kt.cfg.Namespace, kubetarget.Selector(project), "", func(ev kube.WatchEvent) error {
					if ev.Type != "BOOKMARK" {
						select {
						case kick <- struct{}{}:
						default:
						}
					}
					backoff = 250 * time.Millisecond
					return nil
				})
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					d.log.Warn("kubernetes watch ended", zap.String("resource", r.Plural), zap.Error(err))
					sleepCtx(ctx, backoff)
					backoff = min(2*backoff, 5*time.Second)
				}
				// A watch that ends (the server's timeout) restarts; its
				// first events list what exists, and enqueue a reconcile:
				// whatever was missed meanwhile is caught up.
			}
		}()
	}
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-kick:
			if debounce == nil {
				debounce = time.After(d.cfg.Debounce)
			}
		case <-debounce:
			debounce = nil
			d.Enqueue()
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// kubeDesired is what the namespace should hold for m as decided now.
func (d *Daemon) kubeDesired(m *manifest.Manifest, s State) (kubetarget.Desired, error) {
	return kubetarget.DesiredFor(m, s.options(m), d.kt.cfg.Namespace, d.kt.cfg.Gateway, d.kt.cfg.ProgressDeadline)
}

func (d *Daemon) kubeObserve(ctx context.Context, project string) (kubetarget.Observed, error) {
	obs, err := kubetarget.Observe(ctx, d.kt.api, d.kt.cfg.Namespace, project)
	d.setEngineErr(err)
	return obs, err
}

// kubeReconcileOnce is reconcileOnce on the Kubernetes target.
func (d *Daemon) kubeReconcileOnce(ctx context.Context) (err error) {
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
	m := d.readManifest()
	if len(waiters) > 0 {
		d.mu.Lock()
		if d.state.Down {
			d.state.Down = false
			logErr(d.log, "save state", d.saveStateLocked())
		}
		d.mu.Unlock()
	} else if d.isDown() {
		return d.kubeFinishDown(ctx, m)
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
	if err := d.kubeResolvePending(ctx, m); err != nil {
		d.kubeRecordRun(start, nil, err)
		return err
	}
	d.mu.Lock()
	s := d.state
	d.mu.Unlock()
	desired, err := d.kubeDesired(m, s)
	if err != nil {
		return err
	}
	lines, err := d.kubeStep(ctx, m, desired, progress, nil, true)
	if err == nil && len(waiters) > 0 {
		// A deploy waits for what it asked for to roll out.
		var more []string
		more, err = d.kubeAwait(ctx, m, desired, progress, nil, true)
		lines = append(lines, more...)
	}
	var denied *reconciler.DeniedError
	switch {
	case errors.As(err, &denied):
		d.deployDenied(denied)
	case err != nil:
		d.endDenials()
		d.kubePlanFailed(err)
	default:
		d.endDenials()
		d.clearDenial()
		d.manifestTookEffect(m)
		d.kt.mu.Lock()
		d.kt.planErr = ""
		d.kt.mu.Unlock()
	}
	if obs, oerr := d.kubeObserve(ctx, m.Project); oerr == nil {
		d.kubeNoteRollout(ctx, desired, obs)
		d.kubeNoteServing(obs)
		if err == nil && len(waiters) > 0 {
			progress("Deployment successful")
		}
	}
	d.kubeRecordRun(start, lines, err)
	return err
}

// kubeStep observes, plans, gates and applies once: what can be done now.
// before, when set, runs after the gate allowed and before the first op
// (a transaction's write-ahead record). A deploy's gated change is
// tracked until its rollout is journaled (kubeNoteRollout); a
// transaction's is journaled by its commit instead. It returns the ops it
// applied.
func (d *Daemon) kubeStep(ctx context.Context, m *manifest.Manifest, desired kubetarget.Desired, progress reconciler.Progress, before func() error, deploy bool) ([]string, error) {
	obs, err := d.kubeObserve(ctx, m.Project)
	if err != nil {
		return nil, err
	}
	plan, err := kubetarget.Compute(ctx, d.kt.api, desired, obs)
	if err != nil {
		return nil, err
	}
	if plan.Empty() {
		return nil, nil
	}
	d.log.Info("plan", zap.Strings("ops", plan.Lines()))
	if plan.Gated() {
		if dec := d.kubeGate(ctx, m, desired); !dec.Allowed {
			return nil, &reconciler.DeniedError{Reasons: dec.Reasons, Transient: dec.Transient, Codes: dec.Codes}
		}
	}
	if before != nil {
		if err := before(); err != nil {
			return nil, err
		}
	}
	err = kubetarget.Apply(ctx, d.kt.api, plan, func(line string) {
		if progress != nil {
			progress(line)
		}
	})
	applied := plan.Lines()
	for _, op := range plan.Ops {
		if op.Force {
			d.event(eventDriftReverted, op.String(), "", map[string]any{"object": op.Ref.String()})
		}
	}
	if plan.Gated() && deploy {
		d.kt.mu.Lock()
		if d.kt.rollout == nil {
			d.kt.rollout = &kubeRollout{started: time.Now()}
		}
		d.kt.rollout.ops = append(d.kt.rollout.ops, applied...)
		d.kt.mu.Unlock()
	}
	return applied, err
}

// kubeAwait converges until desired has rolled out, its progress deadline
// passed or ctx ends; before is kubeStep's, run once.
func (d *Daemon) kubeAwait(ctx context.Context, m *manifest.Manifest, desired kubetarget.Desired, progress reconciler.Progress, before func() error, deploy bool) ([]string, error) {
	deadline := time.Now().Add(d.kt.cfg.ProgressDeadline + 10*time.Second)
	var applied []string
	said := ""
	for {
		obs, err := d.kubeObserve(ctx, m.Project)
		if err != nil {
			return applied, err
		}
		plan, err := kubetarget.Compute(ctx, d.kt.api, desired, obs)
		if err != nil {
			return applied, err
		}
		done, why := kubetarget.Converged(desired, obs, plan)
		if done {
			return applied, nil
		}
		if f := progressFailed(desired, obs); f != "" {
			return applied, errors.New(f)
		}
		if time.Now().After(deadline) {
			return applied, fmt.Errorf("not rolled out within %s: %s", d.kt.cfg.ProgressDeadline, why)
		}
		if !plan.Empty() {
			lines, err := d.kubeStep(ctx, m, desired, progress, before, deploy)
			before = nil
			applied = append(applied, lines...)
			if err != nil {
				return applied, err
			}
			continue
		}
		if why != said && progress != nil {
			progress("Waiting: " + why)
			said = why
		}
		select {
		case <-ctx.Done():
			return applied, ctx.Err()
		case <-time.After(d.kt.cfg.Poll):
		}
	}
}

// progressFailed names a desired Deployment whose rollout exceeded its
// progress deadline.
func progressFailed(desired kubetarget.Desired, obs kubetarget.Observed) string {
	for _, obj := range desired.Objects {
		if live, ok := obs.Deployments[obj.GetName()]; ok {
			if f := kubetarget.ProgressFailed(live); f != "" {
				return "Deployment " + live.Name + ": " + f + "; the previous pods keep serving"
			}
		}
	}
	return ""
}

// kubeNoteRollout journals the outcome of an applied change once, when
// the API shows it: rolled out, or stopped by its progress deadline.
func (d *Daemon) kubeNoteRollout(ctx context.Context, desired kubetarget.Desired, obs kubetarget.Observed) {
	d.kt.mu.Lock()
	r := d.kt.rollout
	d.kt.mu.Unlock()
	if r == nil {
		return
	}
	if f := progressFailed(desired, obs); f != "" {
		d.event(journal.EventDeployFailed, f, "", map[string]any{"ops": r.ops})
		d.kt.mu.Lock()
		d.kt.rollout = nil
		d.kt.mu.Unlock()
		return
	}
	plan, err := kubetarget.Compute(ctx, d.kt.api, desired, obs)
	if err != nil {
		return
	}
	if done, _ := kubetarget.Converged(desired, obs, plan); !done {
		return
	}
	d.event(journal.EventDeploySucceeded, fmt.Sprintf("rolled out in %s: %d operation(s)", time.Since(r.started).Round(time.Millisecond), len(r.ops)), "",
		map[string]any{"ops": r.ops})
	d.kt.mu.Lock()
	d.kt.rollout = nil
	d.kt.mu.Unlock()
}

// kubePlanFailed journals a failed reconcile once per distinct error (a
// conflict retried every backoff is one record).
func (d *Daemon) kubePlanFailed(err error) {
	d.kt.mu.Lock()
	same := d.kt.planErr == err.Error()
	d.kt.planErr = err.Error()
	d.kt.mu.Unlock()
	if !same {
		d.event(journal.EventDeployFailed, err.Error(), "", nil)
	}
}

// kubeServing is what the HTTPRoute in force sends traffic to.
type kubeServing struct {
	mode         string
	stableImage  string
	canaryImage  string
	canaryWeight int
}

// servingOf reads the mode from the live route's weights and the images
// from the live Deployments.
func servingOf(project string, obs kubetarget.Observed) (kubeServing, bool) {
	r, ok := obs.Routes[project]
	if !ok {
		return kubeServing{}, false
	}
	w := kubetarget.Weights(r)
	stableName, canaryName := project+"-"+stack.TrackStable, project+"-"+stack.TrackCanary
	s := kubeServing{mode: stack.TrackStable}
	if dep, ok := obs.Deployments[stableName]; ok {
		s.stableImage = kubetarget.ImageOf(dep)
	}
	if dep, ok := obs.Deployments[canaryName]; ok && w[canaryName] > 0 {
		s.mode = stack.TrackCanary
		s.canaryImage = kubetarget.ImageOf(dep)
		s.canaryWeight = w[canaryName]
	}
	return s, true
}

// kubeNoteServing journals a change of the mode the route serves, once,
// when the API shows it.
func (d *Daemon) kubeNoteServing(obs kubetarget.Observed) {
	defer d.drainJournalAfter(d.journalMark()) // events it queues under d.mu are written once d.mu is released
	project := d.project()
	s, ok := servingOf(project, obs)
	if !ok {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s.mode == d.lastMode {
		return
	}
	msg := "Mode switched to " + s.mode
	details := map[string]any{"mode": s.mode}
	if s.mode == stack.TrackCanary {
		msg = fmt.Sprintf("Mode switched to canary (%s at %d%%)", s.canaryImage, s.canaryWeight)
		details["image"], details["weight"] = s.canaryImage, s.canaryWeight
	}
	d.eventLocked(journal.EventModeSwitched, msg, "", details)
	d.lastMode = s.mode
}

func (d *Daemon) kubeRecordRun(start time.Time, lines []string, err error) {
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

// kubeGate is the infrastructure gate on Kubernetes: the cluster policy on
// the cluster's facts, journaled and counted as on Docker.
func (d *Daemon) kubeGate(ctx context.Context, m *manifest.Manifest, desired kubetarget.Desired) reconciler.Decision {
	dec := d.policies.ClusterDecision(ctx, kubetarget.ClusterFacts(ctx, d.kt.api, desired))
	d.metrics.observeDecision(dec)
	d.decision(dec, "")
	if !dec.Allowed {
		d.mu.Lock()
		d.denial = toAPIDecision(dec)
		d.mu.Unlock()
		d.log.Warn("change denied by cluster policy", zap.Strings("reasons", dec.Reasons))
	}
	return reconciler.Decision{Allowed: dec.Allowed, Reasons: dec.Reasons, Transient: dec.Transient, Codes: dec.Codes}
}

// kubeFinishDown completes a down: while the state says down, whatever
// the project still owns is deleted.
func (d *Daemon) kubeFinishDown(ctx context.Context, m *manifest.Manifest) error {
	if m == nil {
		return nil
	}
	removed, err := d.kubeRemoveAll(ctx, m.Project, nil)
	if err != nil {
		return fmt.Errorf("finish interrupted down of %s: %w", m.Project, err)
	}
	if len(removed) > 0 {
		d.event(eventDown, "finished an interrupted down: deleted "+strings.Join(removed, ", "), "", nil)
	}
	return nil
}

// kubeRemoveAll deletes every object the project owns: the route first,
// so that nothing is sent to a Service being deleted.
func (d *Daemon) kubeRemoveAll(ctx context.Context, project string, say func(string)) ([]string, error) {
	obs, err := d.kubeObserve(ctx, project)
	if err != nil {
		return nil, err
	}
	var refs []kube.Ref
	ns := d.kt.cfg.Namespace
	for n := range obs.Routes {
		refs = append(refs, kube.Ref{Resource: kube.HTTPRoutes, Namespace: ns, Name: n})
	}
	for n := range obs.Services {
		refs = append(refs, kube.Ref{Resource: kube.Services, Namespace: ns, Name: n})
	}
	for n := range obs.Deployments {
		refs = append(refs, kube.Ref{Resource: kube.Deployments, Namespace: ns, Name: n})
	}
	var removed []string
	for _, ref := range refs {
		if err := d.kt.api.Delete(ctx, ref); err != nil {
			return removed, err
		}
		removed = append(removed, ref.String())
		if say != nil {
			say("Deleted " + ref.String())
		}
	}
	d.mu.Lock()
	d.lastMode = stack.TrackStable
	d.mu.Unlock()
	return removed, nil
}
