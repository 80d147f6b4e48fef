package kubernetes

// What one service's own workload runs, read by its object name: the
// commit predicate of a rollback of a service other than the primary
// (targets.WorkloadReader), which no route's check covers.

import (
	"context"
	"fmt"

	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

var _ targets.WorkloadReader = (*Target)(nil)

// WorkloadRuns: the Deployment or the StatefulSet named for service in
// m's project (k8srender.WorkloadName: a worker's, an accessory's or a
// web service's stable one) has rolled out image. m is read for its
// project and the kinds the daemon observes, never for the service: a
// rollback that ran before the daemon died stays what it was when the
// operator has since removed the service, renamed it away or changed its
// kind, and it is settled from the object it changed.
func (t *Target) WorkloadRuns(ctx context.Context, m *manifest.Manifest, service, image string) (bool, error) {
	// The extras m needs, so that no informer of them stops for this
	// look; StatefulSets whatever m is: the service may have been an
	// accessory when it was rolled back.
	x := extras(m)
	x.StatefulSets = true
	obs, err := t.api.Observe(ctx, m.Project, x)
	t.d.Reached(err)
	if err != nil {
		return false, fmt.Errorf("read service %s's workload: %w", service, err)
	}
	name := k8srender.WorkloadName(m.Project, service)
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
