package kubernetes

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sort"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// Teardown plans the deletion of every object the project owns: the
// routes first, so that nothing is sent to a Service being deleted, then
// the Services and workloads (Deployments, the accessories' StatefulSets).
// The project's Secrets (its image pull Secret too) go last; its volume claims, with the data, only
// with volumes (`down --volumes`), after everything else.
func (t *Target) Teardown(ctx context.Context, m *manifest.Manifest, volumes bool) ([]targets.Removal, error) {
	obs, err := t.observe(ctx, m)
	if err != nil {
		return nil, err
	}
	var refs []kube.Ref
	ns := t.cfg.Namespace
	add := func(r kube.Resource, names []string) {
		sort.Strings(names)
		for _, n := range names {
			refs = append(refs, kube.Ref{Resource: r, Namespace: ns, Name: n})
		}
	}
	add(kube.HTTPRoutes, slices.Collect(maps.Keys(obs.Routes)))
	add(kube.Services, slices.Collect(maps.Keys(obs.Services)))
	add(kube.Deployments, slices.Collect(maps.Keys(obs.Deployments)))
	add(kube.StatefulSets, slices.Collect(maps.Keys(obs.StatefulSets)))
	secrets := slices.Collect(maps.Keys(obs.Secrets))
	if ps := obs.PullSecret; ps != nil && !slices.Contains(secrets, ps.Name) {
		// The registry credentials are read by name, apart from the
		// project's other Secrets: down must not leave them behind.
		secrets = append(secrets, ps.Name)
	}
	add(kube.Secrets, secrets)
	if volumes { // the data goes only when asked for
		add(kube.Claims, slices.Collect(maps.Keys(obs.Claims)))
	}
	plan := make([]targets.Removal, 0, len(refs)+1)
	for _, ref := range refs {
		ref := ref
		plan = append(plan, targets.Removal{Op: "delete", Target: ref.String(), Event: journal.EventObjectDeleted,
			Run: func(ctx context.Context) error {
				if err := t.Acting(); err != nil {
					return err
				}
				return t.api.Delete(ctx, ref)
			}})
	}
	// What the daemon may not see may still run: the down ends failing,
	// naming it (a down recorded and not finished is finished by a later
	// reconcile, once the Role grants it), not silently.
	for _, kind := range unseenLeft(obs, volumes) {
		why := obs.Unseen[kind]
		plan = append(plan, targets.Removal{Op: "delete", Target: "the project's " + kind + "s (not visible)", Event: journal.EventObjectDeleted,
			Run: func(context.Context) error { return errors.New(why) }})
	}
	return plan, nil
}

// unseenLeft are the kinds a teardown should delete that the daemon may
// not list: StatefulSets, and claims with volumes.
func unseenLeft(obs kubetarget.Observed, volumes bool) []string {
	var out []string
	if _, ok := obs.Unseen[kubetarget.UnseenStatefulSets]; ok {
		out = append(out, kubetarget.UnseenStatefulSets)
	}
	if _, ok := obs.Unseen[kubetarget.UnseenClaims]; ok && volumes {
		out = append(out, kubetarget.UnseenClaims)
	}
	return out
}
