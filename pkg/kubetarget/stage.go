package kubetarget

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
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
	// Routes are every route of the pre-promotion stack at canary weight
	// 100: one in the single-service form; in the named form a route per
	// host, those holding the promoted service's rule changed.
	Routes []*gatewayv1.HTTPRoute
	names  Names
}

// namesOf are the names of desired's primary service's objects.
func namesOf(d Desired) Names {
	return namesFor(d.Project, d.Stack.Primary)
}

// bridgeOf picks the bridge's objects from b (the pre-promotion stack at
// canary weight 100) for the promotion d: the canary at the size of d's
// stable.
func bridgeOf(b, d Desired) *Bridge {
	n := namesOf(d)
	out := &Bridge{names: n}
	var replicas *int32
	for _, o := range d.Objects {
		if dep, ok := o.(*appsv1.Deployment); ok && dep.Name == n.StableDeployment {
			replicas = dep.Spec.Replicas
		}
	}
	for _, o := range b.Objects {
		switch v := o.(type) {
		case *appsv1.Deployment:
			if v.Name == n.CanaryDeployment {
				c := v.DeepCopy()
				if replicas != nil {
					r := *replicas
					c.Spec.Replicas = &r
				}
				seal(c)
				out.Canary = c
			}
		case *corev1.Service:
			if v.Name == n.CanaryService {
				out.Service = v
			}
		case *gatewayv1.HTTPRoute:
			out.Routes = append(out.Routes, v)
		}
	}
	if out.Canary == nil || out.Service == nil || len(out.Routes) == 0 {
		return nil
	}
	return out
}

// bridging: d is a promotion whose stable Deployment has not the
// promoted image yet while a live route still sends the stable Service
// traffic: the bridge stage is in force.
func bridging(d Desired, obs Observed) bool {
	if d.Bridge == nil {
		return false
	}
	n := d.Bridge.names
	var want *appsv1.Deployment
	for _, o := range d.Objects {
		if dep, ok := o.(*appsv1.Deployment); ok && dep.Name == n.StableDeployment {
			want = dep
		}
	}
	live, ok := obs.Deployments[n.StableDeployment]
	if want == nil || !ok || ImageOf(live) == ImageOf(*want) {
		return false
	}
	for _, r := range d.Bridge.Routes {
		if route, ok := obs.Routes[r.Name]; ok && Weights(route)[n.StableService] > 0 {
			return true
		}
	}
	return false
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
		// Everything the promotion leaves as it is (Services, claims,
		// the pull Secret; the named form's other services) stays
		// desired; the stable Deployment is kept as it runs, the routes
		// are the bridge's.
		n := d.Bridge.names
		out.Objects = nil
		out.Keep = map[string]bool{"Deployment/" + n.StableDeployment: true}
		for _, o := range d.Objects {
			if _, ok := o.(*gatewayv1.HTTPRoute); ok || o.GetName() == n.StableDeployment && RefOf(o).Resource.Kind == "Deployment" {
				continue
			}
			out.Objects = append(out.Objects, o)
		}
		canary := d.Bridge.Canary
		if live, ok := obs.Deployments[n.StableDeployment]; ok && obs.Scaled[live.Name] != "" {
			// The HPA's count, not the manifest's, is what carries the
			// stable's traffic now.
			canary = canary.DeepCopy()
			r := replicas(live)
			canary.Spec.Replicas = &r
			seal(canary)
		}
		out.Objects = append(out.Objects, canary, d.Bridge.Service)
		for _, r := range d.Bridge.Routes {
			out.Objects = append(out.Objects, r)
		}
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

// servesBridge: every live route has the bridge's weights (every
// request of the promoted service on its canary), and the canary has
// rolled out the promoted image.
func servesBridge(d Desired, obs Observed) bool {
	b := d.Bridge
	if b == nil {
		return false
	}
	for _, r := range b.Routes {
		live, ok := obs.Routes[r.Name]
		if !ok || WeightsText(Weights(*r)) != WeightsText(Weights(live)) {
			return false
		}
	}
	dep, ok := obs.Deployments[b.Canary.Name]
	if !ok || ImageOf(dep) != ImageOf(*b.Canary) {
		return false
	}
	done, _ := RolledOut(dep)
	return done
}
