package kubernetes

// What one service's own workload runs, read by its object name: the
// commit predicate of a rollback of a service other than the primary
// (targets.WorkloadReader), which no route's check covers.

import (
	"context"
	"fmt"

	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

var _ targets.WorkloadReader = (*Target)(nil)

// WorkloadRuns: the Deployment or the StatefulSet named for project's
// service (k8srender.WorkloadName, a worker's, an accessory's or a web
// service's stable one) has rolled out image. The manifest is not
// consulted: a rollback that ran before the daemon died stays what it
// was when the operator has since removed the service, renamed it away
// or changed its kind, and it is settled from the object it changed.
func (t *Target) WorkloadRuns(ctx context.Context, project, service, image string) (bool, error) {
	// StatefulSets whatever the manifest is now: the service may have
	// been an accessory when it was rolled back.
	obs, err := t.api.Observe(ctx, project, kubetarget.Extras{StatefulSets: true})
	t.d.Reached(err)
	if err != nil {
		return false, fmt.Errorf("read service %s's workload: %w", service, err)
	}
	name := k8srender.WorkloadName(project, service)
	d, isDeployment := obs.Deployments[name]
	if isDeployment && kubetarget.ImageOf(d) == image {
		done, _ := kubetarget.RolledOut(d)
		return done, nil
	}
	if s, ok := obs.StatefulSets[name]; ok && kubetarget.StatefulSetImage(s) == image {
		done, _ := kubetarget.StatefulSetRolledOut(s)
		return done, nil
	}
	if why, unseen := obs.Unseen[kubetarget.UnseenStatefulSets]; unseen && !isDeployment {
		// It may be a StatefulSet the daemon may not list: cannot tell.
		return false, fmt.Errorf("service %s's workload %s: %s", service, name, why)
	}
	return false, nil
}
