package kubernetes

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// Rolled looks at the rollout of m under s without a dry run: every
// desired Deployment and StatefulSet rolled out with its image, the route's weights in
// force, or the reason it is not yet.
func (t *Target) Rolled(ctx context.Context, m *manifest.Manifest, s targets.Decisions) (targets.RolloutStatus, error) {
	desired, err := t.desired(m, s)
	if err != nil {
		return targets.RolloutStatus{}, err
	}
	obs, err := t.observe(ctx, m)
	if err != nil {
		return targets.RolloutStatus{}, err
	}
	if f, pd := t.rolloutFailed(desired, kubetarget.Revision(desired), obs); pd != nil {
		return targets.RolloutStatus{Failed: pd.Error(), Denied: pd}, nil
	} else if f != "" {
		return targets.RolloutStatus{Failed: f}, nil
	}
	now := kubetarget.ForObserved(desired, obs)
	for _, o := range now.Objects {
		if v, ok := o.(*appsv1.StatefulSet); ok {
			if why := rolledStatefulSet(v, obs); why != "" {
				return targets.RolloutStatus{Waiting: why}, nil
			}
		}
		if v, ok := o.(*appsv1.Deployment); ok {
			// A dependent held back for its accessory still runs the
			// previous spec, rolled out: not done until it is applied.
			if why := kubetarget.DependentPending(now, obs, v); why != "" {
				return targets.RolloutStatus{Waiting: why}, nil
			}
			live, ok := obs.Deployments[v.Name]
			if !ok {
				return targets.RolloutStatus{Waiting: "Deployment " + v.Name + " missing"}, nil
			}
			if kubetarget.ImageOf(live) != kubetarget.ImageOf(*v) {
				return targets.RolloutStatus{Waiting: "Deployment " + v.Name + " not yet at " + kubetarget.ImageOf(*v)}, nil
			}
			if done, why := kubetarget.RolledOut(live); !done {
				return targets.RolloutStatus{Waiting: "Deployment " + v.Name + ": " + why}, nil
			}
		}
	}
	if !kubetarget.Serves(desired, obs) {
		return targets.RolloutStatus{Waiting: "the route does not serve the desired weights yet"}, nil
	}
	return targets.RolloutStatus{Done: true}, nil
}

func (t *Target) Await() (poll, deadline time.Duration) {
	return t.cfg.Poll, t.cfg.ProgressDeadline + 10*time.Second
}

// rolloutFailed says why the rollout of desired (revision rev) failed: a
// registry refused its pods' image (a lasting denial, at once), or a
// Deployment exceeded its progress deadline; "" and nil while it has not.
func (t *Target) rolloutFailed(desired kubetarget.Desired, rev string, obs kubetarget.Observed) (string, *reconciler.PullDeniedError) {
	if pd := t.pulls.denied(desired, rev, obs); pd != nil {
		return pd.Error(), pd
	}
	return progressFailed(desired, obs), nil
}

// progressFailed names a desired Deployment whose rollout exceeded its
// progress deadline.
func progressFailed(desired kubetarget.Desired, obs kubetarget.Observed) string {
	for _, obj := range kubetarget.ForObserved(desired, obs).Objects {
		if live, ok := obs.Deployments[obj.GetName()]; ok {
			if f := kubetarget.ProgressFailed(live); f != "" {
				return "Deployment " + live.Name + ": " + f + "; the previous pods keep serving"
			}
		}
	}
	return ""
}
