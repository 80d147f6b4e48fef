package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// kubeTransact applies t on Kubernetes as transact does on Docker: the
// cluster gate runs before the first op that starts pods; only if it
// allows is t recorded as pending (write-ahead); t is committed (journaled
// once) when the API shows the new state rolled out: for a promotion, the
// stable Deployment available with the canary's image, the route at
// stable 100 and the canary deleted. If it does not roll out within the
// progress deadline, t is dropped and the loop converges back to the old
// state, which kept serving meanwhile. Callers hold d.runMu.
func (d *Daemon) kubeTransact(ctx context.Context, m *manifest.Manifest, t *Transition, progress reconciler.Progress) error {
	d.mu.Lock()
	next := d.state.with(t)
	d.mu.Unlock()
	desired, err := d.kubeDesired(m, next)
	if err != nil {
		return err
	}
	wrote := false
	writeAhead := func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.state.Pending = t
		if err := d.saveStateLocked(); err != nil {
			d.state.Pending = nil
			return fmt.Errorf("record pending %s: %w", t.Kind, err)
		}
		wrote = true
		return nil
	}
	_, err = d.kubeAwait(ctx, m, desired, progress, writeAhead, false)
	var denied *reconciler.DeniedError
	if err != nil && !wrote {
		return err // denied (or failed) before its first op: nothing changed
	}
	if after, oerr := d.kubeObserve(context.WithoutCancel(ctx), m.Project); oerr == nil {
		d.kubeNoteServing(after)
	}
	if err != nil {
		d.abort(t, err)
		d.Wake() // converge back to the old state, which kept serving
		if errors.As(err, &denied) {
			return err
		}
		return fmt.Errorf("%s did not take effect: %w", t.Kind, err)
	}
	if err := d.commit(t); err != nil {
		d.Wake() // kubeResolvePending commits it once the journal reads
		return fmt.Errorf("%s took effect but is not committed yet: %w; it stays pending", t.Kind, err)
	}
	return nil
}

// kubeResolvePending settles a transition a stopped daemon left: committed
// if the API shows its state rolled out, else dropped (the loop then
// converges back to the state before it).
func (d *Daemon) kubeResolvePending(ctx context.Context, m *manifest.Manifest) error {
	defer d.drainJournalAfter(d.journalMark()) // events it queues under d.mu are written once d.mu is released
	d.mu.Lock()
	t := d.state.Pending
	next := d.state
	d.mu.Unlock()
	if t == nil {
		return nil
	}
	next = next.with(t)
	desired, err := d.kubeDesired(m, next)
	if err != nil {
		return err
	}
	obs, err := d.kubeObserve(ctx, m.Project)
	if err != nil {
		return err
	}
	plan, err := kubetarget.Compute(ctx, d.kt.api, desired, obs)
	if err != nil {
		return err
	}
	if done, _ := kubetarget.Converged(desired, obs, plan); done {
		d.log.Info("settling an interrupted "+t.Kind+": it took effect", zap.String("txn", t.ID))
		if err := d.commit(t); err != nil {
			return fmt.Errorf("settle interrupted %s: %w", t.Kind, err)
		}
		return nil
	}
	d.log.Info("settling an interrupted "+t.Kind+": it did not take effect", zap.String("txn", t.ID))
	d.mu.Lock()
	d.state.Pending = nil
	logErr(d.log, "save state", d.saveStateLocked())
	d.eventLocked(journal.EventTransitionAborted, "interrupted "+t.Kind+" did not take effect; the previous state stays in force", t.User, map[string]any{"txn": t.ID})
	d.mu.Unlock()
	return nil
}

func (d *Daemon) kubeTransitionStart(ctx context.Context) (*manifest.Manifest, error) {
	if d.isDown() {
		return nil, errDown
	}
	m := d.readManifest()
	if m == nil {
		return nil, errors.New("no manifest loaded")
	}
	if err := d.kubeResolvePending(ctx, m); err != nil {
		return nil, err
	}
	return m, nil
}

// kubeServingCanary is the canary the live route sends traffic to, rolled
// out.
func (d *Daemon) kubeServingCanary(obs kubetarget.Observed, project string) (string, bool) {
	s, ok := servingOf(project, obs)
	if !ok || s.mode != stack.TrackCanary {
		return "", false
	}
	dep := obs.Deployments[project+"-"+stack.TrackCanary]
	if done, _ := kubetarget.RolledOut(dep); !done {
		return "", false
	}
	return s.canaryImage, true
}

// kubePromote is promote on Kubernetes: canary safety from Prometheus,
// then the transaction.
func (d *Daemon) kubePromote(ctx context.Context, user string, progress reconciler.Progress) error {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	m, err := d.kubeTransitionStart(ctx)
	if err != nil {
		return err
	}
	obs, err := d.kubeObserve(ctx, m.Project)
	if err != nil {
		return err
	}
	image, ok := d.kubeServingCanary(obs, m.Project)
	if !ok {
		return errors.New("no canary is serving traffic: declare services.canary in the manifest and wait for it to roll out")
	}
	d.event(journal.EventPromoteRequested, "promotion of "+image+" requested", user, map[string]any{"image": image})
	dec, _ := d.kubeCanaryDecision(ctx, m, obs)
	d.metrics.observeDecision(dec)
	d.decision(dec, user)
	if !dec.Allowed {
		d.event(journal.EventPromoteDenied, "promotion of "+image+" denied: "+strings.Join(dec.Reasons, "; "), user, map[string]any{"reasons": dec.Reasons, "policy": dec.Policy})
		return &promoteDenied{reasons: dec.Reasons}
	}
	progress("Canary safety: PASS")
	d.event(journal.EventPromoteAllowed, "promotion of "+image+" allowed by canary safety", user, nil)
	t := &Transition{ID: newID(), Kind: kindPromote, Started: time.Now().UTC(), User: user,
		Promoted: &Promotion{ManifestStable: m.Services.Image, Image: image, At: time.Now().UTC(), User: user}}
	err = d.kubeTransact(ctx, m, t, progress)
	var denied *reconciler.DeniedError
	if errors.As(err, &denied) {
		d.event(journal.EventPromoteDenied, "promotion of "+image+" denied: "+strings.Join(denied.Reasons, "; "), user, map[string]any{"reasons": denied.Reasons, "policy": "cluster"})
		return err
	}
	if err == nil {
		progress("Promoted " + image + " to stable")
	}
	return err
}

// kubeRollback is rollback (or, with reasons, abort) on Kubernetes: the
// route back to stable 100, then the canary deleted. It only withdraws
// traffic, so the cluster gate does not stand in its way.
func (d *Daemon) kubeRollback(ctx context.Context, user string, abortReasons []string, progress reconciler.Progress) error {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	m, err := d.kubeTransitionStart(ctx)
	if err != nil {
		return err
	}
	if m.Services.Canary == nil {
		return errors.New("no canary declared in the manifest: nothing to roll back")
	}
	obs, err := d.kubeObserve(ctx, m.Project)
	if err != nil {
		return err
	}
	image := m.Services.Canary.Image
	if s, ok := servingOf(m.Project, obs); ok && s.mode == stack.TrackCanary {
		image = s.canaryImage
	} else if _, ok := obs.Deployments[m.Project+"-"+stack.TrackCanary]; !ok {
		return errors.New("no canary is running: nothing to roll back")
	}
	d.event(journal.EventRollbackRequested, "rollback of canary "+image+" requested", user, map[string]any{"image": image, "reasons": abortReasons})
	t := &Transition{ID: newID(), Kind: kindRollback, Started: time.Now().UTC(), User: user,
		RolledBack: &Rollback{CanaryImage: m.Services.Canary.Image, At: time.Now().UTC(), User: user, Aborted: abortReasons != nil, Reasons: abortReasons}}
	if err := d.kubeTransact(ctx, m, t, progress); err != nil {
		return err
	}
	progress("Rolled back: all traffic on stable")
	return nil
}

// kubeDown deletes everything the project owns and stays down until the
// next deploy.
func (d *Daemon) kubeDown(ctx context.Context, user string, say func(string)) error {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	m := d.readManifest()
	if m == nil {
		return errors.New("no manifest loaded: nothing to remove")
	}
	d.mu.Lock()
	d.state.Down = true
	d.state.Pending = nil
	err := d.saveStateLocked()
	d.mu.Unlock()
	if err != nil {
		return err
	}
	removed, err := d.kubeRemoveAll(ctx, m.Project, say)
	if err != nil {
		return err
	}
	d.event(eventDown, "deleted every object of project "+m.Project+" in namespace "+d.kt.cfg.Namespace, user, map[string]any{"removed": removed})
	return nil
}
