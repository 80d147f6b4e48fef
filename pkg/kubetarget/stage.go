package kubetarget

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Bridge is how a promotion keeps its promise that no pod of an
// unpromoted image ever takes stable traffic. A Deployment's rolling
// update puts each new pod in the stable Service as soon as it is Ready,
// long before the promotion is known to have taken effect. So, as Argo
// Rollouts scales the canary to full size before it moves the stable
// Service, a promotion first scales the canary Deployment (already
// running the promoted image) to the stable's replicas and moves every
// request to it (the commit point: the route serves the new revision);
// only then, with the stable Service out of the route, does the stable
// Deployment roll to the promoted image; the route then returns to it and
// the canary is deleted. A promotion that never gets that far leaves the
// stable Deployment as it was.
type Bridge struct {
	Canary  *appsv1.Deployment
	Service *corev1.Service
	Route   *gatewayv1.HTTPRoute
}

// bridgeOf picks the bridge's objects from b (the pre-promotion stack at
// canary weight 100) for the promotion d: the canary at the size of d's
// stable.
func bridgeOf(b, d Desired) *Bridge {
	out := &Bridge{}
	var replicas *int32
	for _, o := range d.Objects {
		if dep, ok := o.(*appsv1.Deployment); ok && dep.Name == b.Project+"-"+stack.TrackStable {
			replicas = dep.Spec.Replicas
		}
	}
	for _, o := range b.Objects {
		switch v := o.(type) {
		case *appsv1.Deployment:
			if v.Name == b.Project+"-"+stack.TrackCanary {
				c := v.DeepCopy()
				if replicas != nil {
					r := *replicas
					c.Spec.Replicas = &r
				}
				seal(c)
				out.Canary = c
			}
		case *corev1.Service:
			if v.Name == b.Project+"-"+stack.TrackCanary {
				out.Service = v
			}
		case *gatewayv1.HTTPRoute:
			out.Route = v
		}
	}
	if out.Canary == nil || out.Service == nil || out.Route == nil {
		return nil
	}
	return out
}

// bridging: d is a promotion whose stable Deployment has not the
// promoted image yet while the live route still sends the stable Service
// traffic: the bridge stage is in force.
func bridging(d Desired, obs Observed) bool {
	if d.Bridge == nil {
		return false
	}
	stable := d.Project + "-" + stack.TrackStable
	var want *appsv1.Deployment
	for _, o := range d.Objects {
		if dep, ok := o.(*appsv1.Deployment); ok && dep.Name == stable {
			want = dep
		}
	}
	live, ok := obs.Deployments[stable]
	route, rok := obs.Routes[d.Bridge.Route.Name]
	if want == nil || !ok || !rok || ImageOf(live) == ImageOf(*want) {
		return false
	}
	return Weights(route)[stable] > 0
}

// ForObserved is what desired means given what is observed:
//   - during a promotion's bridge stage (bridging), the canary at full
//     size and the route on it, the stable Deployment kept as it is;
//   - a Deployment a HorizontalPodAutoscaler targets is applied without
//     spec.replicas (leaveReplicas), so the HPA's count stands (setting it
//     would take the field back at every resync and journal
//     drift_reverted each time).
func ForObserved(d Desired, obs Observed) Desired {
	out := d
	if bridging(d, obs) {
		out.Objects = nil
		out.Keep = map[string]bool{"Deployment/" + d.Project + "-" + stack.TrackStable: true}
		for _, o := range d.Objects {
			if _, ok := o.(*corev1.Service); ok {
				out.Objects = append(out.Objects, o)
			}
		}
		canary := d.Bridge.Canary
		if live, ok := obs.Deployments[d.Project+"-"+stack.TrackStable]; ok && obs.Scaled[live.Name] != "" {
			// The HPA's count, not the manifest's, is what carries the
			// stable's traffic now.
			canary = canary.DeepCopy()
			r := replicas(live)
			canary.Spec.Replicas = &r
			seal(canary)
		}
		out.Objects = append(out.Objects, canary, d.Bridge.Service, d.Bridge.Route)
		out.Bridge = nil
		d = out
	}
	out.Objects = make([]k8srender.Object, 0, len(d.Objects))
	for _, o := range d.Objects {
		if dep, ok := o.(*appsv1.Deployment); ok && obs.Scaled[dep.Name] != "" && dep.Spec.Replicas != nil {
			o = leaveReplicas(dep, obs)
		}
		out.Objects = append(out.Objects, o)
	}
	return out
}

// leaveReplicas is dep with its replicas left to the HPA that targets it.
// Once the HPA has scaled it (its manager owns spec.replicas), the field
// is not applied at all. Until then it is applied at the live count:
// dropping a field swiftdeploy alone owns would reset it to 1 before the
// HPA acts.
func leaveReplicas(dep *appsv1.Deployment, obs Observed) *appsv1.Deployment {
	c := dep.DeepCopy()
	live, ok := obs.Deployments[dep.Name]
	switch {
	case !ok:
		// Created at the manifest's count; the HPA takes it from there.
		return dep
	case replicasOwnedByOthers(live):
		c.Spec.Replicas = nil
	default:
		r := replicas(live)
		c.Spec.Replicas = &r
	}
	seal(c)
	return c
}

// replicasOwnedByOthers: a field manager other than swiftdeploy (an HPA
// through the scale subresource, or anyone's update) owns spec.replicas.
func replicasOwnedByOthers(d appsv1.Deployment) bool {
	for _, f := range d.ManagedFields {
		if f.Manager == kube.FieldManager || f.Subresource == "status" || f.FieldsV1 == nil {
			continue
		}
		raw := string(f.FieldsV1.Raw)
		if strings.Contains(raw, `"f:replicas"`) && (f.Subresource == "scale" || strings.Contains(raw, `"f:spec"`)) {
			return true
		}
	}
	return false
}

// servesBridge: the live route sends every request to the canary at the
// bridge's weights, and the canary has rolled out the promoted image.
func servesBridge(d Desired, obs Observed) bool {
	b := d.Bridge
	if b == nil {
		return false
	}
	live, ok := obs.Routes[b.Route.Name]
	if !ok || WeightsText(Weights(*b.Route)) != WeightsText(Weights(live)) {
		return false
	}
	dep, ok := obs.Deployments[b.Canary.Name]
	if !ok || ImageOf(dep) != ImageOf(*b.Canary) {
		return false
	}
	done, _ := RolledOut(dep)
	return done
}
