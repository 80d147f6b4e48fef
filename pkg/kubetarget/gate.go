package kubetarget

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Regate sets which ops the cluster policy gates: those that add capacity
// or traffic. Creating a Deployment, raising its replicas or rolling a
// new image is gated; rolling a Deployment back to the image its Ready
// pods run now (restoring what was serving, after an aborted promotion)
// is not: the capacity is there, and the policy's "CPU insufficient" is
// often why the rollout stalled. Raising the canary's weight on the route
// is gated, as on Docker; lowering it is not.
func Regate(plan Plan, desired Desired, obs Observed) Plan {
	want := map[string]k8srender.Object{}
	for _, o := range desired.Objects {
		want[RefOf(o).String()] = o
	}
	ops := make([]Op, len(plan.Ops))
	for i, op := range plan.Ops {
		if op.Kind == OpApply {
			switch v := want[op.Ref.String()].(type) {
			case *appsv1.Deployment:
				op.Gated = !restores(v, obs)
			case *appsv1.StatefulSet:
				op.Gated = true // an accessory is never canaried: its change starts its pod
			case *gatewayv1.HTTPRoute:
				op.Gated = raisesCanary(v, desired, obs)
			}
		}
		ops[i] = op
	}
	plan.Ops = ops
	return plan
}

// restores: the live Deployment has at least as many replicas as wanted,
// and as many Ready pods it selects run the wanted image.
func restores(want *appsv1.Deployment, obs Observed) bool {
	live, ok := obs.Deployments[want.Name]
	if !ok || want.Spec.Replicas == nil || live.Spec.Replicas == nil || *want.Spec.Replicas > *live.Spec.Replicas {
		return false
	}
	image := ImageOf(*want)
	ready := int32(0)
	for _, p := range obs.Pods {
		if selects(want, p) && appImage(p) == image && podReady(p) {
			ready++
		}
	}
	return ready >= *want.Spec.Replicas
}

// selects: the pod is one of want's (its track's; in the named form its
// service's too: another service's pods may run the same image).
func selects(want *appsv1.Deployment, p corev1.Pod) bool {
	if want.Spec.Selector == nil {
		return p.Labels[k8srender.LabelTrack] == want.Spec.Template.Labels[k8srender.LabelTrack]
	}
	for k, v := range want.Spec.Selector.MatchLabels {
		if p.Labels[k] != v {
			return false
		}
	}
	return true
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// raisesCanary: the route gives a canary's Service more weight than the
// live route does (a backend is a canary's when its desired Service
// selects the canary track; in the single-service form its name ends in
// -canary too, in the named form a web service's stable Service is named
// after the service).
func raisesCanary(want *gatewayv1.HTTPRoute, desired Desired, obs Observed) bool {
	live, ok := obs.Routes[want.Name]
	var was map[string]int
	if ok {
		was = Weights(live)
	}
	stable := map[string]bool{}
	for _, o := range desired.Objects {
		if s, ok := o.(*corev1.Service); ok && s.Spec.Selector[k8srender.LabelTrack] == stack.TrackStable {
			stable[s.Name] = true
		}
	}
	for name, w := range Weights(*want) {
		if !stable[name] && !strings.HasSuffix(name, "-"+stack.TrackStable) && w > was[name] {
			return true
		}
	}
	return false
}

// appImage is the image of a pod's app container.
func appImage(p corev1.Pod) string {
	for _, c := range p.Spec.Containers {
		if c.Name == "app" {
			return c.Image
		}
	}
	if len(p.Spec.Containers) > 0 {
		return p.Spec.Containers[0].Image
	}
	return ""
}
