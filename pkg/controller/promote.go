package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
)

// promote makes the serving canary stable, gated by the canary-safety
// policy on the canary revision's own figures and by the infrastructure
// (cluster) policy when the change is applied.
//
// key names the canary's service (canaries.go): "" for the primary's.
func (d *Daemon) promote(ctx context.Context, user, key string, progress reconciler.Progress) error {
	return d.promoteJudged(ctx, user, key, nil, progress)
}

// promoteJudged is promote of the canary an analysis judged (judged nil:
// the canary of key, as the operator named it).
func (d *Daemon) promoteJudged(ctx context.Context, user, key string, judged *judgedCanary, progress reconciler.Progress) error {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	m, key, svc, err := d.canaryTransitionStart(ctx, key, judged)
	if err != nil {
		return err
	}
	if svc == nil {
		return fmt.Errorf("service %s: no longer in the manifest", key)
	}
	sv, err := d.target.ServingOf(ctx, m, key)
	if err != nil {
		return err
	}
	if !sv.CanaryLive {
		return errors.New(keyLabel(key) + "no canary is serving traffic: declare services.canary in the manifest and wait for it to converge")
	}
	image := sv.CanaryImage
	d.event(journal.EventPromoteRequested, keyLabel(key)+"promotion of "+image+" requested", user, withServiceDetail(map[string]any{"image": image}, key))
	dec, _ := d.target.Judge(ctx, m, key, sv.CanaryRevision)
	d.metrics.observeDecision(dec)
	d.decision(dec, user)
	if !dec.Allowed {
		d.event(journal.EventPromoteDenied, keyLabel(key)+"promotion of "+image+" denied: "+strings.Join(dec.Reasons, "; "), user, withServiceDetail(map[string]any{"reasons": dec.Reasons, "policy": dec.Policy}, key))
		return &promoteDenied{reasons: dec.Reasons}
	}
	progress("Canary safety: PASS")
	var allowed map[string]any // the primary's carries no details, as before
	if key != "" {
		allowed = map[string]any{"service": key}
	}
	d.event(journal.EventPromoteAllowed, keyLabel(key)+"promotion of "+image+" allowed by canary safety", user, allowed)
	relService := serviceName(m)
	if key != "" {
		relService = key
	}
	t := &Transition{ID: newID(), Kind: kindPromote, Project: m.Project, Started: time.Now().UTC(), User: user, Service: key,
		Promoted: &Promotion{Service: relService, ManifestStable: svc.Image, Image: image, At: time.Now().UTC(), User: user}}
	d.mu.Lock()
	relImage, relSpec := stableSpecOf(m, d.state.with(t), relService)
	d.mu.Unlock()
	t.Release = &api.Release{Service: relService, Image: relImage, SpecHash: relSpec}
	err = d.transact(ctx, m, t, progress)
	var denied *reconciler.DeniedError
	if errors.As(err, &denied) {
		d.event(journal.EventPromoteDenied, keyLabel(key)+"promotion of "+image+" denied: "+strings.Join(denied.Reasons, "; "), user, withServiceDetail(map[string]any{"reasons": denied.Reasons, "policy": d.gatePolicy()}, key))
		return err
	}
	if err == nil {
		progress("Promoted " + image + " to stable")
	}
	return err
}

// promoteDenied is a canary-safety denial.
type promoteDenied struct{ reasons []string }

func (e *promoteDenied) Error() string {
	return "promotion denied by canary-safety policy: " + strings.Join(e.reasons, "; ")
}

// rollback drops the serving canary: all traffic to stable. It only
// withdraws traffic, so the infrastructure gate does not stand in its way.
func (d *Daemon) rollback(ctx context.Context, user, key string, progress reconciler.Progress) error {
	return d.rollbackWith(ctx, user, key, nil, progress)
}

// rollbackWith is rollback of the canary of service key (canaries.go:
// "" for the primary's); with reasons it is an abort, journaled as
// `aborted` with them.
func (d *Daemon) rollbackWith(ctx context.Context, user, key string, abortReasons []string, progress reconciler.Progress) error {
	return d.rollbackJudged(ctx, user, key, nil, abortReasons, progress)
}

// rollbackJudged is rollbackWith of the canary an analysis judged
// (judged nil: the canary of key, as the operator named it).
func (d *Daemon) rollbackJudged(ctx context.Context, user, key string, judged *judgedCanary, abortReasons []string, progress reconciler.Progress) error {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	m, key, svc, err := d.canaryTransitionStart(ctx, key, judged)
	if err != nil {
		return err
	}
	if svc == nil || svc.Canary == nil {
		return errors.New(keyLabel(key) + "no canary declared in the manifest: nothing to roll back")
	}
	sv, err := d.target.ServingOf(ctx, m, key)
	if err != nil {
		return err
	}
	image := svc.Canary.Image
	if sv.CanaryLive {
		image = sv.CanaryImage
	} else if !sv.CanaryRunning {
		return errors.New(keyLabel(key) + "no canary is running: nothing to roll back")
	}
	d.event(journal.EventRollbackRequested, keyLabel(key)+"rollback of canary "+image+" requested", user,
		withServiceDetail(map[string]any{"image": image, "reasons": abortReasons}, key))
	t := &Transition{ID: newID(), Kind: kindRollback, Started: time.Now().UTC(), User: user, Service: key,
		// The record names the manifest's canary image: that is what the
		// options compare, so whatever canary the manifest names (even one
		// other than the image serving now) stays suppressed.
		RolledBack: &Rollback{Service: canaryName(m, key), CanaryImage: svc.Canary.Image, At: time.Now().UTC(), User: user, Aborted: abortReasons != nil, Reasons: abortReasons}}
	if err := d.transact(ctx, m, t, progress); err != nil {
		return err
	}
	if abortReasons != nil {
		progress(keyLabel(key) + "Aborted: all traffic on stable")
	} else {
		progress(keyLabel(key) + "Rolled back: all traffic on stable")
	}
	return nil
}
