package kubetarget

// depends_on on Kubernetes. Docker's plan (pkg/reconciler) starts an
// accessory's new containers first and waits until they are healthy
// before it starts the new containers of anything that depends on it;
// containers that already run and do not change are left alone, however
// the accessory fares. Kubernetes starts every workload at once, so the
// plan does what Docker's does: the Deployment of a service that
// depends_on an accessory is applied, when it would start pods of a new
// spec (it is created, or the manifest changed it), only once the
// accessory's StatefulSet runs the manifest's spec, rolled out and ready.
// Until then the plan holds it back and says so (a waiting line naming
// the accessory); the StatefulSets' informer re-queues the reconcile as
// the accessory's pods become Ready. A Deployment the manifest did not
// change is never held nor touched when its accessory restarts later,
// and a drift revert restores what ran without waiting (as Docker's heal
// restores a container without waiting for an accessory it did not
// restart).

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"

	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// dependsOn names the accessories the service of a desired Deployment
// depends on (its canary's too: the canary's pods need them as much).
func dependsOn(desired Desired, dep *appsv1.Deployment) []string {
	svc := desired.Stack.Service(dep.Labels[k8srender.LabelService])
	if svc == nil {
		return nil
	}
	return svc.DependsOn
}

// accessoryWait says why an accessory is not ready for its dependents to
// start: its StatefulSet missing, applied by this plan (applying), not
// yet at the manifest's spec, or not rolled out with every pod Ready at
// the update revision; "" when it is ready.
func accessoryWait(desired Desired, obs Observed, accessory string, applying map[string]bool) string {
	name := k8srender.WorkloadName(desired.Project, accessory)
	var want *appsv1.StatefulSet
	for _, o := range desired.Objects {
		if s, ok := o.(*appsv1.StatefulSet); ok && s.Name == name {
			want = s
		}
	}
	live, ok := obs.StatefulSets[name]
	switch {
	case want == nil:
		return "" // not an accessory of this manifest (validated: never)
	case applying[name]:
		return "StatefulSet " + name + " is being applied"
	case !ok:
		return "StatefulSet " + name + " does not exist yet"
	case live.Annotations[AnnotationApplied] != want.Annotations[AnnotationApplied]:
		return "StatefulSet " + name + " is not yet at the manifest's spec"
	}
	if done, why := StatefulSetRolledOut(live); !done {
		return "StatefulSet " + name + ": " + why
	}
	return ""
}

// holdFor says why the apply of dep (a dependent's Deployment that would
// start pods of a new spec) waits: the first of its accessories that is
// not ready, named; "" when it may go.
func holdFor(desired Desired, obs Observed, dep *appsv1.Deployment, applying map[string]bool) string {
	for _, acc := range dependsOn(desired, dep) {
		if why := accessoryWait(desired, obs, acc, applying); why != "" {
			return fmt.Sprintf("waits for accessory %s (depends_on): %s", acc, why)
		}
	}
	return ""
}

// DependentPending says why a desired Deployment of a service that
// depends_on an accessory has not started its pods of the manifest's
// spec yet: held back for the accessory, or its change not applied yet
// (the accessory became ready since the last plan); "" when it has been
// applied, or when it depends on nothing. A rollout is not done before:
// the live Deployment still runs the previous spec, rolled out.
func DependentPending(desired Desired, obs Observed, dep *appsv1.Deployment) string {
	if len(dependsOn(desired, dep)) == 0 {
		return ""
	}
	live, ok := obs.Deployments[dep.Name]
	if ok && live.Annotations[AnnotationApplied] == dep.Annotations[AnnotationApplied] {
		return ""
	}
	if why := holdFor(desired, obs, dep, nil); why != "" {
		return "Deployment " + dep.Name + " " + why
	}
	return "Deployment " + dep.Name + " not yet applied"
}
